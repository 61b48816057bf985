//! Matrix multiplication `y = x · Wᵀ` against a linear layer's weight.
//!
//! - `reference`: the scalar specification ([`matmul_reference`]).
//! - `pack`: [`PackedWeight`], weights converted once at load into the kernels' panel layout.
//! - `avx512`, `avx2`, `neon`: per-ISA microkernels behind `MatmulIsa`; the drivers below
//!   (threading, blocking, packing activations) are shared.
//!
//! Paths, by weight storage and `m` (rows of `x`):
//! - raw `F32`/`Bf16`/`F16` view (e.g. straight from a memory map), `m ≤ 8`: each weight row is
//!   streamed once as a contiguous dot product against all `m` rows of `x` ("GEMV"); threads
//!   split the output rows.
//! - packed `F32`/`Bf16`, `m ≤ 8`: each panel is streamed once; all `m` rows share the pass.
//! - `m > 8` (f32/bf16, raw or packed): blocked GEMM. `x` is packed once into `MR`-row tiles,
//!   weight panels are sliced by `KC` (packed per slice when the view is raw, widened when
//!   bf16), and an `MR × 32` register-tile microkernel accumulates in f32.
//! - packed `Int8`, any `m`: activations are quantised per row, integer tiles of up to 8 rows
//!   run against each panel (VNNI `vpdpbusd`, or AVX2 `vpmaddubsw`), then rescale to f32.

mod pack;
mod reference;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use half::{bf16, f16};
use rayon::prelude::*;

pub use pack::{PackDType, PackError, PackedWeight, SharedPanels, PANEL};
pub use reference::matmul_reference;

use crate::scratch::{with_f32_scratch, with_scratch};

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
    /// A weight packed at load time ([`PackedWeight`]: f32, bf16 or int8 panels).
    Packed(&'a PackedWeight),
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
            WeightView::Packed(p) => p.rows(),
        }
    }
    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        match *self {
            WeightView::F32 { cols, .. } | WeightView::Bf16 { cols, .. } | WeightView::F16 { cols, .. } => cols,
            WeightView::Packed(p) => p.cols(),
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
            WeightView::Packed(p) => p.row_to_f32(r, out),
        }
    }

    /// Bytes of weight storage this view streams per full pass.
    pub fn bytes(&self) -> usize {
        match *self {
            WeightView::F32 { data, .. } => data.len() * 4,
            WeightView::Bf16 { data, .. } => data.len() * 2,
            WeightView::F16 { data, .. } => data.len() * 2,
            WeightView::Packed(p) => p.bytes(),
        }
    }
}

/// Rows of `x` up to which the weight-streaming ("GEMV") paths are used.
pub(crate) const GEMV_MAX_M: usize = 8;
/// Depth of one GEMM k-slice (a `KC × 32` f32 weight slice is 32 KiB: it stays in L1/L2 while
/// every row tile of `x` passes over it).
pub(crate) const KC: usize = 256;
/// Largest packed `x` (bytes) for which GEMM walks panel by panel (full depth each) rather than
/// k-slice by k-slice.
pub(crate) const PANEL_OUTER_MAX_X_BYTES: usize = 512 << 10;
/// Rows per int8 tile (activations are packed in tiles of this many rows).
pub(crate) const MR_INT8: usize = 8;

