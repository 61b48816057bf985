//! The T5 encoder: embedding, `num_layers` × (self-attention, feed-forward), final norm.

use t0_kernels::{AttentionArgs, Kernels};

use crate::attention::SelfAttention;
use crate::feed_forward::FeedForward;
use crate::linear::Linear;
use crate::position_bias::{BiasVectors, StackBias};
use crate::workspace::FfScratch;

/// One encoder block.
#[derive(Clone, Debug)]
pub struct EncoderLayer {
    pub(crate) attn_norm: Vec<f32>,
    pub(crate) attn: SelfAttention,
    pub(crate) ff_norm: Vec<f32>,
    pub(crate) ff: FeedForward,
}

/// The encoder stack. T5 and mT5: only the first block's bias table exists and every block uses
/// it; umT5: each block has its own.
#[derive(Clone, Debug)]
pub struct Encoder {
    pub(crate) layers: Vec<EncoderLayer>,
    pub(crate) bias: StackBias,
    pub(crate) final_norm: Vec<f32>,
    pub(crate) eps: f32,
    pub(crate) heads: usize,
    pub(crate) d_kv: usize,
}

impl Encoder {
    /// Hidden states `[batch · seq, d_model]` for `ids` (`[batch, seq]`, row-major) with the
    /// additive key mask `mask_add` (`[batch, seq]`: 0 for tokens, `f32::MIN` for padding).
    pub(crate) fn forward(
        &self,
        k: &dyn Kernels,
        embed: &Linear,
        ids: &[u32],
        mask_add: &[f32],
        batch: usize,
        seq: usize,
    ) -> Vec<f32> {
        let d = embed.in_features();
        let inner = self.heads * self.d_kv;
        let m = batch * seq;
        let mut h = vec![0.0f32; m * d];
        k.embedding(&embed.view(), ids, &mut h);
        let (lo, hi) = (-(seq as i64 - 1), seq as i64 - 1);
        let mut bias = BiasVectors::default();
        let (mut normed, mut tmp) = (vec![0.0f32; m * d], vec![0.0f32; m * d]);
        // Rows of `qkv` are `[q | k | v]` (see `SelfAttention::project`).
        let (mut qkv, mut ctx) = (vec![0.0f32; m * 3 * inner], vec![0.0f32; m * inner]);
        // The feed-forward's hidden buffers, allocated by the first layer and reused (fresh ones
        // per layer cost page faults and zeroing: 5 MB a layer for T0_3B at 64 tokens).
        let mut ff_scratch = FfScratch::default();
        for (l, layer) in self.layers.iter().enumerate() {
            self.bias.layer_vectors_into(l, lo, hi, &mut bias);
            k.rms_norm(&h, &layer.attn_norm, self.eps, &mut normed);
            layer.attn.project(k, &normed, m, &mut qkv);
            for b in 0..batch {
                let (start, end) = (b * seq * 3 * inner, (b + 1) * seq * 3 * inner);
                let rows = b * seq * inner..(b + 1) * seq * inner;
                let args = AttentionArgs {
                    q: &qkv[start..end],
                    k: &qkv[start + inner..end],
                    v: &qkv[start + 2 * inner..end],
                    heads: self.heads,
                    d_kv: self.d_kv,
                    q_len: seq,
                    kv_len: seq,
                    q_row_stride: 3 * inner,
                    kv_head_stride: self.d_kv,
                    kv_row_stride: 3 * inner,
                    q_pos0: 0,
                    causal: false,
                    bias: Some(bias.view()),
                    mask: Some(&mask_add[b * seq..(b + 1) * seq]),
                };
                k.attention(&args, &mut ctx[rows]);
            }
            layer.attn.o.forward(k, &ctx, m, &mut tmp);
            k.add_assign(&mut h, &tmp);
            k.rms_norm(&h, &layer.ff_norm, self.eps, &mut normed);
            layer.ff.forward_with(k, &normed, m, &mut tmp, &mut ff_scratch);
            k.add_assign(&mut h, &tmp);
        }
        k.rms_norm(&h, &self.final_norm, self.eps, &mut normed);
        normed
    }
}
