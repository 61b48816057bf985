//! AVX2 + FMA matmul kernels (8-lane vectors, 16 registers). Panels are 32 outputs wide, so the
//! tiles walk each panel as two 16-output halves. See [`super::MatmulIsa`] for the contracts.

use std::arch::x86_64::*;

use super::{MatmulIsa, MR_INT8, PANEL};
use crate::quant::quantize_row_reference;

/// Rows per f32 GEMM tile: 6 × 16 outputs = 12 accumulators of the 16 ymm registers.
const MR: usize = 6;
/// Depth block of the int8 tiles, in k-quads: a 16 KiB block of a panel stays in L1 while each
/// pair of rows runs over it (the pairs' i32 sums wait in a small array between blocks).
const KB_INT8: usize = 128;

/// AVX2 + FMA kernels; constructible only when the CPU has them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2 {
    _detected: (),
}

impl Avx2 {
    /// The kernels, if this CPU has AVX2, FMA and F16C.
    pub(crate) fn detect() -> Option<Self> {
        crate::cpu::has_avx2().then_some(Avx2 { _detected: () })
    }

    /// The kernels, on a CPU known to have AVX2 (e.g. one with AVX-512).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    pub(crate) unsafe fn assume() -> Self {
        Avx2 { _detected: () }
    }
}

/// Lane mask with the first `n` (≤ 8) lanes set, for `maskload`/`maskstore`.
#[inline(always)]
unsafe fn lane_mask(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// A row-major weight element type the GEMV kernels can widen to f32.
trait Elem {
    type T: Copy;
    /// 8 values from `p`, as f32.
    unsafe fn load8(p: *const Self::T) -> __m256;
    /// One value as f32.
    fn widen(v: Self::T) -> f32;
}

struct ElemF32;
impl Elem for ElemF32 {
    type T = f32;
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    fn widen(v: f32) -> f32 {
        v
    }
}

struct ElemBf16;
impl Elem for ElemBf16 {
    type T = u16;
    #[inline(always)]
    unsafe fn load8(p: *const u16) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()))))
    }
    #[inline(always)]
    fn widen(v: u16) -> f32 {
        super::pack::bf16_bits_to_f32(v)
    }
}

struct ElemF16;
impl Elem for ElemF16 {
    type T = u16;
    #[inline(always)]
    unsafe fn load8(p: *const u16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    fn widen(v: u16) -> f32 {
        super::pack::f16_bits_to_f32(v)
    }
}

/// Sum of the eight lanes.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// `out[i·ldo + r] = x_i · w_r` for `M` rows of `x` and `R` rows of `w` (row length `k`).
#[inline(always)]
unsafe fn dot_block<E: Elem, const M: usize, const R: usize>(
    x: *const f32,
    k: usize,
    w: *const E::T,
    out: *mut f32,
    ldo: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); R]; M];
    let mut kk = 0;
    while kk + 8 <= k {
        let mut wv = [_mm256_setzero_ps(); R];
        for (r, v) in wv.iter_mut().enumerate() {
            *v = E::load8(w.add(r * k + kk));
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let xv = _mm256_loadu_ps(x.add(i * k + kk));
            for (a, &v) in acc_i.iter_mut().zip(&wv) {
                *a = _mm256_fmadd_ps(xv, v, *a);
            }
        }
        kk += 8;
    }
    for (i, acc_i) in acc.iter().enumerate() {
        for (r, a) in acc_i.iter().enumerate() {
            let mut s = hsum(*a);
            for t in kk..k {
                s += *x.add(i * k + t) * E::widen(*w.add(r * k + t));
            }
            *out.add(i * ldo + r) = s;
        }
    }
}