/// How many concurrent streams each decode task reads its weight panels as (1 or 2; see
/// [`decode_streams`]). 0 until first read.
static DECODE_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// The number of places in memory each thread reads weights from at once in the decode paths
/// (`m ≤ 8` on packed weights): `2` (the default) splits every panel's depth into two halves
/// read side by side, which keeps more DRAM requests in flight per core than one sequential
/// stream; `1` reads each panel front to back. Set by `T0_DECODE_STREAMS=1|2` at first use, or
/// by [`set_decode_streams`].
///
/// With two streams a panel's f32 sums are `(Σ first half) + (Σ second half)`, on every
/// instruction set and for every `m`, so a row's result does not depend on its batch.
pub fn decode_streams() -> usize {
    match DECODE_STREAMS.load(Ordering::Relaxed) {
        0 => {
            let n = match std::env::var("T0_DECODE_STREAMS").as_deref() {
                Ok("1") => 1,
                _ => 2,
            };
            DECODE_STREAMS.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// Overrides [`decode_streams`] for this process (values other than 1 mean 2). For A/B
/// benchmarks; results change in the last bits of f32 and bf16 sums.
pub fn set_decode_streams(n: usize) {
    DECODE_STREAMS.store(if n == 1 { 1 } else { 2 }, Ordering::Relaxed);
}

/// What one instruction set provides to the shared drivers. Every method is a
/// `#[target_feature]` kernel; `self` carries run-time feature flags (e.g. VNNI).
///
/// # Safety
/// Implementations may only be constructed once their instruction set has been detected.
/// Callers uphold each method's pointer contract.
pub(crate) unsafe trait MatmulIsa: Copy + Send + Sync {
    /// Rows per f32 GEMM tile.
    const MR: usize;

    /// Whether int8 tiles take activations as `u8 = q + 128` (and subtract the compensation);
    /// otherwise as `i8 = q`.
    fn int8_unsigned(self) -> bool;

    /// `out[i·ldo + r] = Σ_k x[i·k + kk] · w[r·k + kk]` for `i < m ≤ 8`, `r < rows`;
    /// `w` is row-major f32 with row length `k`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemv_rows_f32(
        self,
        x: *const f32,
        m: usize,
        k: usize,
        w: *const f32,
        rows: usize,
        out: *mut f32,
        ldo: usize,
    );
    /// As [`Self::gemv_rows_f32`] with bf16 weights (bit patterns).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemv_rows_bf16(
        self,
        x: *const f32,
        m: usize,
        k: usize,
        w: *const u16,
        rows: usize,
        out: *mut f32,
        ldo: usize,
    );
    /// As [`Self::gemv_rows_f32`] with f16 weights (bit patterns).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemv_rows_f16(
        self,
        x: *const f32,
        m: usize,
        k: usize,
        w: *const u16,
        rows: usize,
        out: *mut f32,
        ldo: usize,
    );

    /// f32 tile: `C[i, j] (+)= Σ_kk a[kk·a_ks + i] · b[kk·32 + j]` for `i < mr ≤ MR`,
    /// `j < nc ≤ 32`, `kk < kc`; `C[i, j]` is `c[i·ldc + j]`; adds to C when `accumulate`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_f32(
        self,
        mr: usize,
        kc: usize,
        a: *const f32,
        a_ks: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
        accumulate: bool,
    );

    /// [`Self::tile_f32`] (writing, not adding) over a full panel depth `kc`, read as two
    /// streams: the sums over `k < kc/2` and over `k ≥ kc/2` are kept apart and added last,
    /// bit-identical to [`split_tile_f32`], which is the default.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_f32_2s(
        self,
        mr: usize,
        kc: usize,
        a: *const f32,
        a_ks: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
    ) {
        split_tile_f32(self, mr, kc, a, a_ks, b, c, ldc, nc)
    }

    /// bf16-panel tile for `mr ≤ 8`: `C[i, j] = Σ_k a[k·a_ks + i] · W(j, k)` over `kp` pairs of
    /// a packed bf16 panel `b` (`k < 2·kp`; `a` has `2·kp` rows).
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_bf16(
        self,
        mr: usize,
        kp: usize,
        a: *const f32,
        a_ks: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        nc: usize,
    );

    /// [`Self::tile_bf16`] over a full panel depth of `kp` pairs, read as two streams: the sums
    /// over pairs `< kp/2` and `≥ kp/2` are kept apart and added last, bit-identical to
    /// [`split_tile_bf16`], which is the default.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_bf16_2s(
        self,
        mr: usize,
        kp: usize,
        a: *const f32,
        a_ks: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        nc: usize,
    ) {
        split_tile_bf16(self, mr, kp, a, a_ks, b, c, ldc, nc)
    }

    /// int8 tile for `mr ≤ MR_INT8`: `acc[i, j] = Σ_q Σ_t A(q, i, t) · B(q, j, t)` with
    /// `A = a[(q·a_ks + i)·4 + t]` (u8 or i8 per [`Self::int8_unsigned`]) and
    /// `B = b[q·128 + 4j + t]` (i8), minus `comp[j]` when unsigned; then
    /// `c[i·ldc + j] = acc as f32 · (sx[i] · sw[j])`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_int8(
        self,
        mr: usize,
        kq: usize,
        a: *const u8,
        a_ks: usize,
        b: *const u8,
        comp: *const i32,
        sx: *const f32,
        sw: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
    );

    /// [`Self::tile_int8`], free to read the panel as two streams (the first and second half of
    /// the depth at once). Integer sums are exact, so any split gives the same result; the
    /// default is [`Self::tile_int8`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_int8_2s(
        self,
        mr: usize,
        kq: usize,
        a: *const u8,
        a_ks: usize,
        b: *const u8,
        comp: *const i32,
        sx: *const f32,
        sw: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
    ) {
        self.tile_int8(mr, kq, a, a_ks, b, comp, sx, sw, c, ldc, nc)
    }

    /// [`Self::tile_int8`] that also asks for `ahead` (the next panel) to be brought into L2
    /// while it runs, spread over its passes, so that a tile re-reading its panel from L2 for
    /// each group of rows does not then wait for the next panel from DRAM. The default ignores
    /// `ahead`. Prefetching never faults, so `ahead` only needs to be a valid slice.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_int8_ahead(
        self,
        mr: usize,
        kq: usize,
        a: *const u8,
        a_ks: usize,
        b: *const u8,
        comp: *const i32,
        sx: *const f32,
        sw: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
        ahead: &[u8],
    ) {
        let _ = ahead;
        self.tile_int8(mr, kq, a, a_ks, b, comp, sx, sw, c, ldc, nc)
    }

    /// Quantises `x[..k]` into `dst[..k]` ([`crate::quant`] rule; `u8 = q + 128` when
    /// `unsigned`); returns the scale. Bit-identical to the reference.
    unsafe fn quantize_row(self, x: *const f32, k: usize, dst: *mut u8, unsigned: bool) -> f32;

    /// Widens `kc` k-steps (`kc` even) of a packed bf16 panel into an f32 `[kc][32]` slice.
    unsafe fn widen_bf16_panel(self, src: *const u16, kc: usize, dst: *mut f32);

    /// Transposes `rows ≤ 32` rows of a raw f32 matrix (row stride `ldw`), `kc` columns each,
    /// into an f32 `[kc][32]` slice, zero-filling rows `rows..32`.
    unsafe fn pack_rows_f32(self, w: *const f32, ldw: usize, rows: usize, kc: usize, dst: *mut f32);
}

