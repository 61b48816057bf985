//! T5's RMS norm (`T5LayerNorm`): `y = w · x / sqrt(mean(x²) + eps)`; no mean, no bias.

use crate::simd::{simd_fold, F32Vec};

/// Reference RMS norm over each row of `x` (row length `weight.len()`), written to `out`.
pub fn rms_norm_reference(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    assert_eq!(x.len(), out.len(), "rms_norm: x and out differ in length");
    if d == 0 {
        return;
    }
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let var = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((o, &v), &w) in or.iter_mut().zip(xr).zip(weight) {
            *o = w * (v * inv);
        }
    }
}

/// Vectorised RMS norm; same contract as [`rms_norm_reference`] (tests: 1e-5 relative).
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
pub(crate) unsafe fn rms_norm_simd<V: F32Vec>(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    assert_eq!(x.len(), out.len(), "rms_norm: x and out differ in length");
    if d == 0 {
        return;
    }
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ss = simd_fold!(V, xr, 0.0, 0.0, |v| v.mul(v), |a, b| a.add(b)).reduce_add();
        let inv = V::splat(1.0 / (ss / d as f32 + eps).sqrt());
        let (px, pw, po) = (xr.as_ptr(), weight.as_ptr(), or.as_mut_ptr());
        let mut i = 0;
        while i < d {
            let r = (d - i).min(V::LANES);
            // SAFETY: `r` values remain in each of the three rows (all of length `d`).
            let (xv, wv) = if r == V::LANES {
                (V::load(px.add(i)), V::load(pw.add(i)))
            } else {
                (V::load_tail(px.add(i), r, 0.0), V::load_tail(pw.add(i), r, 0.0))
            };
            let y = wv.mul(xv.mul(inv));
            if r == V::LANES {
                y.store(po.add(i));
            } else {
                y.store_tail(po.add(i), r);
            }
            i += r;
        }
    }
}