#[inline(always)]
unsafe fn gemv_rows_m<E: Elem, const M: usize, const R: usize>(
    x: *const f32,
    k: usize,
    w: *const E::T,
    rows: usize,
    out: *mut f32,
    ldo: usize,
) {
    let mut r = 0;
    while r + R <= rows {
        dot_block::<E, M, R>(x, k, w.add(r * k), out.add(r), ldo);
        r += R;
    }
    while r < rows {
        dot_block::<E, M, 1>(x, k, w.add(r * k), out.add(r), ldo);
        r += 1;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemv_rows<E: Elem>(
    x: *const f32,
    m: usize,
    k: usize,
    w: *const E::T,
    rows: usize,
    out: *mut f32,
    ldo: usize,
) {
    match m {
        1 => gemv_rows_m::<E, 1, 4>(x, k, w, rows, out, ldo),
        2 => gemv_rows_m::<E, 2, 4>(x, k, w, rows, out, ldo),
        3 => gemv_rows_m::<E, 3, 3>(x, k, w, rows, out, ldo),
        4 => gemv_rows_m::<E, 4, 2>(x, k, w, rows, out, ldo),
        5 => gemv_rows_m::<E, 5, 2>(x, k, w, rows, out, ldo),
        6 => gemv_rows_m::<E, 6, 2>(x, k, w, rows, out, ldo),
        7 => gemv_rows_m::<E, 7, 1>(x, k, w, rows, out, ldo),
        8 => gemv_rows_m::<E, 8, 1>(x, k, w, rows, out, ldo),
        _ => unreachable!("gemv_rows: m = {m} > 8"),
    }
}

/// Writes (or adds) an `MR × 16` half-panel tile to `c`, keeping columns `< nc` (≤ 16).
#[inline(always)]
unsafe fn store_half<const MR: usize>(acc: &[[__m256; 2]; MR], c: *mut f32, ldc: usize, nc: usize, accumulate: bool) {
    let full = nc >= 16;
    let (m0, m1) = (lane_mask(nc.min(8)), lane_mask(nc.saturating_sub(8).min(8)));
    for (i, a) in acc.iter().enumerate() {
        let p = c.add(i * ldc);
        let (mut v0, mut v1) = (a[0], a[1]);
        if full {
            if accumulate {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p.add(8)));
            }
            _mm256_storeu_ps(p, v0);
            _mm256_storeu_ps(p.add(8), v1);
        } else {
            if accumulate {
                v0 = _mm256_add_ps(v0, _mm256_maskload_ps(p, m0));
                v1 = _mm256_add_ps(v1, _mm256_maskload_ps(p.add(8), m1));
            }
            _mm256_maskstore_ps(p, m0, v0);
            _mm256_maskstore_ps(p.add(8), m1, v1);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_f32_m<const MR: usize>(
    kc: usize,
    a: *const f32,
    a_ks: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    nc: usize,
    accumulate: bool,
) {
    for half in 0..2 {
        let nch = nc.saturating_sub(half * 16).min(16);
        if nch == 0 {
            break;
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut pa, mut pb) = (a, b.add(half * 16));
        for _ in 0..kc {
            // This half reads every other cache line of the panel, a stride the hardware
            // prefetchers follow late: ask for the line 24 k-steps ahead (+4-10% at M = 64).
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(24 * PANEL).cast());
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*pa.add(i));
                acc_i[0] = _mm256_fmadd_ps(av, b0, acc_i[0]);
                acc_i[1] = _mm256_fmadd_ps(av, b1, acc_i[1]);
            }
            pa = pa.add(a_ks);
            pb = pb.add(PANEL);
        }
        store_half::<MR>(&acc, c.add(half * 16), ldc, nch, accumulate);
    }
}

/// Stores an `MR × 32` tile held as four 8-lane vectors per row, keeping columns `< nc`.
#[inline(always)]
unsafe fn store_full<const MR: usize>(acc: &[[__m256; 4]; MR], c: *mut f32, ldc: usize, nc: usize, accumulate: bool) {
    for half in 0..2 {
        let nch = nc.saturating_sub(half * 16).min(16);
        if nch == 0 {
            break;
        }
        let mut h = [[_mm256_setzero_ps(); 2]; MR];
        for (hi, a) in h.iter_mut().zip(acc) {
            *hi = [a[2 * half], a[2 * half + 1]];
        }
        store_half::<MR>(&h, c.add(half * 16), ldc, nch, accumulate);
    }
}

