//! NEON (AArch64) matmul kernels: 4-lane vectors, 32 registers. Tiles walk each 32-output
//! panel as two 16-output halves. See [`super::MatmulIsa`] for the contracts.
//!
//! Int8 uses the baseline `smull`/`sadalp` pair (no `dotprod` requirement).

use std::arch::aarch64::*;

use super::{MatmulIsa, MR_INT8, PANEL};
use crate::quant::quantize_row_reference;

/// Rows per f32 GEMM tile: 6 × 16 outputs = 24 accumulators of the 32 q registers.
const MR: usize = 6;

/// NEON kernels (NEON is part of the AArch64 baseline).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon {
    _detected: (),
}

impl Neon {
    /// The kernels (always available on AArch64).
    pub(crate) fn detect() -> Option<Self> {
        Some(Neon { _detected: () })
    }
}

/// A row-major weight element type the GEMV kernels can widen to f32.
trait Elem {
    type T: Copy;
    /// 4 values from `p`, as f32.
    unsafe fn load4(p: *const Self::T) -> float32x4_t;
    /// One value as f32.
    fn widen(v: Self::T) -> f32;
}

struct ElemF32;
impl Elem for ElemF32 {
    type T = f32;
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> float32x4_t {
        vld1q_f32(p)
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
    unsafe fn load4(p: *const u16) -> float32x4_t {
        vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p)))
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
    unsafe fn load4(p: *const u16) -> float32x4_t {
        let mut t = [0.0f32; 4];
        for (i, v) in t.iter_mut().enumerate() {
            *v = super::pack::f16_bits_to_f32(*p.add(i));
        }
        vld1q_f32(t.as_ptr())
    }
    #[inline(always)]
    fn widen(v: u16) -> f32 {
        super::pack::f16_bits_to_f32(v)
    }
}

