//! Weights converted once, at load, into the layout the matmul kernels stream: [`PackedWeight`].
//!
//! # Layout
//!
//! The `[rows, cols]` (`[out, in]`) matrix is cut into **panels** of [`PANEL`] = 32 consecutive
//! rows (the last one zero-padded). Inside a panel the storage is **k-major**, so one step of the
//! inner loop reads one contiguous, 64-byte aligned run holding all 32 outputs' weights for the
//! next few input features:
//!
//! | dtype  | panel bytes      | element `(r = 32p + j, k)` inside panel `p`                |
//! |--------|------------------|-------------------------------------------------------------|
//! | `F32`  | `cols·128`       | `f32` at `k·32 + j`                                         |
//! | `Bf16` | `⌈cols/2⌉·128`   | `bf16` at `(k/2)·64 + 2j + k%2` (pairs of k per output)     |
//! | `Int8` | `⌈cols/4⌉·128`   | `i8` at `(k/4)·128 + 4j + k%4` (quads of k per output)      |
//!
//! Pairs and quads are what `vdpbf16ps` and `vpdpbusd`/`vpmaddubsw` consume; widening a bf16
//! pair to two f32 vectors is one shift and one mask. Padding (rows past `rows`, k past `cols`)
//! is zero. `Int8` also stores one f32 scale per row (`w ≈ q · scale`, see [`crate::quant`]) and
//! `128 · Σ_k q` per row, which the VNNI kernels subtract after feeding activations as `u8 = q+128`.
//!
//! The same panels serve decode (M ≤ 8: the kernel streams each panel once for all rows of `x`)
//! and GEMM (M > 8: `kc`-slices of a panel are already the packed B-operand; bf16 is widened
//! per slice into L1-resident scratch, int8 runs integer tiles).

use std::sync::Arc;

use half::{bf16, f16};
use rayon::prelude::*;

use crate::linebuf::LineBuf;
use crate::quant::{int8_code, int8_params};
use crate::scratch::lines_for;
use crate::WeightView;

/// Rows per panel.
pub const PANEL: usize = 32;

/// Storage dtype of a [`PackedWeight`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackDType {
    /// f32, exact.
    F32,
    /// bfloat16 (round to nearest even from f32). The matmul rounds the activations to bf16
    /// too, as bf16 GEMMs do (oneDNN, CTranslate2, PyTorch): each product is bf16 × bf16,
    /// exact in f32, and the sums are f32 (relative error ≤ 2⁻⁹ per factor). With AVX-512 BF16
    /// that is `vdpbf16ps`, twice the f32 FMA rate.
    Bf16,
    /// int8 per output channel, symmetric, plus f32 scales; activations are quantised per row on
    /// the fly with the same rule and the dot products are exact in i32.
    Int8,
}

/// Panel bytes that something else owns and keeps alive, such as the memory map of a converted
/// model file (see [`PackedWeight::from_parts`]).
pub trait SharedPanels: Send + Sync {
    /// The bytes: every panel, in order, laid out as the module docs say.
    fn panel_bytes(&self) -> &[u8];
}

/// Where a packed weight's panels live.
#[derive(Clone)]
enum Panels {
    /// Packed here (2 MiB pages where the OS gives them).
    Owned(LineBuf),
    /// Read in place from someone else's bytes (64-byte aligned, checked).
    Shared(Arc<dyn SharedPanels>),
}

impl Panels {
    fn bytes(&self) -> &[u8] {
        match self {
            Panels::Owned(lines) => bytemuck::cast_slice(lines),
            Panels::Shared(s) => s.panel_bytes(),
        }
    }
}

/// A linear layer's weight, converted once into the kernels' panel layout (see the module docs).
/// Hand it to [`crate::Kernels::matmul`] through [`PackedWeight::view`].
#[derive(Clone)]
pub struct PackedWeight {
    dtype: PackDType,
    rows: usize,
    cols: usize,
    data: Panels,
    scales: Vec<f32>,
    comp: Vec<i32>,
}

/// Why [`PackedWeight::from_parts`] refused its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackError(pub String);

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PackError {}

impl std::fmt::Debug for PackedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedWeight")
            .field("dtype", &self.dtype)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// The packed width of `cols` for `dtype` (k padded to the pair/quad size).
fn padded_cols(dtype: PackDType, cols: usize) -> usize {
    match dtype {
        PackDType::F32 => cols,
        PackDType::Bf16 => cols.div_ceil(2) * 2,
        PackDType::Int8 => cols.div_ceil(4) * 4,
    }
}

/// Bytes of one stored element.
fn elem_bytes(dtype: PackDType) -> usize {
    match dtype {
        PackDType::F32 => 4,
        PackDType::Bf16 => 2,
        PackDType::Int8 => 1,
    }
}