/// The f32 microkernel for one or two rows (decode, and GEMM's last rows): all 32 outputs per
/// k-step, so the panel streams whole and in order (see [`tile_int8_m`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_f32_full_m<const MR: usize>(
    kc: usize,
    a: *const f32,
    a_ks: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    nc: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm256_setzero_ps(); 4]; MR];
    let (mut pa, mut pb) = (a, b);
    for _ in 0..kc {
        let bv =
            [_mm256_loadu_ps(pb), _mm256_loadu_ps(pb.add(8)), _mm256_loadu_ps(pb.add(16)), _mm256_loadu_ps(pb.add(24))];
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_ps(*pa.add(i));
            for g in 0..4 {
                acc_i[g] = _mm256_fmadd_ps(av, bv[g], acc_i[g]);
            }
        }
        pa = pa.add(a_ks);
        pb = pb.add(PANEL);
    }
    store_full::<MR>(&acc, c, ldc, nc, accumulate);
}

/// One row against a whole panel, its depth read as two streams at once: the sums over the first
/// and the second half of `k` run side by side and are added last (see
/// [`MatmulIsa::tile_f32_2s`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_f32_2s_1(kc: usize, a: *const f32, a_ks: usize, b: *const f32, c: *mut f32, ldc: usize, nc: usize) {
    let kh = kc / 2;
    let mut lo = [_mm256_setzero_ps(); 4];
    let mut hi = [_mm256_setzero_ps(); 4];
    let (mut pa0, mut pb0) = (a, b);
    let (mut pa1, mut pb1) = (a.add(kh * a_ks), b.add(kh * PANEL));
    for _ in 0..kh {
        let (x0, x1) = (_mm256_set1_ps(*pa0), _mm256_set1_ps(*pa1));
        for (g, (l, h)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
            *l = _mm256_fmadd_ps(x0, _mm256_loadu_ps(pb0.add(8 * g)), *l);
            *h = _mm256_fmadd_ps(x1, _mm256_loadu_ps(pb1.add(8 * g)), *h);
        }
        (pa0, pb0, pa1, pb1) = (pa0.add(a_ks), pb0.add(PANEL), pa1.add(a_ks), pb1.add(PANEL));
    }
    if kc > 2 * kh {
        let x1 = _mm256_set1_ps(*pa1);
        for (g, h) in hi.iter_mut().enumerate() {
            *h = _mm256_fmadd_ps(x1, _mm256_loadu_ps(pb1.add(8 * g)), *h);
        }
    }
    let sum = [[0, 1, 2, 3].map(|g| _mm256_add_ps(lo[g], hi[g]))];
    store_full::<1>(&sum, c, ldc, nc, false);
}

#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_f32(
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
    // `mr` may exceed MR when the GEMV path (m ≤ 8) calls; split the rows.
    let mut i0 = 0;
    while i0 < mr {
        let rows = (mr - i0).min(MR);
        let (ai, ci) = (a.add(i0), c.add(i0 * ldc));
        match rows {
            1 => tile_f32_full_m::<1>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            2 => tile_f32_full_m::<2>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            3 => tile_f32_m::<3>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            4 => tile_f32_m::<4>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            5 => tile_f32_m::<5>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            _ => tile_f32_m::<6>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
        }
        i0 += rows;
    }
}

