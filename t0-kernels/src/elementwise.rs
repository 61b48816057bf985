//! Element-wise arithmetic on rows: the residual add and scaling.

use crate::simd::{simd_map, simd_zip, F32Vec};

/// Reference `acc += x` (the residual connection).
pub fn add_assign_reference(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len(), "add_assign: length mismatch");
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Reference `x *= s`.
pub fn scale_reference(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

/// Vectorised `acc += x` (bit-identical to the reference).
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn add_assign_simd<V: F32Vec>(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len(), "add_assign: length mismatch");
    simd_zip!(V, acc, x, |a, b| a.add(b));
}

/// Vectorised `x *= s` (bit-identical to the reference).
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn scale_simd<V: F32Vec>(x: &mut [f32], s: f32) {
    let sv = V::splat(s);
    simd_map!(V, x, 0.0, |v| v.mul(sv));
}
