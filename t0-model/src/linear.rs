//! A bias-free linear layer `y = x · Wᵀ` over a weight in its storage dtype.

use t0_kernels::{Kernels, WeightView};
use t0_tensor::{DType, Tensor};

/// A linear layer's weight `[out, in]` (HF layout), in f32, bf16 or f16, owned or mapped.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    rows: usize,
    cols: usize,
}

impl Linear {
    /// Wrap a `[out, in]` float tensor (checked by the loader).
    pub(crate) fn new(weight: Tensor) -> Self {
        let (rows, cols) = (weight.shape()[0], weight.shape()[1]);
        debug_assert!(matches!(weight.dtype(), DType::F32 | DType::BF16 | DType::F16));
        Self { weight, rows, cols }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.cols
    }

    /// The weight tensor.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The kernels' view of the weight.
    pub fn view(&self) -> WeightView<'_> {
        let (r, c) = (self.rows, self.cols);
        let w = &self.weight;
        // The loader only builds `Linear`s from float tensors, so these accesses cannot fail.
        match w.dtype() {
            DType::BF16 => WeightView::bf16(w.as_bf16().unwrap_or_default(), r, c),
            DType::F16 => WeightView::f16(w.as_f16().unwrap_or_default(), r, c),
            _ => WeightView::f32(w.as_f32().unwrap_or_default(), r, c),
        }
    }

    /// `out[m, out] = x[m, in] · Wᵀ`.
    pub fn forward(&self, k: &dyn Kernels, x: &[f32], m: usize, out: &mut [f32]) {
        k.matmul(x, m, &self.view(), out);
    }

    /// Bytes of weight data.
    pub fn nbytes(&self) -> usize {
        self.weight.nbytes()
    }
}
