//! Numerically safe softmax and log-softmax over one row.

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