impl PackedWeight {
    /// Packs an f32 `[rows, cols]` row-major matrix. Panics if `data.len() != rows * cols`
    /// (a programming error: the caller checked the tensor's shape).
    pub fn from_f32(data: &[f32], rows: usize, cols: usize, dtype: PackDType) -> Self {
        Self::from_view(&WeightView::f32(data, rows, cols), dtype)
    }

    /// Packs any weight view (f32, bf16, f16, or another packed weight, dequantised first).
    /// Threads over panels.
    pub fn from_view(w: &WeightView<'_>, dtype: PackDType) -> Self {
        Self::from_stacked(std::slice::from_ref(w), dtype)
    }

    /// Packs several weights with the same number of columns as one, their rows stacked in
    /// order: a matmul against the result computes all of them in one pass (e.g. a fused
    /// q/k/v projection, whose output row is `[q | k | v]`). Panics if `parts` is empty or the
    /// column counts differ (programming errors).
    pub fn from_stacked(parts: &[WeightView<'_>], dtype: PackDType) -> Self {
        assert!(!parts.is_empty(), "from_stacked: no weights");
        let cols = parts[0].cols();
        assert!(parts.iter().all(|w| w.cols() == cols), "from_stacked: column counts differ");
        let rows: usize = parts.iter().map(WeightView::rows).sum();
        let row_to_f32 = |mut r: usize, out: &mut [f32]| {
            for w in parts {
                if r < w.rows() {
                    return w.row_to_f32(r, out);
                }
                r -= w.rows();
            }
        };
        let panels = rows.div_ceil(PANEL);
        let kp = padded_cols(dtype, cols);
        let panel_bytes = kp * PANEL * elem_bytes(dtype);
        let panel_lines = lines_for(panel_bytes);
        debug_assert_eq!(panel_lines * 64, panel_bytes);
        let mut data = LineBuf::zeroed(panels * panel_lines);
        let mut scales = vec![0.0f32; if dtype == PackDType::Int8 { panels * PANEL } else { 0 }];
        let mut comp = vec![0i32; scales.len()];
        if panel_lines > 0 {
            let scale_chunks = scales.chunks_mut(PANEL).map(Some).chain(std::iter::repeat_with(|| None));
            let comp_chunks = comp.chunks_mut(PANEL).map(Some).chain(std::iter::repeat_with(|| None));
            let jobs: Vec<_> = data.chunks_mut(panel_lines).zip(scale_chunks).zip(comp_chunks).enumerate().collect();
            jobs.into_par_iter().for_each(|(p, ((lines, mut sc), mut cp))| {
                let mut row = vec![0.0f32; cols];
                let mut q = vec![0i8; cols];
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(lines);
                for j in 0..PANEL.min(rows - p * PANEL) {
                    row_to_f32(p * PANEL + j, &mut row);
                    match dtype {
                        PackDType::F32 => {
                            let dst: &mut [f32] = bytemuck::cast_slice_mut(bytes);
                            for (k, &v) in row.iter().enumerate() {
                                dst[k * PANEL + j] = v;
                            }
                        }
                        PackDType::Bf16 => {
                            let dst: &mut [u16] = bytemuck::cast_slice_mut(bytes);
                            for (k, &v) in row.iter().enumerate() {
                                dst[(k / 2) * 2 * PANEL + 2 * j + k % 2] = bf16::from_f32(v).to_bits();
                            }
                        }
                        PackDType::Int8 => {
                            let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                            let (scale, mul) = int8_params(amax);
                            let mut sum = 0i32;
                            for (qk, &v) in q.iter_mut().zip(&row) {
                                *qk = int8_code(v, mul);
                                sum += *qk as i32;
                            }
                            for (k, &qk) in q.iter().enumerate() {
                                bytes[(k / 4) * 4 * PANEL + 4 * j + k % 4] = qk as u8;
                            }
                            if let (Some(sc), Some(cp)) = (sc.as_deref_mut(), cp.as_deref_mut()) {
                                sc[j] = scale;
                                cp[j] = 128 * sum;
                            }
                        }
                    }
                }
            });
        }
        PackedWeight { dtype, rows, cols, data: Panels::Owned(data), scales, comp }
    }

    /// A packed weight from parts another [`PackedWeight`] gave out ([`PackedWeight::panel_data`],
    /// [`PackedWeight::scales`], [`PackedWeight::compensation`]), e.g. read back from a converted
    /// model file. The panels are used in place when they are 64-byte aligned and copied
    /// otherwise. Sizes are checked against `rows`, `cols` and `dtype` ([`PackedWeight::layout`]);
    /// the int8 compensation terms are recomputed from the codes when `comp` is empty.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use t0_kernels::{PackDType, PackedWeight, SharedPanels};
    /// struct Bytes(Vec<u8>);
    /// impl SharedPanels for Bytes {
    ///     fn panel_bytes(&self) -> &[u8] { &self.0 }
    /// }
    /// let w = PackedWeight::from_f32(&[1.0, -2.0, 3.0, 0.5, 4.0, -1.0], 2, 3, PackDType::Int8);
    /// let bytes = Arc::new(Bytes(w.panel_data().to_vec()));
    /// let back = PackedWeight::from_parts(PackDType::Int8, 2, 3, bytes, w.scales().to_vec(), Vec::new())?;
    /// assert_eq!(back.panel_data(), w.panel_data());
    /// assert_eq!(back.compensation(), w.compensation());
    /// # Ok::<(), t0_kernels::PackError>(())
    /// ```
    pub fn from_parts(
        dtype: PackDType,
        rows: usize,
        cols: usize,
        panels: Arc<dyn SharedPanels>,
        scales: Vec<f32>,
        comp: Vec<i32>,
    ) -> Result<Self, PackError> {
        let want = Self::bytes_for(rows, cols, dtype);
        let bytes = panels.panel_bytes();
        let n_scales = if dtype == PackDType::Int8 { rows.div_ceil(PANEL).saturating_mul(PANEL) } else { 0 };
        let panel_len = want.saturating_sub(n_scales.saturating_mul(8));
        if bytes.len() != panel_len {
            return Err(PackError(format!(
                "{dtype:?} panels of a [{rows}, {cols}] weight take {panel_len} bytes, not {}",
                bytes.len()
            )));
        }
        if scales.len() != n_scales {
            return Err(PackError(format!("{} scales given, {n_scales} expected", scales.len())));
        }
        if !(comp.is_empty() || comp.len() == n_scales) {
            return Err(PackError(format!("{} compensation terms given, {n_scales} expected", comp.len())));
        }
        if let Some(bad) = scales.iter().find(|s| !s.is_finite()) {
            return Err(PackError(format!("int8 scale {bad} is not finite")));
        }
        let data = if (bytes.as_ptr() as usize).is_multiple_of(64) {
            Panels::Shared(panels)
        } else {
            let mut lines = LineBuf::zeroed(bytes.len() / 64);
            bytemuck::cast_slice_mut::<_, u8>(&mut lines).copy_from_slice(bytes);
            Panels::Owned(lines)
        };
        let mut w = PackedWeight { dtype, rows, cols, data, scales, comp };
        if dtype == PackDType::Int8 && w.comp.is_empty() {
            w.comp = int8_compensation(w.data.bytes(), rows, w.panel_bytes());
        }
        Ok(w)
    }

    /// The shape [`PackedWeight::panel_data`] has when stored as a tensor of `dtype`'s element
    /// type: `[panels, padded cols / g, 32·g]` with `g` = 1 (f32), 2 (bf16 pairs) or 4 (int8
    /// quads); its product is the panel bytes divided by the element size.
    pub fn layout(rows: usize, cols: usize, dtype: PackDType) -> [usize; 3] {
        let g = match dtype {
            PackDType::F32 => 1,
            PackDType::Bf16 => 2,
            PackDType::Int8 => 4,
        };
        [rows.div_ceil(PANEL), padded_cols(dtype, cols) / g, PANEL * g]
    }

    /// Every panel's bytes, in order (what [`PackedWeight::from_parts`] takes back).
    pub fn panel_data(&self) -> &[u8] {
        self.data.bytes()
    }

    /// True when the panels are read in place from shared bytes (a mapped file) rather than
    /// packed into memory of their own.
    pub fn is_shared(&self) -> bool {
        matches!(self.data, Panels::Shared(_))
    }

    /// The same weight with its panels copied into memory of its own (2 MiB pages where the OS
    /// gives them, like a weight packed here); a weight that owns its panels already is returned
    /// as is.
    pub fn into_owned(self) -> Self {
        match &self.data {
            Panels::Owned(_) => self,
            Panels::Shared(s) => {
                let bytes = s.panel_bytes();
                let mut lines = LineBuf::zeroed(bytes.len() / 64);
                bytemuck::cast_slice_mut::<_, u8>(&mut lines).copy_from_slice(bytes);
                PackedWeight { data: Panels::Owned(lines), ..self }
            }
        }
    }

    /// A view to pass to [`crate::Kernels::matmul`] or [`crate::Kernels::embedding`].
    pub fn view(&self) -> WeightView<'_> {
        WeightView::Packed(self)
    }

