//! AVX-512 matmul kernels (F/BW/VL/DQ + FMA; VNNI for int8 when present, else the AVX2 int8
//! tile; BF16 `vdpbf16ps` for bf16 weights when present, else the widening tiles). See
//! [`super::MatmulIsa`] for each kernel's contract.

use std::arch::x86_64::*;

use super::{MatmulIsa, MR_INT8, PANEL};
use crate::quant::int8_params;

/// Rows per f32 GEMM tile: 14 × 32 accumulators = 28 of the 32 zmm registers.
const MR: usize = 14;

/// AVX-512 kernels; constructible only when the CPU has them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512 {
    vnni: bool,
    /// AVX-512 BF16: bf16 weights run through the `vdpbf16ps` dot tiles at `m ≤ 8`.
    bf16: bool,
    /// Whether the GEMM (`m > 8`) uses the dot tiles too (else the widening f32 tiles).
    gemm_dot: bool,
    /// The kernels' name (see [`MatmulIsa::label`]).
    name: &'static str,
}

impl Avx512 {
    /// The kernels, if this CPU has AVX-512 F/BW/VL/DQ (+ FMA, F16C), with the faster of the two
    /// bf16 GEMM paths on this CPU ([`crate::cpu::bf16_dot_is_fast`]). `T0_BF16_DOT=0` or `=1`
    /// overrides that choice (for A/B benchmarks; `1` only where the CPU has AVX-512 BF16; `0`
    /// also keeps decode off `vdpbf16ps`).
    pub(crate) fn detect() -> Option<Self> {
        let dot = match std::env::var("T0_BF16_DOT").as_deref() {
            Ok("0") => false,
            Ok("1") => crate::cpu::has_avx512_bf16(),
            _ => crate::cpu::bf16_dot_is_fast(),
        };
        Self::with_bf16_dot(dot, "avx512")
    }

    /// The other bf16 path than [`Self::detect`]'s, named after it (`avx512-bf16dot` or
    /// `avx512-bf16widen`), where the CPU has AVX-512 BF16 (so that both are tested and can be
    /// compared); `None` elsewhere.
    pub(crate) fn alternative() -> Option<Self> {
        let chosen = Self::detect()?;
        if !crate::cpu::has_avx512_bf16() {
            return None;
        }
        let dot = !chosen.gemm_dot;
        Self::with_bf16_dot(dot, if dot { "avx512-bf16dot" } else { "avx512-bf16widen" })
    }

    /// `dot`: whether the GEMM runs bf16 weights on `vdpbf16ps` (decode does wherever the CPU has
    /// it, unless `T0_BF16_DOT=0`: there the bandwidth decides, and the dot tile reads a panel
    /// with fewer instructions than widening it).
    fn with_bf16_dot(dot: bool, name: &'static str) -> Option<Self> {
        let bf16 = crate::cpu::has_avx512_bf16() && std::env::var("T0_BF16_DOT").as_deref() != Ok("0");
        let gemm_dot = dot && bf16;
        crate::cpu::has_avx512().then(|| Avx512 { vnni: crate::cpu::has_avx512_vnni(), bf16, gemm_dot, name })
    }
}

#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// A row-major weight element type the GEMV kernels can widen to f32.
trait Elem {
    type T;
    /// 16 values from `p`, as f32.
    unsafe fn load16(p: *const Self::T) -> __m512;
    /// The first `mask` lanes from `p` as f32, zero elsewhere (no access past them).
    unsafe fn load_masked(p: *const Self::T, mask: __mmask16) -> __m512;
}

struct ElemF32;
impl Elem for ElemF32 {
    type T = f32;
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, mask: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(mask, p)
    }
}

struct ElemBf16;
impl Elem for ElemBf16 {
    type T = u16;
    #[inline(always)]
    unsafe fn load16(p: *const u16) -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()))))
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const u16, mask: __mmask16) -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p.cast()))))
    }
}