/// The two-stream f32 tile as two calls of [`MatmulIsa::tile_f32`]: the first half written,
/// the second added (`hi + lo`, the same bits as `lo + hi`).
///
/// # Safety
/// As [`MatmulIsa::tile_f32`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn split_tile_f32<I: MatmulIsa>(
    isa: I,
    mr: usize,
    kc: usize,
    a: *const f32,
    a_ks: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    nc: usize,
) {
    let kh = kc / 2;
    isa.tile_f32(mr, kh, a, a_ks, b, c, ldc, nc, false);
    isa.tile_f32(mr, kc - kh, a.add(kh * a_ks), a_ks, b.add(kh * PANEL), c, ldc, nc, true);
}

/// The two-stream bf16 tile as two calls of [`MatmulIsa::tile_bf16`]: the first half into `c`,
/// the second into a buffer, then added (`hi + lo`, the same bits as `lo + hi`).
///
/// # Safety
/// As [`MatmulIsa::tile_bf16`] (`mr ≤ 8`).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn split_tile_bf16<I: MatmulIsa>(
    isa: I,
    mr: usize,
    kp: usize,
    a: *const f32,
    a_ks: usize,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    nc: usize,
) {
    debug_assert!(mr <= 8 && nc <= PANEL);
    let kh = kp / 2;
    let mut hi = [0.0f32; 8 * PANEL];
    isa.tile_bf16(mr, kh, a, a_ks, b, c, ldc, nc);
    isa.tile_bf16(mr, kp - kh, a.add(2 * kh * a_ks), a_ks, b.add(2 * kh * PANEL), hi.as_mut_ptr(), PANEL, nc);
    for i in 0..mr {
        for j in 0..nc {
            *c.add(i * ldc + j) += hi[i * PANEL + j];
        }
    }
}