    /// Storage dtype.
    pub fn dtype(&self) -> PackDType {
        self.dtype
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes a `[rows, cols]` weight takes once packed as `dtype`: what [`PackedWeight::bytes`]
    /// returns for it (rows padded to whole panels, columns to the pair/quad size, plus int8's
    /// per-row scale and compensation term). Saturates instead of overflowing.
    pub fn bytes_for(rows: usize, cols: usize, dtype: PackDType) -> usize {
        let rows = rows.div_ceil(PANEL).saturating_mul(PANEL);
        let extra = if dtype == PackDType::Int8 { 8 } else { 0 };
        rows.saturating_mul(padded_cols(dtype, cols).saturating_mul(elem_bytes(dtype)).saturating_add(extra))
    }

    /// Bytes held (panels including padding, scales and compensation terms).
    pub fn bytes(&self) -> usize {
        self.data.bytes().len() + self.scales.len() * 4 + self.comp.len() * 4
    }

    /// Number of panels.
    pub(crate) fn panels(&self) -> usize {
        self.rows.div_ceil(PANEL)
    }

    /// Input features after padding to the dtype's pair/quad size.
    pub(crate) fn padded_cols(&self) -> usize {
        padded_cols(self.dtype, self.cols)
    }

    /// Bytes of one panel.
    pub(crate) fn panel_bytes(&self) -> usize {
        self.padded_cols() * PANEL * elem_bytes(self.dtype)
    }

    /// Raw bytes of panel `p` (64-byte aligned).
    pub(crate) fn panel(&self, p: usize) -> &[u8] {
        let b = self.panel_bytes();
        &self.data.bytes()[p * b..(p + 1) * b]
    }

    /// Per-row scales (Int8; padded to whole panels), empty otherwise.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Per-row `128 · Σ q` (Int8; padded to whole panels), empty otherwise.
    pub fn compensation(&self) -> &[i32] {
        &self.comp
    }

    /// Row `r`, quantised codes (Int8 only) into `out` (length `cols`).
    pub(crate) fn row_codes(&self, r: usize, out: &mut [i8]) {
        assert_eq!(self.dtype, PackDType::Int8);
        let (p, j) = (r / PANEL, r % PANEL);
        let panel = self.panel(p);
        for (k, o) in out.iter_mut().enumerate().take(self.cols) {
            *o = panel[(k / 4) * 4 * PANEL + 4 * j + k % 4] as i8;
        }
    }

    /// Row `r` widened (or dequantised) to f32 into `out` (length `cols`).
    pub fn row_to_f32(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows, "packed weight: row {r} out of range");
        assert_eq!(out.len(), self.cols, "packed weight: row length mismatch");
        let (p, j) = (r / PANEL, r % PANEL);
        let panel = self.panel(p);
        match self.dtype {
            PackDType::F32 => {
                let src: &[f32] = bytemuck::cast_slice(panel);
                for (k, o) in out.iter_mut().enumerate() {
                    *o = src[k * PANEL + j];
                }
            }
            PackDType::Bf16 => {
                let src: &[u16] = bytemuck::cast_slice(panel);
                for (k, o) in out.iter_mut().enumerate() {
                    *o = bf16::from_bits(src[(k / 2) * 2 * PANEL + 2 * j + k % 2]).to_f32();
                }
            }
            PackDType::Int8 => {
                let s = self.scales[r];
                for (k, o) in out.iter_mut().enumerate() {
                    *o = (panel[(k / 4) * 4 * PANEL + 4 * j + k % 4] as i8) as f32 * s;
                }
            }
        }
    }
}

