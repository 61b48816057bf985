//! Vectorised transcendental functions (Cephes-style range reduction and minimax polynomials),
//! accurate to a few ulp, written once over [`F32Vec`].

#![allow(clippy::excessive_precision)] // Cephes coefficients, kept as published.

use super::F32Vec;

/// `e^x`, within 2 ulp of the correctly rounded result for `x` in `[-87.3, 88.3]`.
/// Below that it returns exactly 0 (as `f32::exp` does once the result leaves the normal
/// range, up to denormals), above it `+inf`. NaN is not propagated.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn exp<V: F32Vec>(x: V) -> V {
    const HI: f32 = 88.376_26;
    const LO: f32 = -87.336_55; // ln(f32::MIN_POSITIVE)
    let xc = x.min(V::splat(HI)).max(V::splat(LO));
    // x = n·ln2 + r, |r| <= ln2/2, with ln2 split in two for an exact first product.
    let n = xc.mul(V::splat(std::f32::consts::LOG2_E)).round();
    let r = n.mul_add(V::splat(-0.693_359_375), xc);
    let r = n.mul_add(V::splat(2.121_944_4e-4), r);
    let mut p = V::splat(1.987_569_1e-4);
    p = p.mul_add(r, V::splat(1.398_199_9e-3));
    p = p.mul_add(r, V::splat(8.333_452e-3));
    p = p.mul_add(r, V::splat(4.166_579_6e-2));
    p = p.mul_add(r, V::splat(1.666_666_5e-1));
    p = p.mul_add(r, V::splat(5.000_000_1e-1));
    let y = p.mul(r.mul(r)).add(r).add(V::splat(1.0));
    let y = y.mul_pow2(n);
    let y = V::select_lt(x, V::splat(LO), V::splat(0.0), y);
    V::select_lt(V::splat(HI), x, V::splat(f32::INFINITY), y)
}

/// `tanh(x)`, within a few ulp: an odd polynomial below `|x| = 0.625`, `1 − 2/(e^{2|x|}+1)`
/// above (saturating to ±1 beyond `|x| = 9`, where that is exact in f32).
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn tanh<V: F32Vec>(x: V) -> V {
    let ax = x.abs();
    // Large branch.
    let e = exp(ax.min(V::splat(9.0)).add(ax.min(V::splat(9.0))));
    let large = V::splat(1.0).sub(V::splat(2.0).div(e.add(V::splat(1.0))));
    // Small branch (Cephes tanhf).
    let z = x.mul(x);
    let mut p = V::splat(-5.704_988_7e-3);
    p = p.mul_add(z, V::splat(2.063_908_9e-2));
    p = p.mul_add(z, V::splat(-5.373_971_6e-2));
    p = p.mul_add(z, V::splat(1.333_144_2e-1));
    p = p.mul_add(z, V::splat(-3.333_328_2e-1));
    let small = p.mul(z).mul_add(x, x);
    V::select_lt(ax, V::splat(0.625), small, large.copysign(x))
}

/// `gelu_new(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, evaluated in the same order as
/// [`crate::activation::gelu_new`] and PyTorch.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn gelu_new<V: F32Vec>(x: V) -> V {
    let x3 = x.mul(x).mul(x);
    let inner = V::splat(0.044_715).mul(x3).add(x).mul(V::splat(0.797_884_6));
    V::splat(0.5).mul(x).mul(V::splat(1.0).add(tanh(inner)))
}

/// `silu(x) = x / (1 + e^{−x})`.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn silu<V: F32Vec>(x: V) -> V {
    let e = exp(V::splat(0.0).sub(x));
    x.div(V::splat(1.0).add(e))
}

/// `max(x, 0)`.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn relu<V: F32Vec>(x: V) -> V {
    x.max(V::splat(0.0))
}
