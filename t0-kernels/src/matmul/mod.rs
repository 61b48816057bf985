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
//! - packed `Bf16`, any `m`: activations are rounded to bf16 as they are packed, so every
//!   product is bf16 × bf16 (exact in f32) and only the sums are rounded. With AVX-512 BF16 the
//!   decode tiles (`m ≤ 8`) run `vdpbf16ps` on pairs of them straight from the panel (no
//!   widening), and so does the GEMM where that instruction out-runs f32 FMAs (AMD; see
//!   [`crate::cpu::bf16_dot_is_fast`]); elsewhere the panel is widened (the GEMM widens each
//!   k-slice once for all its row tiles) and the f32 tiles run on the rounded activations.
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
/// Largest `x` (counted as f32: `m_pad · k · 4` bytes, whatever the packing) for which GEMM walks
/// panel by panel (full depth each) rather than k-slice by k-slice. (Counting bf16 pairs at their
/// packed size instead, which moves 64-row bf16 GEMMs at k = 2048 to panel by panel, measured
/// −5% to +8% by shape; not kept.)
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

    /// The name of kernels built on this instruction set; `base` is the instruction set's
    /// (e.g. `"avx512"`), which is the default.
    fn label(self, base: &'static str) -> &'static str {
        base
    }

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

    /// Whether [`Self::tile_bf16_dot`] is available (a bf16 × bf16 dot-product instruction);
    /// the weight-streaming paths (`m ≤ 8`) use it when it is.
    fn bf16_dot(self) -> bool {
        false
    }

    /// Whether the GEMM (`m > 8`) runs bf16 weights on [`Self::tile_bf16_dot_slice`] too, rather
    /// than widening each k-slice once for the f32 tiles: where the dot instruction has fewer
    /// multiply-adds per cycle than f32 FMAs, widening wins. Default: [`Self::bf16_dot`].
    fn bf16_dot_gemm(self) -> bool {
        self.bf16_dot()
    }

    /// Rounds `x[..k]` to bf16 pairs in `dst[..⌈k/2⌉]` (low half the even k; the high half of
    /// a last, odd k zero), each value as [`round_bf16`] rounds it (subnormals may flush to 0).
    unsafe fn bf16_pairs(self, x: *const f32, k: usize, dst: *mut u32) {
        default_bf16_pairs(x, k, dst)
    }

    /// bf16 dot tile for `mr ≤ MR`: `C[i, j] (+)= Σ_q A(q, i) · W(j, q)` over `kp` pairs of a
    /// packed bf16 panel `b`, where `A(q, i) = a[q·a_ks + i]` holds two bf16 activations (low
    /// half the even k, high half the odd k) and each pair's two products are added to the
    /// f32 sum; adds to C when `accumulate`. Only called when [`Self::bf16_dot`] is true.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_bf16_dot(
        self,
        mr: usize,
        kp: usize,
        a: *const u32,
        a_ks: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        nc: usize,
        accumulate: bool,
    ) {
        let _ = (mr, kp, a, a_ks, b, c, ldc, nc, accumulate);
        unreachable!("tile_bf16_dot without bf16_dot()")
    }

    /// [`Self::tile_f32`] on one k-slice of a GEMM, whose weight slice the task's other tiles
    /// re-read: an implementation may prefetch the weight stream into L1 ahead of use, nearer
    /// than [`Self::tile_f32`] does, which streams from DRAM (decode). Default:
    /// [`Self::tile_f32`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_f32_slice(
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
    ) {
        self.tile_f32(mr, kc, a, a_ks, b, c, ldc, nc, accumulate)
    }

    /// [`Self::tile_bf16_dot`] on one k-slice of a GEMM, as [`Self::tile_f32_slice`]. Default:
    /// [`Self::tile_bf16_dot`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_bf16_dot_slice(
        self,
        mr: usize,
        kp: usize,
        a: *const u32,
        a_ks: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        nc: usize,
        accumulate: bool,
    ) {
        self.tile_bf16_dot(mr, kp, a, a_ks, b, c, ldc, nc, accumulate)
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

/// The two-stream bf16 tile as two calls of [`MatmulIsa::tile_bf16`] (see [`split_pairs`]).
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
    split_pairs(mr, kp, c, ldc, nc, |q0, q, dst, ld| {
        isa.tile_bf16(mr, q, a.add(2 * q0 * a_ks), a_ks, b.add(2 * q0 * PANEL), dst, ld, nc)
    })
}

