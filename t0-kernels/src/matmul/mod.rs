//! Matrix multiplication `y = x · Wᵀ` against a linear layer's weight.

use half::{bf16, f16};
use rayon::prelude::*;

/// A borrowed weight matrix `[rows, cols]` (`[out, in]`), row-major, in its storage dtype.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum WeightView<'a> {
    /// 32-bit floats.
    F32 {
        /// `rows * cols` values.
        data: &'a [f32],
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
    },
    /// bfloat16 values, widened to f32 in the kernel.
    Bf16 {
        /// `rows * cols` values.
        data: &'a [bf16],
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
    },
    /// IEEE half values, widened to f32 in the kernel.
    F16 {
        /// `rows * cols` values.
        data: &'a [f16],
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
    },
}

impl<'a> WeightView<'a> {
    /// An f32 view. Panics if `data.len() != rows * cols` (a programming error, not user input).
    pub fn f32(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "f32 weight view: length mismatch");
        WeightView::F32 { data, rows, cols }
    }
    /// A bf16 view. Panics if `data.len() != rows * cols`.
    pub fn bf16(data: &'a [bf16], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "bf16 weight view: length mismatch");
        WeightView::Bf16 { data, rows, cols }
    }
    /// An f16 view. Panics if `data.len() != rows * cols`.
    pub fn f16(data: &'a [f16], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "f16 weight view: length mismatch");
        WeightView::F16 { data, rows, cols }
    }
    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        match *self {
            WeightView::F32 { rows, .. } | WeightView::Bf16 { rows, .. } | WeightView::F16 { rows, .. } => rows,
        }
    }
    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        match *self {
            WeightView::F32 { cols, .. } | WeightView::Bf16 { cols, .. } | WeightView::F16 { cols, .. } => cols,
        }
    }
    /// Row `r` widened to f32 into `out` (length `cols`).
    pub fn row_to_f32(&self, r: usize, out: &mut [f32]) {
        let c = self.cols();
        match *self {
            WeightView::F32 { data, .. } => out.copy_from_slice(&data[r * c..(r + 1) * c]),
            WeightView::Bf16 { data, .. } => {
                for (o, v) in out.iter_mut().zip(&data[r * c..(r + 1) * c]) {
                    *o = v.to_f32();
                }
            }
            WeightView::F16 { data, .. } => {
                for (o, v) in out.iter_mut().zip(&data[r * c..(r + 1) * c]) {
                    *o = v.to_f32();
                }
            }
        }
    }
}

/// Dot product of `x` with row `r` of `w`, accumulated in order in f32.
fn dot_row(x: &[f32], w: &WeightView<'_>, r: usize) -> f32 {
    let c = w.cols();
    match *w {
        WeightView::F32 { data, .. } => x.iter().zip(&data[r * c..(r + 1) * c]).map(|(a, b)| a * b).sum(),
        WeightView::Bf16 { data, .. } => {
            x.iter().zip(&data[r * c..(r + 1) * c]).map(|(a, b)| a * b.to_f32()).sum()
        }
        WeightView::F16 { data, .. } => {
            x.iter().zip(&data[r * c..(r + 1) * c]).map(|(a, b)| a * b.to_f32()).sum()
        }
    }
}

/// Reference `out[m, rows] = x[m, cols] · Wᵀ`: one in-order dot product per output, threads
/// over output columns.
pub fn matmul_reference(x: &[f32], m: usize, w: &WeightView<'_>, out: &mut [f32]) {
    let (n, k) = (w.rows(), w.cols());
    assert_eq!(x.len(), m * k, "matmul: x is not [m, k]");
    assert_eq!(out.len(), m * n, "matmul: out is not [m, n]");
    for (xi, oi) in x.chunks_exact(k.max(1)).zip(out.chunks_exact_mut(n.max(1))) {
        oi.par_iter_mut()
            .with_min_len(64)
            .enumerate()
            .for_each(|(j, o)| *o = dot_row(xi, w, j));
    }
    if k == 0 {
        out.fill(0.0);
    }
}
