//! Attention projections of the T5 blocks.
//!
//! Self-attention computes q, k and v from the same input, so when weights are packed at load
//! the three are stacked into one `[3·inner, d_model]` matrix and run as one matmul (one pass
//! over the input, one thread hand-off instead of three). Cross-attention's k and v read the
//! encoder output once per input (see [`crate::CrossCache`]), its q the decoder state every step,
//! so they stay apart.

use t0_kernels::Kernels;

use crate::linear::Linear;

/// The four bias-free projections of a cross-attention block (`[inner, d_model]` for q/k/v,
/// `[d_model, inner]` for o, where `inner = num_heads · d_kv`).
#[derive(Clone, Debug)]
pub struct Attention {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
}

/// q, k and v of a self-attention block: as stored, or stacked into one weight.
#[derive(Clone, Debug)]
pub(crate) enum Qkv {
    /// Three `[inner, d_model]` weights (the checkpoint's tensors, e.g. memory-mapped).
    Separate([Linear; 3]),
    /// One `[3·inner, d_model]` weight packed at load: rows of q, then k, then v.
    Fused(Linear),
}

/// The projections of a self-attention block.
#[derive(Clone, Debug)]
pub struct SelfAttention {
    pub(crate) qkv: Qkv,
    pub(crate) o: Linear,
}

impl SelfAttention {
    /// `inner = num_heads · d_kv`.
    pub fn inner(&self) -> usize {
        self.o.in_features()
    }

    /// `out[m, 3·inner]`: each row is `[q | k | v]` of the matching row of `x[m, d_model]`.
    pub(crate) fn project(&self, k: &dyn Kernels, x: &[f32], m: usize, out: &mut [f32]) {
        self.project_with(k, x, m, out, &mut Vec::new())
    }

    /// As [`Self::project`], staging each of separate q/k/v weights' outputs in `proj`
    /// (grown to `[m, inner]` when `m > 1`) before interleaving them into `out`.
    pub(crate) fn project_with(&self, k: &dyn Kernels, x: &[f32], m: usize, out: &mut [f32], proj: &mut Vec<f32>) {
        let inner = self.inner();
        match &self.qkv {
            Qkv::Fused(w) => w.forward(k, x, m, out),
            // One row: `[q | k | v]` are three contiguous runs, written in place.
            Qkv::Separate(ws) if m == 1 => {
                for (w, o) in ws.iter().zip(out.chunks_exact_mut(inner)) {
                    w.forward(k, x, 1, o);
                }
            }
            Qkv::Separate(ws) => {
                let tmp = crate::workspace::sized(proj, m * inner);
                for (i, w) in ws.iter().enumerate() {
                    w.forward(k, x, m, tmp);
                    for (dst, src) in out.chunks_exact_mut(3 * inner).zip(tmp.chunks_exact(inner)) {
                        dst[i * inner..(i + 1) * inner].copy_from_slice(src);
                    }
                }
            }
        }
    }

    /// Bytes of weight data.
    pub(crate) fn nbytes(&self) -> usize {
        let qkv = match &self.qkv {
            Qkv::Fused(w) => w.nbytes(),
            Qkv::Separate(ws) => ws.iter().map(Linear::nbytes).sum(),
        };
        qkv + self.o.nbytes()
    }
}

impl Attention {
    /// Bytes of weight data.
    pub(crate) fn nbytes(&self) -> usize {
        self.q.nbytes() + self.k.nbytes() + self.v.nbytes() + self.o.nbytes()
    }
}