/// The packed-bf16 microkernel (decode), one or two rows: each pair-interleaved vector is
/// widened into its even-k and odd-k f32 vectors (shift / mask), all 32 outputs per k-pair, so
/// the panel streams whole and in order (see [`tile_int8_m`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_bf16_m<const MR: usize>(
    kp: usize,
    a: *const f32,
    a_ks: usize,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    nc: usize,
) {
    let hi = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
    let mut acc = [[_mm256_setzero_ps(); 4]; MR];
    let (mut pa, mut pb) = (a, b);
    for _ in 0..kp {
        let mut xs = [(_mm256_setzero_ps(), _mm256_setzero_ps()); MR];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = (_mm256_set1_ps(*pa.add(i)), _mm256_set1_ps(*pa.add(a_ks + i)));
        }
        for g in 0..4 {
            let r = _mm256_loadu_si256(pb.add(16 * g).cast());
            let even = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(r));
            let odd = _mm256_castsi256_ps(_mm256_and_si256(r, hi));
            for (acc_i, &(a0, a1)) in acc.iter_mut().zip(&xs) {
                acc_i[g] = _mm256_fmadd_ps(a0, even, acc_i[g]);
                acc_i[g] = _mm256_fmadd_ps(a1, odd, acc_i[g]);
            }
        }
        pa = pa.add(2 * a_ks);
        pb = pb.add(2 * PANEL);
    }
    store_full::<MR>(&acc, c, ldc, nc, false);
}

/// One row against a whole bf16 panel, its depth read as two streams at once (see
/// [`MatmulIsa::tile_bf16_2s`]); per stream the same steps as [`tile_bf16_m`].
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_bf16_2s_1(kp: usize, a: *const f32, a_ks: usize, b: *const u16, c: *mut f32, ldc: usize, nc: usize) {
    let hi = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
    let kh = kp / 2;
    let mut acc = [[_mm256_setzero_ps(); 4]; 2];
    let mut pa = [a, a.add(2 * kh * a_ks)];
    let mut pb = [b, b.add(2 * kh * PANEL)];
    let mut step = |s: usize| {
        let (a0, a1) = (_mm256_set1_ps(*pa[s]), _mm256_set1_ps(*pa[s].add(a_ks)));
        for (g, a) in acc[s].iter_mut().enumerate() {
            let r = _mm256_loadu_si256(pb[s].add(16 * g).cast());
            let even = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(r));
            let odd = _mm256_castsi256_ps(_mm256_and_si256(r, hi));
            *a = _mm256_fmadd_ps(a0, even, *a);
            *a = _mm256_fmadd_ps(a1, odd, *a);
        }
        pa[s] = pa[s].add(2 * a_ks);
        pb[s] = pb[s].add(2 * PANEL);
    };
    for _ in 0..kh {
        step(0);
        step(1);
    }
    if kp > 2 * kh {
        step(1);
    }
    let sum = [[0, 1, 2, 3].map(|g| _mm256_add_ps(acc[0][g], acc[1][g]))];
    store_full::<1>(&sum, c, ldc, nc, false);
}

#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_bf16(
    mr: usize,
    kp: usize,
    a: *const f32,
    a_ks: usize,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    nc: usize,
) {
    let mut i0 = 0;
    while i0 < mr {
        let rows = (mr - i0).min(2);
        let (ai, ci) = (a.add(i0), c.add(i0 * ldc));
        if rows == 1 {
            tile_bf16_m::<1>(kp, ai, a_ks, b, ci, ldc, nc);
        } else {
            tile_bf16_m::<2>(kp, ai, a_ks, b, ci, ldc, nc);
        }
        i0 += rows;
    }
}