struct ElemF16;
impl Elem for ElemF16 {
    type T = u16;
    #[inline(always)]
    unsafe fn load16(p: *const u16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const u16, mask: __mmask16) -> __m512 {
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p.cast()))
    }
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
    let mut acc = [[_mm512_setzero_ps(); R]; M];
    let mut kk = 0;
    while kk + 16 <= k {
        let mut wv = [_mm512_setzero_ps(); R];
        for (r, v) in wv.iter_mut().enumerate() {
            *v = E::load16(w.add(r * k + kk));
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let xv = _mm512_loadu_ps(x.add(i * k + kk));
            for (a, &v) in acc_i.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(xv, v, *a);
            }
        }
        kk += 16;
    }
    if kk < k {
        let mask = tail_mask(k - kk);
        let mut wv = [_mm512_setzero_ps(); R];
        for (r, v) in wv.iter_mut().enumerate() {
            *v = E::load_masked(w.add(r * k + kk), mask);
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let xv = _mm512_maskz_loadu_ps(mask, x.add(i * k + kk));
            for (a, &v) in acc_i.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(xv, v, *a);
            }
        }
    }
    for (i, acc_i) in acc.iter().enumerate() {
        for (r, a) in acc_i.iter().enumerate() {
            *out.add(i * ldo + r) = _mm512_reduce_add_ps(*a);
        }
    }
}

/// All `rows` rows of `w`, `R` at a time, then one at a time.
///
/// (Blocking k so that several rows of `x` stay in L1 was tried and lost: it breaks the weight
/// rows into short streams the hardware prefetcher follows badly.)
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

/// Row-dot GEMV for `m ≤ 8`: accumulators = `m ×` rows in flight, within the 32 registers.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
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
        3 => gemv_rows_m::<E, 3, 4>(x, k, w, rows, out, ldo),
        4 => gemv_rows_m::<E, 4, 4>(x, k, w, rows, out, ldo),
        5 => gemv_rows_m::<E, 5, 4>(x, k, w, rows, out, ldo),
        6 => gemv_rows_m::<E, 6, 3>(x, k, w, rows, out, ldo),
        7 => gemv_rows_m::<E, 7, 3>(x, k, w, rows, out, ldo),
        8 => gemv_rows_m::<E, 8, 3>(x, k, w, rows, out, ldo),
        _ => unreachable!("gemv_rows: m = {m} > 8"),
    }
}

/// Writes (or adds) an `MR × 32` register tile to `c`, keeping columns `< nc`.
#[inline(always)]
unsafe fn store_tile<const MR: usize>(acc: &[[__m512; 2]; MR], c: *mut f32, ldc: usize, nc: usize, accumulate: bool) {
    let m0 = tail_mask(nc.min(16));
    let m1 = tail_mask(nc.saturating_sub(16));
    for (i, a) in acc.iter().enumerate() {
        let p = c.add(i * ldc);
        let (mut v0, mut v1) = (a[0], a[1]);
        if accumulate {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, p));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, p.add(16)));
        }
        _mm512_mask_storeu_ps(p, m0, v0);
        _mm512_mask_storeu_ps(p.add(16), m1, v1);
    }
}

/// The f32 microkernel: `MR` broadcasts of `a` × two vectors of the panel slice per k-step.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_f32_m<const MR: usize, const AHEAD: usize>(
    kc: usize,
    a: *const f32,
    a_ks: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    nc: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let (mut pa, mut pb) = (a, b);
    for _ in 0..kc {
        if AHEAD > 0 {
            // As the bf16 dot tile's: the panel `AHEAD` steps on, into L1.
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(AHEAD * PANEL).cast());
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(AHEAD * PANEL + 16).cast());
        }
        let b0 = _mm512_loadu_ps(pb);
        let b1 = _mm512_loadu_ps(pb.add(16));
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*pa.add(i));
            acc_i[0] = _mm512_fmadd_ps(av, b0, acc_i[0]);
            acc_i[1] = _mm512_fmadd_ps(av, b1, acc_i[1]);
        }
        pa = pa.add(a_ks);
        pb = pb.add(PANEL);
    }
    store_tile::<MR>(&acc, c, ldc, nc, accumulate);
}

