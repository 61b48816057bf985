//! Symmetric int8 quantisation, per row: `q = round_ties_even(x · 127 / max|x|)`, clamped to
//! `[-127, 127]`, with scale `max|x| / 127` (so `x ≈ q · scale`). A row of zeros (or one whose
//! maximum is not a positive finite number) gets scale 0 and all-zero codes.
//!
//! The same rule quantises weights once at load ([`crate::PackedWeight`], per output channel)
//! and activations on the fly (per row of `x`, inside `matmul`), so the SIMD paths reproduce the
//! reference bit for bit: every step is one IEEE operation done in the same order.

/// `(scale, multiplier)` for a row whose largest magnitude is `amax`.
#[inline]
pub fn int8_params(amax: f32) -> (f32, f32) {
    if amax > 0.0 && amax.is_finite() {
        (amax / 127.0, 127.0 / amax)
    } else {
        (0.0, 0.0)
    }
}

/// The code of one value given the row's multiplier.
#[inline]
pub fn int8_code(x: f32, mul: f32) -> i8 {
    // `as i8` saturates (and sends NaN to 0); the clamp keeps the symmetric range.
    (x * mul).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// Reference quantisation of one row into `q` (same length); returns the scale.
pub fn quantize_row_reference(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(x.len(), q.len(), "quantize_row: length mismatch");
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (scale, mul) = int8_params(amax);
    for (o, &v) in q.iter_mut().zip(x) {
        *o = int8_code(v, mul);
    }
    scale
}