/// The two-stream bf16 dot tile (decode with [`MatmulIsa::bf16_dot`]; see [`split_pairs`]).
///
/// # Safety
/// As [`MatmulIsa::tile_bf16_dot`] with `mr ≤ 8`.
#[allow(clippy::too_many_arguments)]
unsafe fn split_tile_bf16_dot<I: MatmulIsa>(
    isa: I,
    mr: usize,
    kp: usize,
    a: *const u32,
    a_ks: usize,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    nc: usize,
) {
    split_pairs(mr, kp, c, ldc, nc, |q0, q, dst, ld| {
        isa.tile_bf16_dot(mr, q, a.add(q0 * a_ks), a_ks, b.add(2 * q0 * PANEL), dst, ld, nc, false)
    })
}

/// A two-stream tile over `kp` k-pairs from two one-stream calls: `tile(q0, q, dst, ld)` writes
/// the sums over pairs `q0..q0+q` for `mr ≤ 8` rows × `nc ≤ 32` columns to `dst` (row stride
/// `ld`). The first half goes to `c`, the second to a buffer that is then added (`hi + lo`,
/// the same bits as `lo + hi`).
///
/// # Safety
/// `c` must hold the tile (`mr` rows of stride `ldc`, `nc` columns); `tile` upholds its
/// kernel's contract for the ranges it is given.
unsafe fn split_pairs(
    mr: usize,
    kp: usize,
    c: *mut f32,
    ldc: usize,
    nc: usize,
    tile: impl Fn(usize, usize, *mut f32, usize),
) {
    debug_assert!(mr <= 8 && nc <= PANEL);
    let kh = kp / 2;
    let mut hi = [0.0f32; 8 * PANEL];
    tile(0, kh, c, ldc);
    tile(kh, kp - kh, hi.as_mut_ptr(), PANEL);
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
        WeightView::Packed(p) => match p.dtype() {
            // One full-depth pass per panel while all rows fit one f32 tile.
            PackDType::F32 if m <= I::MR => gemv_packed(isa, x, m, p, out),
            PackDType::Bf16 if gemv => gemv_packed(isa, x, m, p, out),
            PackDType::F32 | PackDType::Bf16 => gemm(isa, x, m, std::slice::from_ref(w), k, out),
            PackDType::Int8 => matmul_int8(isa, x, m, std::slice::from_ref(w), out),
        },
        _ => gemm(isa, x, m, std::slice::from_ref(w), k, out),
    }
}