/// The f32 tile for `mr` rows, prefetching its weight stream `AHEAD` steps ahead into L1 (0: not).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_f32<const AHEAD: usize>(
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
    macro_rules! go {
        ($($n:literal)*) => {
            match mr {
                $($n => tile_f32_m::<$n, AHEAD>(kc, a, a_ks, b, c, ldc, nc, accumulate),)*
                _ => unreachable!("tile_f32: mr = {mr}"),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8 9 10 11 12 13 14)
}

/// The packed-bf16 microkernel (`MR ≤ 8`): widen each pair-interleaved vector into the even-k
/// and odd-k f32 vectors (shift / mask), then FMA the even k and then the odd k into one
/// accumulator per 16 outputs. Every row is summed in that order whatever `MR` is, so a row's
/// output does not depend on the rows beside it (even and odd k in separate accumulators for
/// `MR ≤ 4` broke that and measured no faster at one row: 61–65 GB/s either way).
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
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let hi = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    let mut pb = b;
    let mut pa = a;
    for _ in 0..kp {
        let r0 = _mm512_loadu_si512(pb.cast());
        let r1 = _mm512_loadu_si512(pb.add(32).cast());
        let e0 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(r0));
        let o0 = _mm512_castsi512_ps(_mm512_and_si512(r0, hi));
        let e1 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(r1));
        let o1 = _mm512_castsi512_ps(_mm512_and_si512(r1, hi));
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let a0 = _mm512_set1_ps(*pa.add(i));
            let a1 = _mm512_set1_ps(*pa.add(a_ks + i));
            acc_i[0] = _mm512_fmadd_ps(a0, e0, acc_i[0]);
            acc_i[1] = _mm512_fmadd_ps(a0, e1, acc_i[1]);
            acc_i[0] = _mm512_fmadd_ps(a1, o0, acc_i[0]);
            acc_i[1] = _mm512_fmadd_ps(a1, o1, acc_i[1]);
        }
        pa = pa.add(2 * a_ks);
        pb = pb.add(2 * PANEL);
    }
    store_tile::<MR>(&acc, c, ldc, nc, false);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
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
    match mr {
        1 => tile_bf16_m::<1>(kp, a, a_ks, b, c, ldc, nc),
        2 => tile_bf16_m::<2>(kp, a, a_ks, b, c, ldc, nc),
        3 => tile_bf16_m::<3>(kp, a, a_ks, b, c, ldc, nc),
        4 => tile_bf16_m::<4>(kp, a, a_ks, b, c, ldc, nc),
        5 => tile_bf16_m::<5>(kp, a, a_ks, b, c, ldc, nc),
        6 => tile_bf16_m::<6>(kp, a, a_ks, b, c, ldc, nc),
        7 => tile_bf16_m::<7>(kp, a, a_ks, b, c, ldc, nc),
        8 => tile_bf16_m::<8>(kp, a, a_ks, b, c, ldc, nc),
        _ => unreachable!("tile_bf16: mr = {mr}"),
    }
}

/// Steps of its weight stream an f32 or bf16 dot tile on a GEMM slice asks L1 for ahead of use
/// (`prefetcht0`, two cache lines a step): the first tile over a slice otherwise waits on L2
/// for each line. 64-row bf16 GEMM, 2048 × 2048 (old and new binaries alternated): 362 → 381
/// GFLOP/s; 8 steps gave 371, 32 no more than 16; `cargo bench --bench matmul` at m64: bf16
/// 2048 × 2048 353 → 379, 5120 × 2048 363 → 400; f32 +13%.
const L1_AHEAD: usize = 16;

/// Steps (128 bytes of the panel each, in every tile kind) that a tile streaming its panel from
/// DRAM asks L1 for ahead of use: the decode tiles (`m ≤ 8`, f32, bf16 dot, int8) and the int8
/// GEMM's full-depth tiles. Without it, the hardware prefetchers ran ahead of a tile far
/// enough only while the tile itself was faster than DRAM: on an Emerald Rapids VM a 5120 × 2048
/// weight streamed at 18 (f32), 13 (bf16) and 17 (int8) GiB/s with 8 rows and 24 GiB/s with one
/// bf16 row, against a 28–30 GiB/s read ceiling; 32 steps ahead: 26, 21, 24 and 30 GiB/s
/// (16 steps: 25, 20, 23, 29; 64 and 128 no better than 32). On the Zen 4 VM, 16 steps had
/// measured anywhere from 5% worse to 25% better with that machine's bandwidth of the moment.
const DRAM_AHEAD: usize = 32;

