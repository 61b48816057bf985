//! A bias-free linear layer `y = x · Wᵀ`, over either the file's tensor (f32/bf16/f16, read
//! straight from the memory map) or a weight packed at load into the kernels' panel layout
//! (f32, bf16 or int8).

use std::sync::Arc;

use t0_kernels::{Kernels, PackDType, PackedWeight, WeightView};
use t0_tensor::{DType, Tensor};

#[derive(Clone, Debug)]
enum Storage {
    /// The checkpoint's `[out, in]` tensor as stored (owned or mapped).
    Raw(Tensor),
    /// Converted once at load.
    Packed(Arc<PackedWeight>),
}

/// A linear layer's weight `[out, in]` (HF layout).
#[derive(Clone, Debug)]
pub struct Linear {
    storage: Storage,
    rows: usize,
    cols: usize,
}

impl Linear {
    /// Wrap a `[out, in]` float tensor (checked by the loader).
    pub(crate) fn new(weight: Tensor) -> Self {
        let (rows, cols) = (weight.shape()[0], weight.shape()[1]);
        debug_assert!(matches!(weight.dtype(), DType::F32 | DType::BF16 | DType::F16));
        Self { storage: Storage::Raw(weight), rows, cols }
    }

    /// Pack `[out, in]` f32 rows into `dtype` panels.
    pub(crate) fn packed(w: &WeightView<'_>, dtype: PackDType) -> Self {
        let p = PackedWeight::from_view(w, dtype);
        Self { rows: p.rows(), cols: p.cols(), storage: Storage::Packed(Arc::new(p)) }
    }

    /// Pack several `[out_i, in]` weights stacked by rows into one `[Σ out_i, in]` weight.
    pub(crate) fn packed_stacked(parts: &[WeightView<'_>], dtype: PackDType) -> Self {
        let p = PackedWeight::from_stacked(parts, dtype);
        Self { rows: p.rows(), cols: p.cols(), storage: Storage::Packed(Arc::new(p)) }
    }

    /// Wrap a weight packed elsewhere (read back from a converted file).
    pub(crate) fn from_packed(p: PackedWeight) -> Self {
        Self { rows: p.rows(), cols: p.cols(), storage: Storage::Packed(Arc::new(p)) }
    }

    /// The packed weight, when the layer holds one.
    pub(crate) fn packed_weight(&self) -> Option<&PackedWeight> {
        match &self.storage {
            Storage::Packed(p) => Some(p),
            Storage::Raw(_) => None,
        }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.cols
    }

    /// The kernels' view of the weight.
    pub fn view(&self) -> WeightView<'_> {
        let (r, c) = (self.rows, self.cols);
        match &self.storage {
            Storage::Packed(p) => p.view(),
            // The loader only builds raw `Linear`s from float tensors, so these accesses
            // cannot fail.
            Storage::Raw(w) => match w.dtype() {
                DType::BF16 => WeightView::bf16(w.as_bf16().unwrap_or_default(), r, c),
                DType::F16 => WeightView::f16(w.as_f16().unwrap_or_default(), r, c),
                _ => WeightView::f32(w.as_f32().unwrap_or_default(), r, c),
            },
        }
    }

    /// `out[m, out] = x[m, in] · Wᵀ`.
    pub fn forward(&self, k: &dyn Kernels, x: &[f32], m: usize, out: &mut [f32]) {
        k.matmul(x, m, &self.view(), out);
    }

    /// Bytes of weight data.
    pub fn nbytes(&self) -> usize {
        match &self.storage {
            Storage::Raw(t) => t.nbytes(),
            Storage::Packed(p) => p.bytes(),
        }
    }

    /// A short description of the storage (`f32`, `bf16 packed`, ...).
    pub fn describe(&self) -> String {
        match &self.storage {
            Storage::Raw(t) => t.dtype().to_string(),
            Storage::Packed(p) if p.is_shared() => format!("{:?} packed, mapped", p.dtype()).to_lowercase(),
            Storage::Packed(p) => format!("{:?} packed", p.dtype()).to_lowercase(),
        }
    }
}
