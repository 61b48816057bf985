//! [`F32Vec`] for AVX-512F: sixteen lanes in a `__m512`.

use std::arch::x86_64::*;

use super::F32Vec;

/// Sixteen f32 lanes (AVX-512F).
#[derive(Clone, Copy)]
pub(crate) struct F32x16(__m512);

#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

// SAFETY: every method uses AVX-512F instructions only; callers guarantee the CPU has them
// (the trait's contract), and the masked loads/stores touch only the first `n` lanes.
unsafe impl F32Vec for F32x16 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        F32x16(_mm512_set1_ps(v))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        F32x16(_mm512_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_tail(p: *const f32, n: usize, fill: f32) -> Self {
        F32x16(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), tail_mask(n), p))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm512_storeu_ps(p, self.0)
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, n: usize) {
        _mm512_mask_storeu_ps(p, tail_mask(n), self.0)
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        F32x16(_mm512_add_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        F32x16(_mm512_sub_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        F32x16(_mm512_mul_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        F32x16(_mm512_div_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        F32x16(_mm512_fmadd_ps(self.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        F32x16(_mm512_min_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        F32x16(_mm512_max_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        F32x16(_mm512_abs_ps(self.0))
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        F32x16(_mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0))
    }
    #[inline(always)]
    unsafe fn mul_pow2(self, n: Self) -> Self {
        F32x16(_mm512_scalef_ps(self.0, n.0))
    }
    #[inline(always)]
    unsafe fn select_lt(a: Self, b: Self, t: Self, f: Self) -> Self {
        let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a.0, b.0);
        F32x16(_mm512_mask_blend_ps(m, f.0, t.0))
    }
    #[inline(always)]
    unsafe fn copysign(self, s: Self) -> Self {
        let sign = _mm512_set1_epi32(i32::MIN);
        let r = _mm512_ternarylogic_epi32::<0xCA>(sign, _mm512_castps_si512(s.0), _mm512_castps_si512(self.0));
        F32x16(_mm512_castsi512_ps(r))
    }
    #[inline(always)]
    unsafe fn reduce_add(self) -> f32 {
        _mm512_reduce_add_ps(self.0)
    }
    #[inline(always)]
    unsafe fn reduce_max(self) -> f32 {
        _mm512_reduce_max_ps(self.0)
    }
}