/// Whether the DRAM-streaming tiles prefetch [`DRAM_AHEAD`] steps ahead: yes, unless
/// `T0_DECODE_AHEAD=0` (read once; for A/B runs).
fn dram_prefetch() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("T0_DECODE_AHEAD").as_deref() != Ok("0"))
}

/// Calls tile kernel `$f::<AHEAD>` with [`DRAM_AHEAD`] or, when [`dram_prefetch`] is off, 0.
macro_rules! dram_tile {
    ($f:ident($($arg:expr),*)) => {
        if dram_prefetch() {
            $f::<DRAM_AHEAD>($($arg),*)
        } else {
            $f::<0>($($arg),*)
        }
    };
}

/// The bf16 dot microkernel: per k-pair, `MR` broadcast activation pairs × two vectors of 16
/// outputs' weight pairs, `vdpbf16ps` into f32 (the even and odd products added to each sum).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_bf16_dot_m<const MR: usize, const AHEAD: usize>(
    kp: usize,
    a: *const u32,
    a_ks: usize,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    nc: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let (mut pa, mut pb) = (a, b);
    for _ in 0..kp {
        if AHEAD > 0 {
            // The panel's pairs `AHEAD` steps on (past the slice: the panel's next slice,
            // which comes next); prefetching never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(AHEAD * 2 * PANEL).cast());
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(AHEAD * 2 * PANEL + 32).cast());
        }
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(pb.cast()));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(pb.add(32).cast()));
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*pa.add(i) as i32));
            acc_i[0] = _mm512_dpbf16_ps(acc_i[0], av, b0);
            acc_i[1] = _mm512_dpbf16_ps(acc_i[1], av, b1);
        }
        pa = pa.add(a_ks);
        pb = pb.add(2 * PANEL);
    }
    store_tile::<MR>(&acc, c, ldc, nc, accumulate);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_bf16_dot<const AHEAD: usize>(
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
    macro_rules! go {
        ($($n:literal)*) => {
            match mr {
                $($n => tile_bf16_dot_m::<$n, AHEAD>(kp, a, a_ks, b, c, ldc, nc, accumulate),)*
                _ => unreachable!("tile_bf16_dot: mr = {mr}"),
            }
        };
    }
    const _: () = assert!(MR == 14);
    go!(1 2 3 4 5 6 7 8 9 10 11 12 13 14)
}

/// `x[..k]` to bf16 pairs, 32 values per `vcvtne2ps2bf16` (round to nearest even).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,avx512bf16")]
unsafe fn bf16_pairs(x: *const f32, k: usize, dst: *mut u32) {
    let mut i = 0;
    while i < k {
        let (n0, n1) = ((k - i).min(16), (k - i).saturating_sub(16).min(16));
        let lo = _mm512_maskz_loadu_ps(tail_mask(n0), x.add(i));
        let hi = _mm512_maskz_loadu_ps(tail_mask(n1), x.add(i + 16));
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        // Whole pairs: an odd tail's zero partner is stored too.
        let halves = (n0 + n1).div_ceil(2) * 2;
        _mm512_mask_storeu_epi16(dst.add(i / 2).cast(), (((1u64 << halves) - 1) as u32) as __mmask32, v);
        i += 32;
    }
}

