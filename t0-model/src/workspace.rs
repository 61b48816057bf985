//! Buffers a decoder call reuses from one step to the next, kept in its [`DecoderState`]: once
//! they have grown to a step's size, a decode step allocates nothing.
//!
//! [`DecoderState`]: crate::DecoderState

use crate::position_bias::BiasVectors;

/// The feed-forward block's intermediate buffers.
#[derive(Clone, Debug, Default)]
pub(crate) struct FfScratch {
    /// `wi`'s output (`[m, d_ff]`, or `[m, 2·d_ff]` when gate and up are fused).
    pub(crate) wi: Vec<f32>,
    /// The gate half (separate gate / gathered halves).
    pub(crate) gate: Vec<f32>,
    /// The up half.
    pub(crate) up: Vec<f32>,
}

/// Everything one [`crate::decoder::Decoder::forward`] call needs besides the caches.
#[derive(Clone, Debug, Default)]
pub(crate) struct Workspace {
    /// Residual stream `[m, d_model]`.
    pub(crate) h: Vec<f32>,
    /// Normalised hidden states `[m, d_model]`; the final norm's output when the call returns.
    pub(crate) normed: Vec<f32>,
    /// A block's output before the residual add `[m, d_model]`.
    pub(crate) tmp: Vec<f32>,
    /// Self-attention `[q | k | v]` rows `[m, 3·inner]`.
    pub(crate) qkv: Vec<f32>,
    /// Cross-attention queries `[m, inner]`.
    pub(crate) q: Vec<f32>,
    /// One of separate q/k/v weights' output `[m, inner]`, before it is interleaved into `qkv`.
    pub(crate) proj: Vec<f32>,
    /// Attention context `[m, inner]`.
    pub(crate) ctx: Vec<f32>,
    /// The feed-forward block's buffers.
    pub(crate) ff: FfScratch,
    /// Causal position-bias vectors.
    pub(crate) bias: BiasVectors,
    /// Logits `[m, vocab]`.
    pub(crate) logits: Vec<f32>,
}

/// The first `len` values of `buf`, growing it if it is shorter (contents unspecified).
pub(crate) fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}
