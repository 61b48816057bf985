//! The T5 feed-forward block: `wo(act(wi x))`, or gated `wo(act(wi_0 x) ⊙ wi_1 x)`.
//!
//! When weights are packed at load, a gated block's `wi_0` and `wi_1` are stacked into one
//! `[2·d_ff, d_model]` weight and run as one matmul.

use crate::workspace::{sized, FfScratch};
use rayon::prelude::*;
use t0_kernels::Kernels;

use crate::config::FeedForward as Kind;
use crate::linear::Linear;

/// Activation values below which a fused block's rows are not split across threads (the
/// kernels' own threshold for element-wise work, `t0_kernels::backend::PAR_MIN_ELEMS`).
const ROW_TASK_MIN_ELEMS: usize = 1 << 15;

/// The input projection(s) of a feed-forward block.
#[derive(Clone, Debug)]
pub(crate) enum Wi {
    /// `wi` (relu / gelu without a gate).
    Plain(Linear),
    /// `wi_0` (through the activation) and `wi_1`, as stored.
    Gated { gate: Linear, up: Linear },
    /// `wi_0` and `wi_1` stacked: each output row is `[gate | up]`.
    GatedFused(Linear),
}

/// Weights of one feed-forward block.
#[derive(Clone, Debug)]
pub struct FeedForward {
    pub(crate) kind: Kind,
    pub(crate) wi: Wi,
    pub(crate) wo: Linear,
}

impl FeedForward {
    /// Inner width `d_ff`.
    pub fn d_ff(&self) -> usize {
        self.wo.in_features()
    }

    /// `out[m, d_model] = FFN(x[m, d_model])`.
    pub fn forward(&self, k: &dyn Kernels, x: &[f32], m: usize, out: &mut [f32]) {
        self.forward_with(k, x, m, out, &mut FfScratch::default())
    }

    /// As [`Self::forward`], with the intermediate buffers in `s` (no allocation once they have
    /// grown to this `m`).
    pub(crate) fn forward_with(&self, k: &dyn Kernels, x: &[f32], m: usize, out: &mut [f32], s: &mut FfScratch) {
        let d_ff = self.d_ff();
        let act = self.kind.activation;
        let hidden: &[f32] = match &self.wi {
            Wi::Plain(wi) => {
                let hidden = sized(&mut s.wi, m * d_ff);
                wi.forward(k, x, m, hidden);
                k.activation(act, hidden);
                hidden
            }
            Wi::Gated { gate, up } => {
                let (hidden, u) = (sized(&mut s.gate, m * d_ff), sized(&mut s.up, m * d_ff));
                gate.forward(k, x, m, hidden);
                up.forward(k, x, m, u);
                k.gated_activation(act, hidden, u);
                hidden
            }
            Wi::GatedFused(wi) => {
                let both = sized(&mut s.wi, m * 2 * d_ff);
                wi.forward(k, x, m, both);
                if m == 1 {
                    let (g, u) = both.split_at_mut(d_ff);
                    k.gated_activation(act, g, u);
                    g
                } else {
                    // Rows in parallel: each row's gate half is copied into `g` and activated
                    // there against its up half while both are in L1 (one pass, no gather).
                    // Tasks of at least `ROW_TASK_MIN_ELEMS` values, so a few decode rows stay
                    // on the calling thread.
                    let g = sized(&mut s.gate, m * d_ff);
                    g.par_chunks_mut(d_ff.max(1))
                        .zip(both.par_chunks(2 * d_ff.max(1)))
                        .with_min_len(ROW_TASK_MIN_ELEMS.div_ceil(d_ff.max(1)))
                        .for_each(|(gr, row)| {
                            let (gate, up) = row.split_at(d_ff);
                            gr.copy_from_slice(gate);
                            k.gated_activation(act, gr, up);
                        });
                    g
                }
            }
        };
        self.wo.forward(k, hidden, m, out);
    }

    /// Bytes of weight data.
    pub(crate) fn nbytes(&self) -> usize {
        let wi = match &self.wi {
            Wi::Plain(w) | Wi::GatedFused(w) => w.nbytes(),
            Wi::Gated { gate, up } => gate.nbytes() + up.nbytes(),
        };
        wi + self.wo.nbytes()
    }
}