/// The AVX2 int8 microkernel (signed activations), one or two rows: `vpmaddubsw(|x|, sign(w,
/// x))` never saturates because codes are within ±127, then `vpmaddwd` by ones widens to i32.
/// All 32 outputs of a k-quad are computed at once, so each 128-byte step of the panel is read
/// whole and in order. (Four rows over two 16-output passes, each reading every other cache
/// line, measured 40% slower at one row and 20% slower at eight, 5120 × 2048.) Runs `kq`
/// quads and adds into `acc_out` (the caller blocks the depth, see [`tile_int8`]). `PF`:
/// prefetch the panel ahead, for the first pair of rows over a block (the one that reads it
/// from L2 or DRAM; later pairs find it in L1, where prefetching measured a few percent slower).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_int8_m<const MR: usize, const PF: bool>(
    kq: usize,
    a: *const u8,
    a_ks: usize,
    b: *const u8,
    acc_out: &mut [[__m256i; 4]],
    ahead: Ahead,
) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 4]; MR];
    acc.copy_from_slice(&acc_out[..MR]);
    let (mut pa, mut pb) = (a, b);
    let (mut line, per_quad) = (0, ahead.lines.div_ceil(kq.max(1)));
    for _ in 0..kq {
        for _ in 0..per_quad {
            if line < ahead.lines {
                _mm_prefetch::<_MM_HINT_T1>(ahead.ptr.wrapping_add(64 * line).cast());
                line += 1;
            }
        }
        if PF {
            // The panel's two lines 8 quads (1 KiB) ahead: +5-10% at 3-8 rows from DRAM.
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(8 * 4 * PANEL).cast());
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(8 * 4 * PANEL + 64).cast());
        }
        let mut xs = [(_mm256_setzero_si256(), _mm256_setzero_si256()); MR];
        for (i, x) in xs.iter_mut().enumerate() {
            let xq = _mm256_set1_epi32(pa.add(4 * i).cast::<i32>().read_unaligned());
            *x = (xq, _mm256_abs_epi8(xq));
        }
        for g in 0..4 {
            let bg = _mm256_loadu_si256(pb.add(32 * g).cast());
            for (acc_i, &(xq, ax)) in acc.iter_mut().zip(&xs) {
                let p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(bg, xq));
                acc_i[g] = _mm256_add_epi32(acc_i[g], _mm256_madd_epi16(p, ones));
            }
        }
        pa = pa.add(4 * a_ks);
        pb = pb.add(4 * PANEL);
    }
    acc_out[..MR].copy_from_slice(&acc);
}

/// `c[i·ldc + j] = acc[i, j] as f32 · (sx[i] · sw[j])` for `j < nc`.
#[inline(always)]
unsafe fn store_int8<const MR: usize>(
    acc: &[[__m256i; 4]; MR],
    sx: *const f32,
    sw: *const f32,
    c: *mut f32,
    ldc: usize,
    nc: usize,
) {
    for half in 0..2 {
        let nch = nc.saturating_sub(half * 16).min(16);
        if nch == 0 {
            break;
        }
        let (w0, w1) = (_mm256_loadu_ps(sw.add(half * 16)), _mm256_loadu_ps(sw.add(half * 16 + 8)));
        let mut out = [[_mm256_setzero_ps(); 2]; MR];
        for (i, (o, acc_i)) in out.iter_mut().zip(acc.iter()).enumerate() {
            let s = _mm256_set1_ps(*sx.add(i));
            o[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(acc_i[2 * half]), _mm256_mul_ps(s, w0));
            o[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(acc_i[2 * half + 1]), _mm256_mul_ps(s, w1));
        }
        store_half::<MR>(&out, c.add(half * 16), ldc, nch, false);
    }
}

/// One row against a whole int8 panel, its depth read as two streams at once; the i32 sums of
/// the two halves are added before scaling, so the result equals [`tile_int8_m`]'s exactly.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_int8_2s_1(
    kq: usize,
    a: *const u8,
    a_ks: usize,
    b: *const u8,
    sx: *const f32,
    sw: *const f32,
    c: *mut f32,
    ldc: usize,
    nc: usize,
) {
    let ones = _mm256_set1_epi16(1);
    let kh = kq / 2;
    let mut acc = [[_mm256_setzero_si256(); 4]; 2];
    let mut pa = [a, a.add(4 * kh * a_ks)];
    let mut pb = [b, b.add(4 * kh * PANEL)];
    let mut step = |s: usize| {
        let xq = _mm256_set1_epi32(pa[s].cast::<i32>().read_unaligned());
        let ax = _mm256_abs_epi8(xq);
        for (g, a) in acc[s].iter_mut().enumerate() {
            let bg = _mm256_loadu_si256(pb[s].add(32 * g).cast());
            let p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(bg, xq));
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(p, ones));
        }
        pa[s] = pa[s].add(4 * a_ks);
        pb[s] = pb[s].add(4 * PANEL);
    };
    for _ in 0..kh {
        step(0);
        step(1);
    }
    if kq > 2 * kh {
        step(1);
    }
    let sum = [[0, 1, 2, 3].map(|g| _mm256_add_epi32(acc[0][g], acc[1][g]))];
    store_int8::<1>(&sum, sx, sw, c, ldc, nc);
}

