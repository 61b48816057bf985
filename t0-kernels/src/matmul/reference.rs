//! The scalar reference matmul: the specification every other implementation is tested against.

use rayon::prelude::*;

use super::pack::{PackDType, PackedWeight};
use super::{round_bf16, WeightView};
use crate::quant::quantize_row_reference;

/// Dot product of `x` with row `r` of `w`, accumulated in order in f32.
fn dot_row(x: &[f32], w: &WeightView<'_>, r: usize) -> f32 {
    let c = w.cols();
    match *w {
        WeightView::F32 { data, .. } => x.iter().zip(&data[r * c..(r + 1) * c]).map(|(a, b)| a * b).sum(),
        WeightView::Bf16 { data, .. } => x.iter().zip(&data[r * c..(r + 1) * c]).map(|(a, b)| a * b.to_f32()).sum(),
        WeightView::F16 { data, .. } => x.iter().zip(&data[r * c..(r + 1) * c]).map(|(a, b)| a * b.to_f32()).sum(),
        WeightView::Packed(p) => {
            let mut row = vec![0.0f32; c];
            p.row_to_f32(r, &mut row);
            if p.dtype() == PackDType::Bf16 {
                x.iter().zip(&row).map(|(&a, b)| round_bf16(a) * b).sum()
            } else {
                x.iter().zip(&row).map(|(a, b)| a * b).sum()
            }
        }
    }
}

/// Reference `out[m, rows] = x[m, cols] · Wᵀ`: one in-order dot product per output, threads
/// over output columns.
///
/// For a [`PackDType::Bf16`] packed weight the activations are first rounded to bf16 (nearest
/// even), so each product is bf16 × bf16, exact in f32; raw bf16 and f16 views multiply the
/// f32 activations by the widened weights.
///
/// For an [`PackDType::Int8`] packed weight the activations are first quantised per row
/// ([`crate::quant`]), the dot product is exact in i32, and
/// `out[i, n] = (Σ_k qx[i,k]·qw[n,k]) as f32 · (sx[i] · sw[n])`.
pub fn matmul_reference(x: &[f32], m: usize, w: &WeightView<'_>, out: &mut [f32]) {
    let (n, k) = (w.rows(), w.cols());
    assert_eq!(x.len(), m * k, "matmul: x is not [m, k]");
    assert_eq!(out.len(), m * n, "matmul: out is not [m, n]");
    if k == 0 {
        out.fill(0.0);
        return;
    }
    if n == 0 {
        return;
    }
    if let WeightView::Packed(p) = w {
        if p.dtype() == PackDType::Int8 {
            return matmul_int8_reference(x, m, p, out);
        }
    }
    for (xi, oi) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        oi.par_iter_mut().with_min_len(64).enumerate().for_each(|(j, o)| *o = dot_row(xi, w, j));
    }
}

/// Reference int8 matmul (see [`matmul_reference`]).
fn matmul_int8_reference(x: &[f32], m: usize, w: &PackedWeight, out: &mut [f32]) {
    let (n, k) = (w.rows(), w.cols());
    let mut qx = vec![0i8; m * k];
    let sx: Vec<f32> =
        x.chunks_exact(k).zip(qx.chunks_exact_mut(k)).map(|(xr, qr)| quantize_row_reference(xr, qr)).collect();
    let sw = w.scales();
    out.par_chunks_mut(n).enumerate().for_each(|(i, oi)| {
        let mut qw = vec![0i8; k];
        let qr = &qx[i * k..(i + 1) * k];
        for (j, o) in oi.iter_mut().enumerate() {
            w.row_codes(j, &mut qw);
            let acc: i32 = qr.iter().zip(&qw).map(|(&a, &b)| a as i32 * b as i32).sum();
            *o = acc as f32 * (sx[i] * sw[j]);
        }
    });
}
