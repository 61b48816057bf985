//! The T5 decoder: embedding, `num_decoder_layers` × (causal self-attention with a KV cache,
//! cross-attention over the encoder output, feed-forward), final norm.

use t0_kernels::{AttentionArgs, Kernels};

use crate::attention::{Attention, SelfAttention};
use crate::cache::DecoderState;
use crate::feed_forward::FeedForward;
use crate::linear::Linear;
use crate::position_bias::StackBias;
use crate::workspace::{sized, Workspace};

/// One decoder block.
#[derive(Clone, Debug)]
pub struct DecoderLayer {
    pub(crate) self_norm: Vec<f32>,
    pub(crate) self_attn: SelfAttention,
    pub(crate) cross_norm: Vec<f32>,
    pub(crate) cross_attn: Attention,
    pub(crate) ff_norm: Vec<f32>,
    pub(crate) ff: FeedForward,
}

/// The decoder stack. Only the first block's self-attention has a bias table (causal buckets),
/// or every block's (umT5); cross-attention has no position bias.
#[derive(Clone, Debug)]
pub struct Decoder {
    pub(crate) layers: Vec<DecoderLayer>,
    pub(crate) bias: StackBias,
    pub(crate) final_norm: Vec<f32>,
    pub(crate) eps: f32,
    pub(crate) heads: usize,
    pub(crate) d_kv: usize,
}

impl Decoder {
    /// Run `t` new tokens for every row of `state` (`tokens` is `[rows, t]`), appending to the
    /// self-attention caches. Leaves the final-norm hidden states `[rows · t, d_model]` in
    /// `work.normed`. Allocates nothing once `work` and the caches are large enough.
    pub(crate) fn forward(
        &self,
        k: &dyn Kernels,
        embed: &Linear,
        state: &mut DecoderState,
        tokens: &[u32],
        t: usize,
        work: &mut Workspace,
    ) {
        let rows = state.rows();
        let d = embed.in_features();
        let (heads, dkv) = (self.heads, self.d_kv);
        let inner = heads * dkv;
        let m = rows * t;
        let max_end = state.lens.iter().map(|&l| l + t).max().unwrap_or(t);
        state.reserve_kv(max_end);
        let cap = state.capacity;
        let min_rel = -(max_end as i64 - 1);

        let h = sized(&mut work.h, m * d);
        k.embedding(&embed.view(), tokens, h);
        let (normed, tmp) = (sized(&mut work.normed, m * d), sized(&mut work.tmp, m * d));
        // Rows of `qkv` are `[q | k | v]` (see `SelfAttention::project`).
        let (qkv, q, ctx) =
            (sized(&mut work.qkv, m * 3 * inner), sized(&mut work.q, m * inner), sized(&mut work.ctx, m * inner));
        for (l, layer) in self.layers.iter().enumerate() {
            self.bias.layer_vectors_into(l, min_rel, 0, &mut work.bias);
            let bias = &work.bias;
            // Causal self-attention: write this call's keys/values into the cache, then attend.
            k.rms_norm(h, &layer.self_norm, self.eps, normed);
            layer.self_attn.project_with(k, normed, m, qkv, &mut work.proj);
            let cache = &mut state.layers[l];
            for r in 0..rows {
                let p0 = state.lens[r];
                for i in 0..t {
                    let (ks, vs) = ((r * t + i) * 3 * inner + inner, (r * t + i) * 3 * inner + 2 * inner);
                    for hh in 0..heads {
                        let dst = ((r * heads + hh) * cap + p0 + i) * dkv;
                        cache.k[dst..dst + dkv].copy_from_slice(&qkv[ks + hh * dkv..ks + (hh + 1) * dkv]);
                        cache.v[dst..dst + dkv].copy_from_slice(&qkv[vs + hh * dkv..vs + (hh + 1) * dkv]);
                    }
                }
            }
            for r in 0..rows {
                let p0 = state.lens[r];
                let block = r * heads * cap * dkv..(r + 1) * heads * cap * dkv;
                let args = AttentionArgs {
                    q: &qkv[r * t * 3 * inner..(r + 1) * t * 3 * inner],
                    k: &cache.k[block.clone()],
                    v: &cache.v[block],
                    heads,
                    d_kv: dkv,
                    q_len: t,
                    kv_len: p0 + t,
                    q_row_stride: 3 * inner,
                    kv_head_stride: cap * dkv,
                    kv_row_stride: dkv,
                    q_pos0: p0,
                    causal: true,
                    bias: Some(bias.view()),
                    mask: None,
                };
                k.attention(&args, &mut ctx[r * t * inner..(r + 1) * t * inner]);
            }
            layer.self_attn.o.forward(k, ctx, m, tmp);
            k.add_assign(h, tmp);

            // Cross-attention over the encoder output of each row's source.
            k.rms_norm(h, &layer.cross_norm, self.eps, normed);
            layer.cross_attn.q.forward(k, normed, m, q);
            for r in 0..rows {
                let (cross, src) = (&state.cross_of_row[r], state.source_of_row[r]);
                let s = cross.seq;
                let block = src * s * inner..(src + 1) * s * inner;
                let args = AttentionArgs {
                    q: &q[r * t * inner..(r + 1) * t * inner],
                    k: &cross.k(l)[block.clone()],
                    v: &cross.v(l)[block],
                    heads,
                    d_kv: dkv,
                    q_len: t,
                    kv_len: s,
                    q_row_stride: inner,
                    kv_head_stride: s * dkv,
                    kv_row_stride: dkv,
                    q_pos0: 0,
                    causal: false,
                    bias: None,
                    mask: Some(&cross.mask[src * s..(src + 1) * s]),
                };
                k.attention(&args, &mut ctx[r * t * inner..(r + 1) * t * inner]);
            }
            layer.cross_attn.o.forward(k, ctx, m, tmp);
            k.add_assign(h, tmp);

            k.rms_norm(h, &layer.ff_norm, self.eps, normed);
            layer.ff.forward_with(k, normed, m, tmp, &mut work.ff);
            k.add_assign(h, tmp);
        }
        for l in &mut state.lens {
            *l += t;
        }
        k.rms_norm(h, &self.final_norm, self.eps, normed);
    }
}