#[inline(always)]
unsafe fn dot_block<E: Elem, const M: usize, const R: usize>(
    x: *const f32,
    k: usize,
    w: *const E::T,
    out: *mut f32,
    ldo: usize,
) {
    let mut acc = [[vdupq_n_f32(0.0); R]; M];
    let mut kk = 0;
    while kk + 4 <= k {
        let mut wv = [vdupq_n_f32(0.0); R];
        for (r, v) in wv.iter_mut().enumerate() {
            *v = E::load4(w.add(r * k + kk));
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let xv = vld1q_f32(x.add(i * k + kk));
            for (a, &v) in acc_i.iter_mut().zip(&wv) {
                *a = vfmaq_f32(*a, xv, v);
            }
        }
        kk += 4;
    }
    for (i, acc_i) in acc.iter().enumerate() {
        for (r, a) in acc_i.iter().enumerate() {
            let mut s = vaddvq_f32(*a);
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

#[target_feature(enable = "neon")]
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
        5 => gemv_rows_m::<E, 5, 3>(x, k, w, rows, out, ldo),
        6 => gemv_rows_m::<E, 6, 3>(x, k, w, rows, out, ldo),
        7 => gemv_rows_m::<E, 7, 2>(x, k, w, rows, out, ldo),
        8 => gemv_rows_m::<E, 8, 2>(x, k, w, rows, out, ldo),
        _ => unreachable!("gemv_rows: m = {m} > 8"),
    }
}

/// Writes (or adds) an `MR × 16` half-panel tile, keeping columns `< nc` (≤ 16).
#[inline(always)]
unsafe fn store_half<const MR: usize>(
    acc: &[[float32x4_t; 4]; MR],
    c: *mut f32,
    ldc: usize,
    nc: usize,
    accumulate: bool,
) {
    for (i, a) in acc.iter().enumerate() {
        let p = c.add(i * ldc);
        if nc == 16 {
            for (g, v) in a.iter().enumerate() {
                let mut v = *v;
                if accumulate {
                    v = vaddq_f32(v, vld1q_f32(p.add(4 * g)));
                }
                vst1q_f32(p.add(4 * g), v);
            }
        } else {
            let mut t = [0.0f32; 16];
            for (g, v) in a.iter().enumerate() {
                vst1q_f32(t.as_mut_ptr().add(4 * g), *v);
            }
            for (j, &v) in t.iter().enumerate().take(nc) {
                *p.add(j) = if accumulate { *p.add(j) + v } else { v };
            }
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
        let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
        let (mut pa, mut pb) = (a, b.add(half * 16));
        for _ in 0..kc {
            let bv = [vld1q_f32(pb), vld1q_f32(pb.add(4)), vld1q_f32(pb.add(8)), vld1q_f32(pb.add(12))];
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let av = vdupq_n_f32(*pa.add(i));
                for (g, a) in acc_i.iter_mut().enumerate() {
                    *a = vfmaq_f32(*a, av, bv[g]);
                }
            }
            pa = pa.add(a_ks);
            pb = pb.add(PANEL);
        }
        store_half::<MR>(&acc, c.add(half * 16), ldc, nch, accumulate);
    }
}

#[target_feature(enable = "neon")]
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
    let mut i0 = 0;
    while i0 < mr {
        let rows = (mr - i0).min(MR);
        let (ai, ci) = (a.add(i0), c.add(i0 * ldc));
        match rows {
            1 => tile_f32_m::<1>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            2 => tile_f32_m::<2>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            3 => tile_f32_m::<3>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            4 => tile_f32_m::<4>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            5 => tile_f32_m::<5>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
            _ => tile_f32_m::<6>(kc, ai, a_ks, b, ci, ldc, nc, accumulate),
        }
        i0 += rows;
    }
}

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
    let hi = vdupq_n_u32(0xFFFF_0000);
    for half in 0..2 {
        let nch = nc.saturating_sub(half * 16).min(16);
        if nch == 0 {
            break;
        }
        let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
        let (mut pa, mut pb) = (a, b.add(half * 32));
        for _ in 0..kp {
            let mut e = [vdupq_n_f32(0.0); 4];
            let mut o = [vdupq_n_f32(0.0); 4];
            for g in 0..4 {
                let r = vld1q_u32(pb.add(8 * g).cast());
                e[g] = vreinterpretq_f32_u32(vshlq_n_u32::<16>(r));
                o[g] = vreinterpretq_f32_u32(vandq_u32(r, hi));
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let a0 = vdupq_n_f32(*pa.add(i));
                let a1 = vdupq_n_f32(*pa.add(a_ks + i));
                for g in 0..4 {
                    acc_i[g] = vfmaq_f32(acc_i[g], a0, e[g]);
                    acc_i[g] = vfmaq_f32(acc_i[g], a1, o[g]);
                }
            }
            pa = pa.add(2 * a_ks);
            pb = pb.add(2 * PANEL);
        }
        store_half::<MR>(&acc, c.add(half * 16), ldc, nch, false);
    }
}

#[target_feature(enable = "neon")]
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
        let rows = (mr - i0).min(4);
        let (ai, ci) = (a.add(i0), c.add(i0 * ldc));
        match rows {
            1 => tile_bf16_m::<1>(kp, ai, a_ks, b, ci, ldc, nc),
            2 => tile_bf16_m::<2>(kp, ai, a_ks, b, ci, ldc, nc),
            3 => tile_bf16_m::<3>(kp, ai, a_ks, b, ci, ldc, nc),
            _ => tile_bf16_m::<4>(kp, ai, a_ks, b, ci, ldc, nc),
        }
        i0 += rows;
    }
}