/// The int8 compensation terms `128 · Σ q` of every row (0 for the padding rows of the last
/// panel), summed over each panel's bytes front to back (`[quad][32 rows][4]`), one panel per
/// task: a converted model's load reads each weight once, in order. Padding columns count too:
/// they are the bytes the unsigned tiles multiply by the activations' zero point.
fn int8_compensation(panels: &[u8], rows: usize, panel_bytes: usize) -> Vec<i32> {
    let mut comp = vec![0i32; rows.div_ceil(PANEL) * PANEL];
    if panel_bytes == 0 {
        return comp;
    }
    comp.par_chunks_mut(PANEL).zip(panels.par_chunks(panel_bytes)).enumerate().for_each(|(p, (c, panel))| {
        let mut sums = [0i32; PANEL];
        for quad in panel.chunks_exact(4 * PANEL) {
            for (s, q) in sums.iter_mut().zip(quad.chunks_exact(4)) {
                *s += q.iter().map(|&b| b as i8 as i32).sum::<i32>();
            }
        }
        for (j, (c, s)) in c.iter_mut().zip(sums).enumerate() {
            *c = if p * PANEL + j < rows { 128 * s } else { 0 };
        }
    });
    comp
}

/// `f16` bits to f32 (for the raw-f16 view's scalar tails).
#[inline]
pub(crate) fn f16_bits_to_f32(b: u16) -> f32 {
    f16::from_bits(b).to_f32()
}

/// `bf16` bits to f32.
#[inline]
pub(crate) fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}