/// Up to [`MR_INT8`] rows against one int8 panel: the depth in blocks of [`KB_INT8`] quads,
/// each run by every pair of rows in turn while it sits in L1; `ahead` (the next panel) is
/// brought into L2 a share per (block, pair).
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_int8(
    mr: usize,
    kq: usize,
    a: *const u8,
    a_ks: usize,
    b: *const u8,
    sx: *const f32,
    sw: *const f32,
    c: *mut f32,
    ldc: usize,
    nc: usize,
    ahead: *const u8,
    ahead_bytes: usize,
) {
    debug_assert!(mr <= MR_INT8);
    let blocks = kq.div_ceil(KB_INT8).max(1);
    let pairs = mr.div_ceil(2);
    let lines = ahead_bytes.div_ceil(64);
    let per_step = lines.div_ceil(blocks * pairs);
    let mut acc = [[_mm256_setzero_si256(); 4]; MR_INT8];
    for blk in 0..blocks {
        let (q0, nq) = (blk * KB_INT8, KB_INT8.min(kq - blk * KB_INT8));
        let (ab, bb) = (a.add(4 * q0 * a_ks), b.add(4 * q0 * PANEL));
        for pair in 0..pairs {
            let i0 = 2 * pair;
            let rows = (mr - i0).min(2);
            // This step's share of the lines to bring into L2.
            let first = ((blk * pairs + pair) * per_step).min(lines);
            let share = Ahead { ptr: ahead.wrapping_add(64 * first), lines: per_step.min(lines - first) };
            let (ai, acc) = (ab.add(4 * i0), &mut acc[i0..i0 + rows]);
            match (rows, pair == 0) {
                (1, true) => tile_int8_m::<1, true>(nq, ai, a_ks, bb, acc, share),
                (1, false) => tile_int8_m::<1, false>(nq, ai, a_ks, bb, acc, share),
                (_, true) => tile_int8_m::<2, true>(nq, ai, a_ks, bb, acc, share),
                (_, false) => tile_int8_m::<2, false>(nq, ai, a_ks, bb, acc, share),
            }
        }
    }
    for i0 in (0..mr).step_by(2) {
        let (si, ci) = (sx.add(i0), c.add(i0 * ldc));
        if mr - i0 == 1 {
            store_int8::<1>(&[acc[i0]], si, sw, ci, ldc, nc);
        } else {
            store_int8::<2>(&[acc[i0], acc[i0 + 1]], si, sw, ci, ldc, nc);
        }
    }
}

/// Cache lines to bring into L2 while a tile runs (`prefetcht1`, spread over its k-loop).
#[derive(Clone, Copy)]
struct Ahead {
    ptr: *const u8,
    lines: usize,
}