/// Int8 microkernel (signed activations): `smull` of a weight vector (two outputs' quads) by
/// the broadcast activation quad, `sadalp` into i32 pairs, pairwise-added at the end.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_int8_m<const MR: usize>(
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
    for half in 0..2 {
        let nch = nc.saturating_sub(half * 16).min(16);
        if nch == 0 {
            break;
        }
        // acc[i][h]: outputs 2h, 2h+1 of this half, as [o0 k01, o0 k23, o1 k01, o1 k23].
        let mut acc = [[vdupq_n_s32(0); 8]; MR];
        let (mut pa, mut pb) = (a, b.add(half * 64));
        for _ in 0..kq {
            let bv = [
                vld1q_s8(pb.cast()),
                vld1q_s8(pb.add(16).cast()),
                vld1q_s8(pb.add(32).cast()),
                vld1q_s8(pb.add(48).cast()),
            ];
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let xq = vreinterpret_s8_s32(vdup_n_s32(pa.add(4 * i).cast::<i32>().read_unaligned()));
                for g in 0..4 {
                    acc_i[2 * g] = vpadalq_s16(acc_i[2 * g], vmull_s8(vget_low_s8(bv[g]), xq));
                    acc_i[2 * g + 1] = vpadalq_s16(acc_i[2 * g + 1], vmull_s8(vget_high_s8(bv[g]), xq));
                }
            }
            pa = pa.add(4 * a_ks);
            pb = pb.add(4 * PANEL);
        }
        let mut out = [[vdupq_n_f32(0.0); 4]; MR];
        for (i, (o, acc_i)) in out.iter_mut().zip(&acc).enumerate() {
            let s = vdupq_n_f32(*sx.add(i));
            for g in 0..4 {
                let sums = vpaddq_s32(acc_i[2 * g], acc_i[2 * g + 1]);
                let w = vld1q_f32(sw.add(half * 16 + 4 * g));
                o[g] = vmulq_f32(vcvtq_f32_s32(sums), vmulq_f32(s, w));
            }
        }
        store_half::<MR>(&out, c.add(half * 16), ldc, nch, false);
    }
}

#[target_feature(enable = "neon")]
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
) {
    debug_assert!(mr <= MR_INT8);
    let mut i0 = 0;
    while i0 < mr {
        let rows = (mr - i0).min(2);
        let (ai, si, ci) = (a.add(4 * i0), sx.add(i0), c.add(i0 * ldc));
        match rows {
            1 => tile_int8_m::<1>(kq, ai, a_ks, b, si, sw, ci, ldc, nc),
            _ => tile_int8_m::<2>(kq, ai, a_ks, b, si, sw, ci, ldc, nc),
        }
        i0 += rows;
    }
}

#[target_feature(enable = "neon")]
unsafe fn quantize_row(x: *const f32, k: usize, dst: *mut u8) -> f32 {
    let xs = std::slice::from_raw_parts(x, k);
    let q = std::slice::from_raw_parts_mut(dst.cast::<i8>(), k);
    quantize_row_reference(xs, q)
}

#[target_feature(enable = "neon")]
unsafe fn widen_bf16_panel(src: *const u16, kc: usize, dst: *mut f32) {
    let hi = vdupq_n_u32(0xFFFF_0000);
    for q in 0..kc / 2 {
        let s = src.add(q * 2 * PANEL);
        let d = dst.add(q * 2 * PANEL);
        for g in 0..8 {
            let r = vld1q_u32(s.add(8 * g).cast());
            vst1q_f32(d.add(4 * g), vreinterpretq_f32_u32(vshlq_n_u32::<16>(r)));
            vst1q_f32(d.add(PANEL + 4 * g), vreinterpretq_f32_u32(vandq_u32(r, hi)));
        }
    }
}

#[target_feature(enable = "neon")]
unsafe fn pack_rows_f32(w: *const f32, ldw: usize, rows: usize, kc: usize, dst: *mut f32) {
    for r in 0..PANEL {
        for kk in 0..kc {
            *dst.add(kk * PANEL + r) = if r < rows { *w.add(r * ldw + kk) } else { 0.0 };
        }
    }
}

// SAFETY: NEON is baseline on AArch64; each method forwards to a kernel whose pointer contract
// the caller upholds.
unsafe impl MatmulIsa for Neon {
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
        _comp: *const i32,
        sx: *const f32,
        sw: *const f32,
        c: *mut f32,
        ldc: usize,
        nc: usize,
    ) {
        tile_int8(mr, kq, a, a_ks, b, sx, sw, c, ldc, nc)
    }
    unsafe fn quantize_row(self, x: *const f32, k: usize, dst: *mut u8, _unsigned: bool) -> f32 {
        quantize_row(x, k, dst)
    }
    unsafe fn widen_bf16_panel(self, src: *const u16, kc: usize, dst: *mut f32) {
        widen_bf16_panel(src, kc, dst)
    }
    unsafe fn pack_rows_f32(self, w: *const f32, ldw: usize, rows: usize, kc: usize, dst: *mut f32) {
        pack_rows_f32(w, ldw, rows, kc, dst)
    }
}