/// The VNNI int8 microkernel: per k-quad, `MR` broadcast quads of u8 activations × two
/// vectors of 16 outputs' i8 quads, `vpdpbusd` into i32; then subtract the compensation,
/// convert and scale.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_int8_vnni_m<const MR: usize, const AHEAD: usize>(
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
    let mut acc = [[_mm512_setzero_si512(); 2]; MR];
    let (mut pa, mut pb) = (a, b);
    for _ in 0..kq {
        if AHEAD > 0 {
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(AHEAD * 4 * PANEL).cast());
            _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(AHEAD * 4 * PANEL + 64).cast());
        }
        let b0 = _mm512_loadu_si512(pb.cast());
        let b1 = _mm512_loadu_si512(pb.add(64).cast());
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(pa.add(4 * i).cast::<i32>().read_unaligned());
            acc_i[0] = _mm512_dpbusd_epi32(acc_i[0], av, b0);
            acc_i[1] = _mm512_dpbusd_epi32(acc_i[1], av, b1);
        }
        pa = pa.add(4 * a_ks);
        pb = pb.add(4 * PANEL);
    }
    let (c0, c1) = (_mm512_loadu_si512(comp.cast()), _mm512_loadu_si512(comp.add(16).cast()));
    let (w0, w1) = (_mm512_loadu_ps(sw), _mm512_loadu_ps(sw.add(16)));
    let m0 = tail_mask(nc.min(16));
    let m1 = tail_mask(nc.saturating_sub(16));
    for (i, acc_i) in acc.iter().enumerate() {
        let s = _mm512_set1_ps(*sx.add(i));
        let y0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc_i[0], c0)), _mm512_mul_ps(s, w0));
        let y1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc_i[1], c1)), _mm512_mul_ps(s, w1));
        let p = c.add(i * ldc);
        _mm512_mask_storeu_ps(p, m0, y0);
        _mm512_mask_storeu_ps(p.add(16), m1, y1);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_int8_vnni<const AHEAD: usize>(
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
    macro_rules! go {
        ($($n:literal)*) => {
            match mr {
                $($n => tile_int8_vnni_m::<$n, AHEAD>(kq, a, a_ks, b, comp, sx, sw, c, ldc, nc),)*
                _ => unreachable!("tile_int8: mr = {mr}"),
            }
        };
    }
    const _: () = assert!(MR_INT8 == 8);
    go!(1 2 3 4 5 6 7 8)
}

/// Per-row int8 quantisation, bit-identical to [`crate::quant::quantize_row_reference`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
unsafe fn quantize_row(x: *const f32, k: usize, dst: *mut u8, unsigned: bool) -> f32 {
    let mut mx = _mm512_setzero_ps();
    let mut i = 0;
    while i < k {
        let mask = tail_mask((k - i).min(16));
        // `max(|x|, acc)`: a NaN lane keeps `acc`, as `f32::max` ignores NaN.
        mx = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(mask, x.add(i))), mx);
        i += 16;
    }
    let (scale, mul) = int8_params(_mm512_reduce_max_ps(mx));
    let mv = _mm512_set1_ps(mul);
    let (lo, hi) = (_mm512_set1_epi32(-127), _mm512_set1_epi32(127));
    let off = _mm512_set1_epi32(if unsigned { 128 } else { 0 });
    let mut i = 0;
    while i < k {
        let mask = tail_mask((k - i).min(16));
        let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x.add(i)), mv);
        // NaN → 0, as `NaN as i8` does.
        let v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v), v);
        let q = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(v), lo), hi);
        _mm512_mask_cvtepi32_storeu_epi8(dst.add(i).cast(), mask, _mm512_add_epi32(q, off));
        i += 16;
    }
    scale
}

/// Widens `kc` (even) k-steps of a packed bf16 panel into f32 `[kc][32]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
unsafe fn widen_bf16_panel(src: *const u16, kc: usize, dst: *mut f32) {
    let hi = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    for q in 0..kc / 2 {
        let s = src.add(q * 2 * PANEL);
        let d = dst.add(q * 2 * PANEL);
        let r0 = _mm512_loadu_si512(s.cast());
        let r1 = _mm512_loadu_si512(s.add(32).cast());
        _mm512_storeu_ps(d, _mm512_castsi512_ps(_mm512_slli_epi32::<16>(r0)));
        _mm512_storeu_ps(d.add(16), _mm512_castsi512_ps(_mm512_slli_epi32::<16>(r1)));
        _mm512_storeu_ps(d.add(PANEL), _mm512_castsi512_ps(_mm512_and_si512(r0, hi)));
        _mm512_storeu_ps(d.add(PANEL + 16), _mm512_castsi512_ps(_mm512_and_si512(r1, hi)));
    }
}