/// Scalar quantisation compiled with AVX2 enabled (it is O(m·k), small beside the weights).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_row(x: *const f32, k: usize, dst: *mut u8, unsigned: bool) -> f32 {
    let xs = std::slice::from_raw_parts(x, k);
    let q = std::slice::from_raw_parts_mut(dst.cast::<i8>(), k);
    let scale = quantize_row_reference(xs, q);
    if unsigned {
        for v in q.iter_mut() {
            *v = (*v as u8).wrapping_add(128) as i8;
        }
    }
    scale
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen_bf16_panel(src: *const u16, kc: usize, dst: *mut f32) {
    let hi = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
    for q in 0..kc / 2 {
        let s = src.add(q * 2 * PANEL);
        let d = dst.add(q * 2 * PANEL);
        for g in 0..4 {
            let r = _mm256_loadu_si256(s.add(16 * g).cast());
            _mm256_storeu_ps(d.add(8 * g), _mm256_castsi256_ps(_mm256_slli_epi32::<16>(r)));
            _mm256_storeu_ps(d.add(PANEL + 8 * g), _mm256_castsi256_ps(_mm256_and_si256(r, hi)));
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_rows_f32(w: *const f32, ldw: usize, rows: usize, kc: usize, dst: *mut f32) {
    for r in 0..PANEL {
        if r < rows {
            for kk in 0..kc {
                *dst.add(kk * PANEL + r) = *w.add(r * ldw + kk);
            }
        } else {
            for kk in 0..kc {
                *dst.add(kk * PANEL + r) = 0.0;
            }
        }
    }
}

// SAFETY: `Avx2` is only constructed by `detect` (features found) or `assume` (whose caller
// vouches for them); each method forwards to a `#[target_feature]` kernel whose pointer contract
// the caller upholds.
unsafe impl MatmulIsa for Avx2 {
    const MR: usize = MR;

    fn int8_unsigned(self) -> bool {
        false
    }
    unsafe fn gemv_rows_f32(
        self,
        x: *const f32,
        m: usize,
        k: usize,
        w: *const f32,
        rows: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        gemv_rows::<ElemF32>(x, m, k, w, rows, out, ldo)
    }
    unsafe fn gemv_rows_bf16(
        self,
        x: *const f32,
        m: usize,
        k: usize,
        w: *const u16,
        rows: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        gemv_rows::<ElemBf16>(x, m, k, w, rows, out, ldo)
    }
    unsafe fn gemv_rows_f16(
        self,
        x: *const f32,
        m: usize,
        k: usize,
        w: *const u16,
        rows: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        gemv_rows::<ElemF16>(x, m, k, w, rows, out, ldo)
    }
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
    ) {
        tile_f32(mr, kc, a, a_ks, b, c, ldc, nc, accumulate)
    }
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
        if mr == 1 {
            tile_f32_2s_1(kc, a, a_ks, b, c, ldc, nc)
        } else {
            super::split_tile_f32(self, mr, kc, a, a_ks, b, c, ldc, nc)
        }
    }
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
    ) {
        tile_bf16(mr, kp, a, a_ks, b, c, ldc, nc)
    }
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
        if mr == 1 {
            tile_bf16_2s_1(kp, a, a_ks, b, c, ldc, nc)
        } else {
            super::split_tile_bf16(self, mr, kp, a, a_ks, b, c, ldc, nc)
        }
    }
    unsafe fn tile_int8(
        self,
        mr: usize,
        kq: usize,
        a: *const u8,
        a_ks: usize,
        b: *const u8,
        _comp: *const i32,
        sx: *const f32,
        sw: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
    ) {
        tile_int8(mr, kq, a, a_ks, b, sx, sw, c, ldc, nc, std::ptr::null(), 0)
    }
    unsafe fn tile_int8_ahead(
        self,
        mr: usize,
        kq: usize,
        a: *const u8,
        a_ks: usize,
        b: *const u8,
        _comp: *const i32,
        sx: *const f32,
        sw: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
        ahead: &[u8],
    ) {
        tile_int8(mr, kq, a, a_ks, b, sx, sw, c, ldc, nc, ahead.as_ptr(), ahead.len())
    }
    unsafe fn tile_int8_2s(
        self,
        mr: usize,
        kq: usize,
        a: *const u8,
        a_ks: usize,
        b: *const u8,
        _comp: *const i32,
        sx: *const f32,
        sw: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
    ) {
        if mr == 1 {
            tile_int8_2s_1(kq, a, a_ks, b, sx, sw, c, ldc, nc)
        } else {
            tile_int8(mr, kq, a, a_ks, b, sx, sw, c, ldc, nc, std::ptr::null(), 0)
        }
    }
    unsafe fn quantize_row(self, x: *const f32, k: usize, dst: *mut u8, unsigned: bool) -> f32 {
        quantize_row(x, k, dst, unsigned)
    }
    unsafe fn widen_bf16_panel(self, src: *const u16, kc: usize, dst: *mut f32) {
        widen_bf16_panel(src, kc, dst)
    }
    unsafe fn pack_rows_f32(self, w: *const f32, ldw: usize, rows: usize, kc: usize, dst: *mut f32) {
        pack_rows_f32(w, ldw, rows, kc, dst)
    }
}
