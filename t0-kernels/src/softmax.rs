//! Numerically safe softmax and log-softmax over one row.

use crate::simd::{math, simd_fold, simd_map, F32Vec};

/// Reference softmax in place: subtract the max, exponentiate, normalise.
/// A row that is entirely `f32::MIN` (fully masked) becomes uniform, as in PyTorch.
pub fn softmax_reference(row: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Reference log-softmax in place: `x - max - ln(sum(exp(x - max)))`.
pub fn log_softmax_reference(row: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    let lse = max + sum.ln();
    for v in row.iter_mut() {
        *v -= lse;
    }
}

/// Maximum of a row, vectorised.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
unsafe fn row_max<V: F32Vec>(row: &[f32]) -> f32 {
    simd_fold!(V, row, f32::NEG_INFINITY, f32::NEG_INFINITY, |x| x, |a, b| a.max(b)).reduce_max()
}

/// `row[i] = exp(row[i] - max)`; returns the sum of the new values.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
unsafe fn exp_shifted_sum<V: F32Vec>(row: &mut [f32], max: f32, store: bool) -> f32 {
    let n = row.len();
    let p = row.as_mut_ptr();
    let m = V::splat(max);
    let (mut s0, mut s1) = (V::splat(0.0), V::splat(0.0));
    let mut i = 0;
    while i + 2 * V::LANES <= n {
        // SAFETY: both vectors lie inside `row`.
        let e0 = math::exp(V::load(p.add(i)).sub(m));
        let e1 = math::exp(V::load(p.add(i + V::LANES)).sub(m));
        if store {
            e0.store(p.add(i));
            e1.store(p.add(i + V::LANES));
        }
        s0 = s0.add(e0);
        s1 = s1.add(e1);
        i += 2 * V::LANES;
    }
    while i < n {
        let r = (n - i).min(V::LANES);
        // SAFETY: `r` values remain inside `row`; the tail's extra lanes are -inf → exp = 0.
        let e = math::exp(V::load_tail(p.add(i), r, f32::NEG_INFINITY).sub(m));
        if store {
            e.store_tail(p.add(i), r);
        }
        s0 = s0.add(e);
        i += r;
    }
    s0.add(s1).reduce_add()
}

/// Vectorised softmax; same contract as [`softmax_reference`], within 4 ulp-ish (tests: 2e-6
/// relative + 1e-7 absolute per element).
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn softmax_simd<V: F32Vec>(row: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    let max = row_max::<V>(row);
    let sum = exp_shifted_sum::<V>(row, max, true);
    let inv = V::splat(1.0 / sum);
    simd_map!(V, row, 0.0, |x| x.mul(inv));
}

/// Vectorised log-softmax; same contract as [`log_softmax_reference`].
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn log_softmax_simd<V: F32Vec>(row: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    let max = row_max::<V>(row);
    let sum = exp_shifted_sum::<V>(row, max, false);
    let lse = V::splat(max + sum.ln());
    simd_map!(V, row, 0.0, |x| x.sub(lse));
}