/// A raw pointer that may cross threads; the drivers use it where tasks write provably disjoint
/// parts of one output buffer.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: only used for disjoint writes (see each use).
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

/// Splits `0..units` into about `parts` chunks whose starts are multiples of `align` and runs
/// `f` on each, in parallel.
fn par_ranges(units: usize, parts: usize, align: usize, f: impl Fn(Range<usize>) + Sync + Send) {
    let per = units.div_ceil(parts.max(1)).div_ceil(align).max(1) * align;
    let chunks = units.div_ceil(per);
    if chunks <= 1 {
        f(0..units);
    } else {
        (0..chunks).into_par_iter().for_each(|c| f(c * per..((c + 1) * per).min(units)));
    }
}

/// Asks for `bytes` at `p` to be brought into L2 (x86 `prefetcht1`, one per cache line); a
/// no-op elsewhere. Never faults, whatever the address.
#[inline]
fn prefetch_l2(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let mut o = 0;
        while o < bytes {
            // SAFETY: prefetching has no architectural effect and never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(o).cast()) };
            o += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// Runs `f(panel range, tile range)` in parallel over a grid covering `panels × tiles`: the
/// panels are split across tasks, and the row tiles too when there are too few panels. The
/// grid is computed per job, not collected (no allocation).
fn par_panel_tiles(panels: usize, tiles: usize, f: impl Fn(Range<usize>, Range<usize>) + Sync + Send) {
    let n_parts = task_target().min(panels);
    let m_parts = (task_target() / n_parts.max(1)).clamp(1, tiles.max(1));
    let (n_per, m_per) = (panels.div_ceil(n_parts.max(1)).max(1), tiles.div_ceil(m_parts).max(1));
    let m_jobs = tiles.div_ceil(m_per);
    (0..panels.div_ceil(n_per) * m_jobs).into_par_iter().for_each(|j| {
        let (a, b) = (j / m_jobs, j % m_jobs);
        f(a * n_per..((a + 1) * n_per).min(panels), b * m_per..((b + 1) * m_per).min(tiles))
    });
}

/// Number of parallel tasks to aim for.
fn task_target() -> usize {
    rayon::current_num_threads() * 4
}

/// The shared matmul entry point: picks the path for `w`'s storage and `m`.
pub(crate) fn matmul_with<I: MatmulIsa>(isa: I, x: &[f32], m: usize, w: &WeightView<'_>, out: &mut [f32]) {
    let (n, k) = (w.rows(), w.cols());
    assert_eq!(x.len(), m * k, "matmul: x is not [m, k]");
    assert_eq!(out.len(), m * n, "matmul: out is not [m, n]");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let gemv = m <= GEMV_MAX_M;
    match *w {
        WeightView::F32 { data, .. } if gemv => gemv_rows(isa, x, m, RawRows::F32(data), n, k, out),
        WeightView::Bf16 { data, .. } if gemv => gemv_rows(isa, x, m, RawRows::Bf16(data), n, k, out),
        WeightView::F16 { data, .. } if gemv => gemv_rows(isa, x, m, RawRows::F16(data), n, k, out),
        WeightView::F32 { data, .. } => gemm(isa, x, m, Slices::RawF32(data), n, k, out),
        WeightView::Bf16 { data, .. } => gemm(isa, x, m, Slices::RawBf16(bytemuck::cast_slice(data)), n, k, out),
        WeightView::F16 { data, .. } => gemm(isa, x, m, Slices::RawF16(bytemuck::cast_slice(data)), n, k, out),
        WeightView::Packed(p) => match p.dtype() {
            // One full-depth pass per panel while all rows fit one f32 tile.
            PackDType::F32 if m <= I::MR => gemv_packed(isa, x, m, p, out),
            PackDType::Bf16 if gemv => gemv_packed(isa, x, m, p, out),
            PackDType::F32 => gemm(isa, x, m, Slices::PackedF32(p), n, k, out),
            PackDType::Bf16 => gemm(isa, x, m, Slices::PackedBf16(p), n, k, out),
            PackDType::Int8 => matmul_int8(isa, x, m, p, out),
        },
    }
}

/// A raw row-major weight, by dtype.
#[derive(Clone, Copy)]
enum RawRows<'a> {
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
    F16(&'a [f16]),
}

/// GEMV on a raw row-major weight: threads split the output rows; each weight row is read once.
fn gemv_rows<I: MatmulIsa>(isa: I, x: &[f32], m: usize, w: RawRows<'_>, n: usize, k: usize, out: &mut [f32]) {
    let optr = SendPtr(out.as_mut_ptr());
    par_ranges(n, task_target(), 8, |r| {
        let o = optr;
        // SAFETY: rows `r` of `w` lie inside it (`n·k` values); this task alone writes columns
        // `r` of every row of `out` (`m × n`); `isa` exists only if its features were detected.
        unsafe {
            let dst = o.0.add(r.start);
            match w {
                RawRows::F32(d) => isa.gemv_rows_f32(x.as_ptr(), m, k, d.as_ptr().add(r.start * k), r.len(), dst, n),
                RawRows::Bf16(d) => {
                    isa.gemv_rows_bf16(x.as_ptr(), m, k, d.as_ptr().add(r.start * k).cast(), r.len(), dst, n)
                }
                RawRows::F16(d) => {
                    isa.gemv_rows_f16(x.as_ptr(), m, k, d.as_ptr().add(r.start * k).cast(), r.len(), dst, n)
                }
            }
        }
    });
}

/// Copies `x[m, k]` into `dst` as `[k_rows][m]` (k-major), zero-filling rows `k..k_rows`.
fn pack_x_kmajor(x: &[f32], m: usize, k: usize, dst: &mut [f32]) {
    for (kk, row) in dst.chunks_exact_mut(m).enumerate() {
        if kk < k {
            for (i, d) in row.iter_mut().enumerate() {
                *d = x[i * k + kk];
            }
        } else {
            row.fill(0.0);
        }
    }
}

/// GEMV on a packed f32 or bf16 weight (`m ≤ 8`): `x` is copied k-major once, then threads
/// split the panels and stream each one once.
fn gemv_packed<I: MatmulIsa>(isa: I, x: &[f32], m: usize, w: &PackedWeight, out: &mut [f32]) {
    let (n, k, kp) = (w.rows(), w.cols(), w.padded_cols());
    let dtype = w.dtype();
    with_f32_scratch(kp * m, |xp| {
        pack_x_kmajor(x, m, k, xp);
        let xp: &[f32] = xp;
        let optr = SendPtr(out.as_mut_ptr());
        let two = decode_streams() == 2;
        par_ranges(w.panels(), task_target(), 1, |panels| {
            let o = optr;
            for p in panels {
                let nc = PANEL.min(n - p * PANEL);
                let b = w.panel(p);
                // SAFETY: `xp` holds `kp·m` values, the panel `kp·32` elements; this task alone
                // writes columns `32p..32p+nc` of `out`; the ISA was detected.
                unsafe {
                    let c = o.0.add(p * PANEL);
                    match dtype {
                        PackDType::F32 if two => isa.tile_f32_2s(m, k, xp.as_ptr(), m, b.as_ptr().cast(), c, n, nc),
                        PackDType::F32 => isa.tile_f32(m, k, xp.as_ptr(), m, b.as_ptr().cast(), c, n, nc, false),
                        _ if two => isa.tile_bf16_2s(m, kp / 2, xp.as_ptr(), m, b.as_ptr().cast(), c, n, nc),
                        _ => isa.tile_bf16(m, kp / 2, xp.as_ptr(), m, b.as_ptr().cast(), c, n, nc),
                    }
                }
            }
        });
    });
}

/// Where GEMM reads its `KC × 32` weight slices from.
#[derive(Clone, Copy)]
enum Slices<'a> {
    RawF32(&'a [f32]),
    RawBf16(&'a [u16]),
    RawF16(&'a [u16]),
    PackedF32(&'a PackedWeight),
    PackedBf16(&'a PackedWeight),
}

/// Packs `x[m, k]` into `MR`-row tiles per k-slice: slice `[k0, k0+kc)` starts at
/// `k0 · m_pad`, tile `t` at `t · kc · MR` inside it, element `(i, kk)` at `kk · MR + i`.
fn pack_x_tiles(x: &[f32], m: usize, k: usize, mr: usize, dst: &mut [f32]) {
    let m_pad = m.div_ceil(mr) * mr;
    // One job per (k-slice, tile); each owns a disjoint `kc · MR` run of `dst`.
    let mut jobs = Vec::with_capacity(k.div_ceil(KC) * (m_pad / mr));
    let mut rest = &mut dst[..m_pad * k];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        for t in 0..m_pad / mr {
            let (head, tail) = rest.split_at_mut(kc * mr);
            jobs.push((k0, kc, t, head));
            rest = tail;
        }
    }
    jobs.into_par_iter().with_min_len(4).for_each(|(k0, kc, t, d)| {
        for i in 0..mr {
            let row = t * mr + i;
            if row < m {
                let src = &x[row * k + k0..row * k + k0 + kc];
                for (kk, &v) in src.iter().enumerate() {
                    d[kk * mr + i] = v;
                }
            } else {
                for kk in 0..kc {
                    d[kk * mr + i] = 0.0;
                }
            }
        }
    });
}

/// Blocked GEMM for `m > 8` with f32 accumulation: see the module docs.
fn gemm<I: MatmulIsa>(isa: I, x: &[f32], m: usize, w: Slices<'_>, n: usize, k: usize, out: &mut [f32]) {
    // Balanced tiles: 16 rows run as 8 + 8, not 14 + 2.
    let mr = m.div_ceil(m.div_ceil(I::MR));
    let tiles = m.div_ceil(mr);
    let m_pad = tiles * mr;
    let panels = n.div_ceil(PANEL);
    with_f32_scratch(m_pad * k, |xp| {
        pack_x_tiles(x, m, k, mr, xp);
        let xp: &[f32] = xp;
        let optr = SendPtr(out.as_mut_ptr());
        par_panel_tiles(panels, tiles, |prange, trange| {
            let o = optr;
            with_f32_scratch(KC * PANEL, |bs| {
                // The bytes of the packed slice `(k0, p)`, to prefetch while the previous one runs.
                let packed_slice = |k0: usize, p: usize| -> Option<&[u8]> {
                    let kc = KC.min(k - k0);
                    match w {
                        Slices::PackedF32(pw) => Some(&pw.panel(p)[k0 * PANEL * 4..(k0 + kc) * PANEL * 4]),
                        Slices::PackedBf16(pw) => {
                            let kc2 = kc.div_ceil(2) * 2;
                            Some(&pw.panel(p)[k0 * PANEL * 2..(k0 + kc2) * PANEL * 2])
                        }
                        _ => None,
                    }
                };
                // One k-slice of one panel against every tile of the task, prefetching `next`
                // (in a share per tile): otherwise the first tile waits for the slice to arrive
                // from DRAM, about a quarter of the slice's compute time at M = 64.
                let mut slice = |k0: usize, p: usize, next: Option<(usize, usize)>| {
                    let ahead = next.and_then(|(k1, p1)| packed_slice(k1, p1));
                    let per_tile = ahead.map_or(0, |a| a.len().div_ceil(trange.len()).div_ceil(64) * 64);
                    let kc = KC.min(k - k0);
                    let a_slice = &xp[k0 * m_pad..k0 * m_pad + kc * m_pad];
                    let rows = PANEL.min(n - p * PANEL);
                    // SAFETY (all unsafe below): slices are bounds-checked here; the kernels
                    // read `kc × 32` values of `b` and `kc × mr` of each tile of `a_slice`;
                    // this task alone writes rows `trange` × columns of panel `p` of `out`.
                    let b: *const f32 = match w {
                        Slices::PackedF32(pw) => {
                            let panel: &[f32] = bytemuck::cast_slice(pw.panel(p));
                            panel[k0 * PANEL..(k0 + kc) * PANEL].as_ptr()
                        }
                        Slices::PackedBf16(pw) => {
                            let panel: &[u16] = bytemuck::cast_slice(pw.panel(p));
                            let kc2 = kc.div_ceil(2) * 2;
                            let src = &panel[k0 * PANEL..(k0 + kc2) * PANEL];
                            unsafe { isa.widen_bf16_panel(src.as_ptr(), kc2, bs.as_mut_ptr()) };
                            bs.as_ptr()
                        }
                        Slices::RawF32(d) => {
                            let src = &d[p * PANEL * k..];
                            assert!(src.len() >= (rows - 1) * k + k0 + kc);
                            unsafe { isa.pack_rows_f32(src.as_ptr().add(k0), k, rows, kc, bs.as_mut_ptr()) };
                            bs.as_ptr()
                        }
                        Slices::RawBf16(d) => {
                            pack_rows_scalar(d, k, p * PANEL, rows, k0, kc, bs, bf16_bits_to_f32);
                            bs.as_ptr()
                        }
                        Slices::RawF16(d) => {
                            pack_rows_scalar(d, k, p * PANEL, rows, k0, kc, bs, pack::f16_bits_to_f32);
                            bs.as_ptr()
                        }
                    };
                    for (i, t) in trange.clone().enumerate() {
                        if let Some(a) = ahead {
                            let from = (i * per_tile).min(a.len());
                            prefetch_l2(a[from..].as_ptr(), per_tile.min(a.len() - from));
                        }
                        let mr_t = mr.min(m - t * mr);
                        let a = &a_slice[t * kc * mr..(t + 1) * kc * mr];
                        unsafe {
                            let c = o.0.add(t * mr * n + p * PANEL);
                            isa.tile_f32(mr_t, kc, a.as_ptr(), mr, b, c, n, rows, k0 > 0);
                        }
                    }
                };
                // The (k0, panel) visits in order; each prefetches the one after it.
                let order: &mut dyn Iterator<Item = (usize, usize)> = if m_pad * k * 4 <= PANEL_OUTER_MAX_X_BYTES {
                    // Few rows: all of packed `x` stays in L2, so walk each panel once, front to
                    // back (one sequential stream per panel).
                    &mut prange.clone().flat_map(|p| (0..k).step_by(KC).map(move |k0| (k0, p)))
                } else {
                    // Many rows: keep one k-slice of `x` in L2 and pass every panel over it.
                    let pr = prange.clone();
                    &mut (0..k).step_by(KC).flat_map(move |k0| pr.clone().map(move |p| (k0, p)))
                };
                let mut cur = order.next();
                while let Some((k0, p)) = cur {
                    let next = order.next();
                    slice(k0, p, next);
                    cur = next;
                }
            });
        });
    });
}

use pack::bf16_bits_to_f32;

/// Scalar transposing pack of raw 16-bit rows into an f32 `[kc][32]` slice.
#[allow(clippy::too_many_arguments)]
fn pack_rows_scalar(
    d: &[u16],
    k: usize,
    row0: usize,
    rows: usize,
    k0: usize,
    kc: usize,
    dst: &mut [f32],
    widen: fn(u16) -> f32,
) {
    for r in 0..PANEL {
        if r < rows {
            let src = &d[(row0 + r) * k + k0..(row0 + r) * k + k0 + kc];
            for (kk, &v) in src.iter().enumerate() {
                dst[kk * PANEL + r] = widen(v);
            }
        } else {
            for kk in 0..kc {
                dst[kk * PANEL + r] = 0.0;
            }
        }
    }
}

/// Int8 matmul on a packed weight: quantise `x` per row into `MR_INT8`-row tiles
/// (`[kq][rows][4]` bytes each), then threads split the panels (and the tiles when panels are
/// few) and run integer tiles over the full depth.
fn matmul_int8<I: MatmulIsa>(isa: I, x: &[f32], m: usize, w: &PackedWeight, out: &mut [f32]) {
    let (n, k) = (w.rows(), w.cols());
    let kq = w.padded_cols() / 4;
    let tiles = m.div_ceil(MR_INT8);
    let panels = w.panels();
    let unsigned = isa.int8_unsigned();
    let qbytes = m * kq * 4;
    with_scratch(crate::scratch::lines_for(qbytes + m * 4), |lines| {
        let buf: &mut [u8] = bytemuck::cast_slice_mut(lines);
        let (qx, rest) = buf.split_at_mut(qbytes);
        let sx: &mut [f32] = bytemuck::cast_slice_mut(&mut rest[..m * 4]);
        // Quantise, one task per tile (tiles own disjoint runs of `qx` and `sx`).
        let quantize_tile = |(t, (qt, st)): (usize, (&mut [u8], &mut [f32]))| {
            let rows = st.len();
            with_scratch(crate::scratch::lines_for(kq * 4), |row| {
                let row: &mut [u8] = &mut bytemuck::cast_slice_mut(row)[..kq * 4];
                for (i, s) in st.iter_mut().enumerate() {
                    let xr = &x[(t * MR_INT8 + i) * k..][..k];
                    // SAFETY: `row` holds `kq·4 ≥ k` bytes; the ISA was detected.
                    *s = unsafe { isa.quantize_row(xr.as_ptr(), k, row.as_mut_ptr(), unsigned) };
                    row[k..].fill(if unsigned { 128 } else { 0 });
                    for q in 0..kq {
                        qt[(q * rows + i) * 4..][..4].copy_from_slice(&row[q * 4..q * 4 + 4]);
                    }
                }
            });
        };
        // Decode (one tile) quantises inline: a parallel call would cost a thread hand-off.
        if tiles == 1 {
            quantize_tile((0, (qx, sx)));
        } else {
            qx.par_chunks_mut(MR_INT8 * kq * 4).zip(sx.par_chunks_mut(MR_INT8)).enumerate().for_each(quantize_tile);
        }
        let (qx, sx): (&[u8], &[f32]) = (qx, sx);
        let optr = SendPtr(out.as_mut_ptr());
        let two = decode_streams() == 2;
        par_panel_tiles(panels, tiles, |prange, trange| {
            let o = optr;
            // (Prefetching the next panel while the tiles run, as the f32 GEMM does, measured
            // 5-20% slower here: a full-depth int8 panel and the quantised rows fill L2.)
            for p in prange.clone() {
                let nc = PANEL.min(n - p * PANEL);
                let b = w.panel(p);
                let comp = &w.compensation()[p * PANEL..(p + 1) * PANEL];
                let sw = &w.scales()[p * PANEL..(p + 1) * PANEL];
                for t in trange.clone() {
                    let rows = MR_INT8.min(m - t * MR_INT8);
                    let a = &qx[t * MR_INT8 * kq * 4..][..rows * kq * 4];
                    // SAFETY: `a` holds `kq·rows·4` bytes, the panel `kq·128`, comp/sw 32 each,
                    // `sx` the tile's rows; this task alone writes these rows × panel columns.
                    unsafe {
                        let c = o.0.add(t * MR_INT8 * n + p * PANEL);
                        let (a, b, comp, sx, sw) =
                            (a.as_ptr(), b.as_ptr(), comp.as_ptr(), sx[t * MR_INT8..].as_ptr(), sw.as_ptr());
                        // The task's last tile on this panel brings in its next panel (a one-row tile streams
                        // its panel once, so only tiles of two or more rows re-read it and gain).
                        let ahead = (rows > 1 && t + 1 == trange.end && p + 1 < prange.end).then(|| w.panel(p + 1));
                        if let Some(ahead) = ahead {
                            isa.tile_int8_ahead(rows, kq, a, rows, b, comp, sx, sw, c, n, nc, ahead);
                        } else if two {
                            isa.tile_int8_2s(rows, kq, a, rows, b, comp, sx, sw, c, n, nc);
                        } else {
                            isa.tile_int8(rows, kq, a, rows, b, comp, sx, sw, c, n, nc);
                        }
                    }
                }
            }
        });
    });
}
