//! The T5 feed-forward block: `wo(act(wi x))`, or gated `wo(act(wi_0 x) ⊙ wi_1 x)`.

use t0_kernels::Kernels;

use crate::config::FeedForward as Kind;
use crate::linear::Linear;

/// Weights of one feed-forward block.
#[derive(Clone, Debug)]
pub struct FeedForward {
    pub(crate) kind: Kind,
    /// `wi` (plain) or `wi_0` (gated).
    pub(crate) wi: Linear,
    /// `wi_1` (gated only).
    pub(crate) wi_up: Option<Linear>,
    pub(crate) wo: Linear,
}

impl FeedForward {
    /// `out[m, d_model] = FFN(x[m, d_model])`.
    pub fn forward(&self, k: &dyn Kernels, x: &[f32], m: usize, out: &mut [f32]) {
        let d_ff = self.wi.out_features();
        let mut hidden = vec![0.0f32; m * d_ff];
        self.wi.forward(k, x, m, &mut hidden);
        match &self.wi_up {
            Some(up) => {
                let mut u = vec![0.0f32; m * d_ff];
                up.forward(k, x, m, &mut u);
                k.gated_activation(self.kind.activation, &mut hidden, &u);
            }
            None => k.activation(self.kind.activation, &mut hidden),
        }
        self.wo.forward(k, &hidden, m, out);
    }
}
