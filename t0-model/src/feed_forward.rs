//! The T5 feed-forward block: `wo(act(wi x))`, or gated `wo(act(wi_0 x) ⊙ wi_1 x)`.
//!
//! When weights are packed at load, a gated block's `wi_0` and `wi_1` are stacked into one
//! `[2·d_ff, d_model]` weight and run as one matmul.

use t0_kernels::Kernels;

use crate::config::FeedForward as Kind;
use crate::linear::Linear;

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
        let d_ff = self.d_ff();
        let act = self.kind.activation;
        let hidden = match &self.wi {
            Wi::Plain(wi) => {
                let mut hidden = vec![0.0f32; m * d_ff];
                wi.forward(k, x, m, &mut hidden);
                k.activation(act, &mut hidden);
                hidden
            }
            Wi::Gated { gate, up } => {
                let (mut hidden, mut u) = (vec![0.0f32; m * d_ff], vec![0.0f32; m * d_ff]);
                gate.forward(k, x, m, &mut hidden);
                up.forward(k, x, m, &mut u);
                k.gated_activation(act, &mut hidden, &u);
                hidden
            }
            Wi::GatedFused(wi) => {
                let mut both = vec![0.0f32; m * 2 * d_ff];
                wi.forward(k, x, m, &mut both);
                if m == 1 {
                    let (g, u) = both.split_at_mut(d_ff);
                    k.gated_activation(act, g, u);
                    both.truncate(d_ff);
                    both
                } else {
                    // Gather the halves so the activation runs as one (parallel) call.
                    let (mut g, mut u) = (Vec::with_capacity(m * d_ff), Vec::with_capacity(m * d_ff));
                    for row in both.chunks_exact(2 * d_ff) {
                        g.extend_from_slice(&row[..d_ff]);
                        u.extend_from_slice(&row[d_ff..]);
                    }
                    k.gated_activation(act, &mut g, &u);
                    g
                }
            }
        };
        self.wo.forward(k, &hidden, m, out);
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