/// Transposes a 16 × 16 block held in `r` (rows) into columns, in place.
#[inline(always)]
unsafe fn transpose16(r: &mut [__m512; 16]) {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (a0, a1, b0, b1) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        let pd = |x: __m512| _mm512_castps_pd(x);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a0), pd(b0)));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a0), pd(b0)));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a1), pd(b1)));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a1), pd(b1)));
    }
    let mut v = [_mm512_setzero_ps(); 16];
    for s in 0..4 {
        v[s] = _mm512_shuffle_f32x4::<0x88>(u[s], u[4 + s]);
        v[4 + s] = _mm512_shuffle_f32x4::<0xDD>(u[s], u[4 + s]);
        v[8 + s] = _mm512_shuffle_f32x4::<0x88>(u[8 + s], u[12 + s]);
        v[12 + s] = _mm512_shuffle_f32x4::<0xDD>(u[8 + s], u[12 + s]);
    }
    for c in 0..8 {
        r[c] = _mm512_shuffle_f32x4::<0x88>(v[c], v[8 + c]);
        r[8 + c] = _mm512_shuffle_f32x4::<0xDD>(v[c], v[8 + c]);
    }
}

/// Transposing pack of raw f32 rows into `[kc][32]`, 16 × 16 blocks in registers.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
unsafe fn pack_rows_f32(w: *const f32, ldw: usize, rows: usize, kc: usize, dst: *mut f32) {
    for half in 0..2 {
        let r0 = half * 16;
        let mut kk = 0;
        while kk < kc {
            let cols = (kc - kk).min(16);
            let mask = tail_mask(cols);
            let mut blk = [_mm512_setzero_ps(); 16];
            for (j, v) in blk.iter_mut().enumerate() {
                if r0 + j < rows {
                    *v = _mm512_maskz_loadu_ps(mask, w.add((r0 + j) * ldw + kk));
                }
            }
            transpose16(&mut blk);
            for (c, v) in blk.iter().enumerate().take(cols) {
                _mm512_storeu_ps(dst.add((kk + c) * PANEL + r0), *v);
            }
            kk += 16;
        }
    }
}

// SAFETY: `Avx512` is only constructed by `detect`, after the features were found; each method
// forwards to a `#[target_feature]` kernel whose pointer contract the caller upholds.
unsafe impl MatmulIsa for Avx512 {
    const MR: usize = MR;

    fn label(self, _base: &'static str) -> &'static str {
        self.name
    }
    fn int8_unsigned(self) -> bool {
        self.vnni
    }
    fn bf16_dot(self) -> bool {
        self.bf16
    }
    fn bf16_dot_gemm(self) -> bool {
        self.gemm_dot
    }
    unsafe fn bf16_pairs(self, x: *const f32, k: usize, dst: *mut u32) {
        if crate::cpu::has_avx512_bf16() {
            bf16_pairs(x, k, dst)
        } else {
            super::default_bf16_pairs(x, k, dst)
        }
    }
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
        dram_tile!(tile_bf16_dot(mr, kp, a, a_ks, b, c, ldc, nc, accumulate))
    }
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
        tile_bf16_dot::<L1_AHEAD>(mr, kp, a, a_ks, b, c, ldc, nc, accumulate)
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
        dram_tile!(tile_f32(mr, kc, a, a_ks, b, c, ldc, nc, accumulate))
    }
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
        tile_f32::<L1_AHEAD>(mr, kc, a, a_ks, b, c, ldc, nc, accumulate)
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
    ) {
        if self.vnni {
            dram_tile!(tile_int8_vnni(mr, kq, a, a_ks, b, comp, sx, sw, c, ldc, nc))
        } else {
            // Every AVX-512 CPU has AVX2; the AVX2 tile takes signed activations.
            super::avx2::Avx2::assume().tile_int8(mr, kq, a, a_ks, b, comp, sx, sw, c, ldc, nc)
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