/// `out[m, Σ nᵢ] = x · [W₀; W₁; …]ᵀ`: the shared entry point of
/// [`crate::Kernels::matmul_stacked`]. Packed weights of one dtype (int8 at any `m`; f32 and
/// bf16 where `m` takes the GEMM path) run as one matmul: `x` quantised or packed once, one
/// parallel loop over every weight's panels. Anything else runs weight by weight.
pub(crate) fn matmul_stacked_with<I: MatmulIsa>(isa: I, x: &[f32], m: usize, ws: &[WeightView<'_>], out: &mut [f32]) {
    let Some(k) = ws.first().map(WeightView::cols) else {
        assert!(out.is_empty(), "matmul_stacked: out is not [m, Σ rows]");
        return;
    };
    assert!(ws.iter().all(|w| w.cols() == k), "matmul_stacked: the weights' column counts differ");
    let n: usize = ws.iter().map(WeightView::rows).sum();
    assert_eq!(x.len(), m * k, "matmul_stacked: x is not [m, k]");
    assert_eq!(out.len(), m * n, "matmul_stacked: out is not [m, Σ rows]");
    if let [w] = ws {
        return matmul_with(isa, x, m, w, out);
    }
    if m == 0 || n == 0 {
        return;
    }
    let packed = |d: PackDType| ws.iter().all(|w| matches!(w, WeightView::Packed(p) if p.dtype() == d)) && k > 0;
    if packed(PackDType::Int8) {
        return matmul_int8(isa, x, m, ws, out);
    }
    if (packed(PackDType::F32) && m > I::MR) || (packed(PackDType::Bf16) && m > GEMV_MAX_M) {
        return gemm(isa, x, m, ws, k, out);
    }
    stacked_by_parts(m, ws, out, |w, o| matmul_with(isa, x, m, w, o))
}

/// `out[m, Σ rows]` weight by weight: `matmul(w, tmp)` fills `tmp[m, w.rows()]`, which is then
/// copied into the weight's columns of every row (the default
/// [`crate::Kernels::matmul_stacked`], and the fallback of [`matmul_stacked_with`]).
pub(crate) fn stacked_by_parts(
    m: usize,
    ws: &[WeightView<'_>],
    out: &mut [f32],
    mut matmul: impl FnMut(&WeightView<'_>, &mut [f32]),
) {
    let n: usize = ws.iter().map(WeightView::rows).sum();
    assert_eq!(out.len(), m * n, "matmul_stacked: out is not [m, Σ rows]");
    let mut col0 = 0;
    for w in ws.iter().filter(|w| w.rows() > 0) {
        let nw = w.rows();
        let mut tmp = vec![0.0f32; m * nw];
        matmul(w, &mut tmp);
        for (o, t) in out.chunks_exact_mut(n).zip(tmp.chunks_exact(nw)) {
            o[col0..col0 + nw].copy_from_slice(t);
        }
        col0 += nw;
    }
}

/// Panel `g` of weights stacked in order, the `i`-th having `rows(i)` rows: `(i, its panel,
/// the panel's first column in the stacked output)`.
#[inline]
fn locate_panel(parts: usize, rows: impl Fn(usize) -> usize, mut g: usize) -> (usize, usize, usize) {
    let mut col0 = 0;
    for i in 0..parts {
        let p = rows(i).div_ceil(PANEL);
        if g < p {
            return (i, g, col0 + g * PANEL);
        }
        g -= p;
        col0 += rows(i);
    }
    // The drivers only ask for panels below the total they computed.
    unreachable!("locate_panel: panel past the stacked weights")
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

/// How `x` is written into the tiles' activation buffers, `step` k-values per element.
#[derive(Clone, Copy, PartialEq)]
enum XPack {
    /// f32 as is (f32 weights).
    F32,
    /// f32 rounded to bf16 (bf16 weights, f32 tiles).
    RoundedBf16,
    /// Two bf16 per `u32`, stored as f32 bits (bf16 weights, dot tiles).
    Bf16Pairs,
}

impl XPack {
    /// The pack for a weight of `dtype` on `isa`, for the GEMM (`gemm`) or the weight-streaming
    /// path.
    fn for_weight<I: MatmulIsa>(isa: I, dtype: PackDType, gemm: bool) -> Self {
        let dot = if gemm { isa.bf16_dot_gemm() } else { isa.bf16_dot() };
        match dtype {
            PackDType::Bf16 if dot => XPack::Bf16Pairs,
            PackDType::Bf16 => XPack::RoundedBf16,
            _ => XPack::F32,
        }
    }
    /// k-values per element.
    fn step(self) -> usize {
        if self == XPack::Bf16Pairs {
            2
        } else {
            1
        }
    }
    /// Converts a run of at most [`KC`] k-values into `⌈src.len()/step⌉` elements at the
    /// front of `out`; returns how many.
    #[inline]
    fn convert<I: MatmulIsa>(self, isa: I, src: &[f32], out: &mut [f32; KC]) -> usize {
        debug_assert!(src.len() <= KC);
        match self {
            XPack::F32 => out[..src.len()].copy_from_slice(src),
            XPack::RoundedBf16 => {
                for (o, &v) in out.iter_mut().zip(src) {
                    *o = round_bf16(v);
                }
            }
            // SAFETY: `out` holds `KC ≥ ⌈len/2⌉` elements of 4 bytes.
            XPack::Bf16Pairs => unsafe { isa.bf16_pairs(src.as_ptr(), src.len(), out.as_mut_ptr().cast()) },
        }
        src.len().div_ceil(self.step())
    }
}

/// `v` rounded to bf16 (nearest even), as f32: what a packed-bf16 matmul multiplies.
#[inline]
pub(crate) fn round_bf16(v: f32) -> f32 {
    bf16::from_f32(v).to_f32()
}

/// The scalar [`MatmulIsa::bf16_pairs`].
///
/// # Safety
/// `x` holds `k` values and `dst` `⌈k/2⌉`.
pub(crate) unsafe fn default_bf16_pairs(x: *const f32, k: usize, dst: *mut u32) {
    for q in 0..k.div_ceil(2) {
        let hi = if 2 * q + 1 < k { *x.add(2 * q + 1) } else { 0.0 };
        *dst.add(q) = bf16_pair(*x.add(2 * q), hi);
    }
}

/// `lo` and `hi` rounded to bf16, as one pair (`lo` in the low half).
#[inline]
pub(crate) fn bf16_pair(lo: f32, hi: f32) -> u32 {
    bf16::from_f32(lo).to_bits() as u32 | (bf16::from_f32(hi).to_bits() as u32) << 16
}

/// Copies `x[m, k]` into `dst` k-major: row `q` of `dst` (`m` elements) holds k-values
/// `q·step..` of every row of `x`, zero past `k`.
fn pack_x_kmajor<I: MatmulIsa>(isa: I, x: &[f32], m: usize, k: usize, how: XPack, dst: &mut [f32]) {
    let mut buf = [0.0f32; KC];
    for (i, xr) in x.chunks_exact(k).enumerate() {
        for (c, run) in xr.chunks(KC).enumerate() {
            let q0 = c * KC / how.step();
            let n = how.convert(isa, run, &mut buf);
            for (q, &v) in buf[..n].iter().enumerate() {
                dst[(q0 + q) * m + i] = v;
            }
        }
    }
    dst[k.div_ceil(how.step()) * m..].fill(0.0);
}

/// GEMV on a packed f32 or bf16 weight (`m ≤ 8`): `x` is copied k-major once, then threads
/// split the panels and stream each one once.
fn gemv_packed<I: MatmulIsa>(isa: I, x: &[f32], m: usize, w: &PackedWeight, out: &mut [f32]) {
    let (n, k, kp) = (w.rows(), w.cols(), w.padded_cols());
    let dtype = w.dtype();
    let how = XPack::for_weight(isa, dtype, false);
    with_f32_scratch(kp / how.step() * m, |xp| {
        pack_x_kmajor(isa, x, m, k, how, xp);
        let xp: &[f32] = xp;
        let optr = SendPtr(out.as_mut_ptr());
        let two = decode_streams() == 2;
        par_ranges(w.panels(), task_target(), 1, |panels| {
            let o = optr;
            for p in panels {
                let nc = PANEL.min(n - p * PANEL);
                let b = w.panel(p);
                // SAFETY: `xp` holds `kp·m` values (`kp/2·m` pairs), the panel `kp·32`
                // elements; this task alone writes columns `32p..32p+nc` of `out`; the ISA was
                // detected, and has dot tiles when `how` is `Bf16Pairs`.
                unsafe {
                    let c = o.0.add(p * PANEL);
                    let (a, ap, b16) = (xp.as_ptr(), xp.as_ptr().cast::<u32>(), b.as_ptr().cast::<u16>());
                    match (dtype, how) {
                        (PackDType::F32, _) if two => isa.tile_f32_2s(m, k, a, m, b.as_ptr().cast(), c, n, nc),
                        (PackDType::F32, _) => isa.tile_f32(m, k, a, m, b.as_ptr().cast(), c, n, nc, false),
                        (_, XPack::Bf16Pairs) if two => split_tile_bf16_dot(isa, m, kp / 2, ap, m, b16, c, n, nc),
                        (_, XPack::Bf16Pairs) => isa.tile_bf16_dot(m, kp / 2, ap, m, b16, c, n, nc, false),
                        _ if two => isa.tile_bf16_2s(m, kp / 2, a, m, b16, c, n, nc),
                        _ => isa.tile_bf16(m, kp / 2, a, m, b16, c, n, nc),
                    }
                }
            }
        });
    });
}

/// Packs `x[m, k]` into `MR`-row tiles per k-slice, `step = how.step()` k-values per element:
/// slice `[k0, k0+kc)` starts at `k0/step · m_pad`, tile `t` at `t · kcs · MR` inside it
/// (`kcs = ⌈kc/step⌉`), element `(i, q)` at `q · MR + i`.
fn pack_x_tiles<I: MatmulIsa>(isa: I, x: &[f32], m: usize, k: usize, mr: usize, how: XPack, dst: &mut [f32]) {
    let m_pad = m.div_ceil(mr) * mr;
    let step = how.step();
    // One job per (k-slice, tile); each owns a disjoint `kcs · MR` run of `dst`.
    let mut jobs = Vec::with_capacity(k.div_ceil(KC) * (m_pad / mr));
    let mut rest = &mut dst[..m_pad * k.div_ceil(step)];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        for t in 0..m_pad / mr {
            let (head, tail) = rest.split_at_mut(kc.div_ceil(step) * mr);
            jobs.push((k0, kc, t, head));
            rest = tail;
        }
    }
    jobs.into_par_iter().with_min_len(4).for_each(|(k0, kc, t, d)| {
        let mut buf = [0.0f32; KC];
        for i in 0..mr {
            let row = t * mr + i;
            let n = if row < m { how.convert(isa, &x[row * k + k0..row * k + k0 + kc], &mut buf) } else { 0 };
            for q in 0..kc.div_ceil(step) {
                d[q * mr + i] = if q < n { buf[q] } else { 0.0 };
            }
        }
    });
}

/// Blocked GEMM for `m > 8` with f32 accumulation (see the module docs) against the rows of
/// `ws` stacked in order (one weight, or several of one packed dtype; not int8): `out` is
/// `[m, Σ rows]`.
fn gemm<I: MatmulIsa>(isa: I, x: &[f32], m: usize, ws: &[WeightView<'_>], k: usize, out: &mut [f32]) {
    // Balanced tiles: 16 rows run as 8 + 8, not 14 + 2.
    let mr = m.div_ceil(m.div_ceil(I::MR));
    let tiles = m.div_ceil(mr);
    let m_pad = tiles * mr;
    let n: usize = ws.iter().map(WeightView::rows).sum();
    let panels: usize = ws.iter().map(|w| w.rows().div_ceil(PANEL)).sum();
    let locate = |g: usize| locate_panel(ws.len(), |i| ws[i].rows(), g);
    let how = match ws.first() {
        Some(WeightView::Packed(p)) => XPack::for_weight(isa, p.dtype(), true),
        _ => XPack::F32,
    };
    let step = how.step();
    with_f32_scratch(m_pad * k.div_ceil(step), |xp| {
        pack_x_tiles(isa, x, m, k, mr, how, xp);
        let xp: &[f32] = xp;
        let optr = SendPtr(out.as_mut_ptr());
        par_panel_tiles(panels, tiles, |prange, trange| {
            let o = optr;
            with_f32_scratch(KC * PANEL, |bs| {
                // The bytes of the packed slice `(k0, p)`, to prefetch while the previous one runs.
                let packed_slice = |k0: usize, g: usize| -> Option<&[u8]> {
                    let kc = KC.min(k - k0);
                    let (i, p, _) = locate(g);
                    match ws[i] {
                        WeightView::Packed(pw) if pw.dtype() == PackDType::F32 => {
                            Some(&pw.panel(p)[k0 * PANEL * 4..(k0 + kc) * PANEL * 4])
                        }
                        WeightView::Packed(pw) => {
                            let kc2 = kc.div_ceil(2) * 2;
                            Some(&pw.panel(p)[k0 * PANEL * 2..(k0 + kc2) * PANEL * 2])
                        }
                        _ => None,
                    }
                };
                // One k-slice of one panel against every tile of the task, prefetching `next`
                // (in a share per tile): otherwise the first tile waits for the slice to arrive
                // from DRAM, about a quarter of the slice's compute time at M = 64.
                let mut slice = |k0: usize, g: usize, next: Option<(usize, usize)>| {
                    let (wi, p, col0) = locate(g);
                    let ahead = next.and_then(|(k1, p1)| packed_slice(k1, p1));
                    let per_tile = ahead.map_or(0, |a| a.len().div_ceil(trange.len()).div_ceil(64) * 64);
                    let kc = KC.min(k - k0);
                    let kcs = kc.div_ceil(step);
                    let a_slice = &xp[k0 / step * m_pad..(k0 / step + kcs) * m_pad];
                    let rows = PANEL.min(ws[wi].rows() - p * PANEL);
                    // SAFETY (all unsafe below): slices are bounds-checked here; the kernels
                    // read `kc × 32` values of `b` and `kc × mr` of each tile of `a_slice`
                    // (dot tiles: `kcs` pairs of each, `how` is `Bf16Pairs` only when the ISA
                    // has them); this task alone writes rows `trange` × columns of panel `p`.
                    let b: *const f32 = match ws[wi] {
                        WeightView::Packed(pw) if pw.dtype() == PackDType::F32 => {
                            let panel: &[f32] = bytemuck::cast_slice(pw.panel(p));
                            panel[k0 * PANEL..(k0 + kc) * PANEL].as_ptr()
                        }
                        WeightView::Packed(pw) => {
                            let panel: &[u16] = bytemuck::cast_slice(pw.panel(p));
                            let kc2 = kc.div_ceil(2) * 2;
                            let src = &panel[k0 * PANEL..(k0 + kc2) * PANEL];
                            if how == XPack::Bf16Pairs {
                                // The dot tiles read the pairs in place (bf16, not f32).
                                src.as_ptr().cast()
                            } else {
                                unsafe { isa.widen_bf16_panel(src.as_ptr(), kc2, bs.as_mut_ptr()) };
                                bs.as_ptr()
                            }
                        }
                        WeightView::F32 { data, .. } => {
                            let src = &data[p * PANEL * k..];
                            assert!(src.len() >= (rows - 1) * k + k0 + kc);
                            unsafe { isa.pack_rows_f32(src.as_ptr().add(k0), k, rows, kc, bs.as_mut_ptr()) };
                            bs.as_ptr()
                        }
                        WeightView::Bf16 { data, .. } => {
                            let d = bytemuck::cast_slice(data);
                            pack_rows_scalar(d, k, p * PANEL, rows, k0, kc, bs, bf16_bits_to_f32);
                            bs.as_ptr()
                        }
                        WeightView::F16 { data, .. } => {
                            let d = bytemuck::cast_slice(data);
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
                        let a = a_slice[t * kcs * mr..(t + 1) * kcs * mr].as_ptr();
                        unsafe {
                            let c = o.0.add(t * mr * n + col0);
                            if how == XPack::Bf16Pairs {
                                isa.tile_bf16_dot_slice(mr_t, kcs, a.cast(), mr, b.cast(), c, n, rows, k0 > 0);
                            } else {
                                isa.tile_f32_slice(mr_t, kc, a, mr, b, c, n, rows, k0 > 0);
                            }
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
fn matmul_int8<I: MatmulIsa>(isa: I, x: &[f32], m: usize, ws: &[WeightView<'_>], out: &mut [f32]) {
    let part = |i: usize| match ws[i] {
        WeightView::Packed(p) => p,
        // The callers pass packed int8 weights only.
        _ => unreachable!("matmul_int8: not a packed weight"),
    };
    let k = part(0).cols();
    let kq = part(0).padded_cols() / 4;
    let n: usize = ws.iter().map(WeightView::rows).sum();
    let tiles = m.div_ceil(MR_INT8);
    let panels: usize = (0..ws.len()).map(|i| part(i).panels()).sum();
    let locate = |g: usize| locate_panel(ws.len(), |i| ws[i].rows(), g);
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
            for g in prange.clone() {
                let (wi, p, col0) = locate(g);
                let w = part(wi);
                let nc = PANEL.min(w.rows() - p * PANEL);
                let b = w.panel(p);
                let comp = &w.compensation()[p * PANEL..(p + 1) * PANEL];
                let sw = &w.scales()[p * PANEL..(p + 1) * PANEL];
                for t in trange.clone() {
                    let rows = MR_INT8.min(m - t * MR_INT8);
                    let a = &qx[t * MR_INT8 * kq * 4..][..rows * kq * 4];
                    // SAFETY: `a` holds `kq·rows·4` bytes, the panel `kq·128`, comp/sw 32 each,
                    // `sx` the tile's rows; this task alone writes these rows × panel columns.
                    unsafe {
                        let c = o.0.add(t * MR_INT8 * n + col0);
                        let (a, b, comp, sx, sw) =
                            (a.as_ptr(), b.as_ptr(), comp.as_ptr(), sx[t * MR_INT8..].as_ptr(), sw.as_ptr());
                        // The task's last tile on this panel brings in its next panel (a one-row tile streams
                        // its panel once, so only tiles of two or more rows re-read it and gain).
                        let ahead = (rows > 1 && t + 1 == trange.end && g + 1 < prange.end).then(|| {
                            let (wn, pn, _) = locate(g + 1);
                            part(wn).panel(pn)
                        });
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
