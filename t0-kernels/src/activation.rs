//! Activations of the T5 feed-forward block, plain and gated.

use crate::simd::{math, simd_map, simd_zip, F32Vec};

/// `gelu_new` (the tanh approximation HF's `NewGELUActivation` uses).
#[inline]
pub fn gelu_new(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6; // sqrt(2 / pi)
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))).tanh())
}

/// SiLU: `x · sigmoid(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// ReLU.
#[inline]
pub fn relu(x: f32) -> f32 {
    x.max(0.0)
}

/// The activation applied to the (gate) projection of a T5 FFN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `gelu_new`.
    GeluNew,
    /// `x · sigmoid(x)`.
    Silu,
}

impl Activation {
    /// Apply to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => relu(x),
            Activation::GeluNew => gelu_new(x),
            Activation::Silu => silu(x),
        }
    }
}

/// Reference: `x = act(x)` in place.
pub fn activation_reference(act: Activation, x: &mut [f32]) {
    for v in x {
        *v = act.apply(*v);
    }
}

/// Reference gated activation: `gate = act(gate) ⊙ up` in place.
pub fn gated_activation_reference(act: Activation, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "gated activation: gate and up differ in length");
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = act.apply(*g) * u;
    }
}

/// Vectorised `x = act(x)`; tests hold it to 1e-5 relative + 1e-6 absolute of the reference
/// (`gelu_new` uses a vectorised tanh accurate to a few ulp).
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn activation_simd<V: F32Vec>(act: Activation, x: &mut [f32]) {
    match act {
        Activation::Relu => simd_map!(V, x, 0.0, |v| math::relu(v)),
        Activation::GeluNew => simd_map!(V, x, 0.0, |v| math::gelu_new(v)),
        Activation::Silu => simd_map!(V, x, 0.0, |v| math::silu(v)),
    }
}

/// Vectorised `gate = act(gate) ⊙ up`; same tolerance as [`activation_simd`].
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn gated_activation_simd<V: F32Vec>(act: Activation, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "gated activation: gate and up differ in length");
    match act {
        Activation::Relu => simd_zip!(V, gate, up, |g, u| math::relu(g).mul(u)),
        Activation::GeluNew => simd_zip!(V, gate, up, |g, u| math::gelu_new(g).mul(u)),
        Activation::Silu => simd_zip!(V, gate, up, |g, u| math::silu(g).mul(u)),
    }
}
