//! T5's RMS norm (`T5LayerNorm`): `y = w · x / sqrt(mean(x²) + eps)`; no mean, no bias.

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
