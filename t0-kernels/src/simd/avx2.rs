//! [`F32Vec`] for AVX2 + FMA: eight lanes in a `__m256`.

use std::arch::x86_64::*;

use super::F32Vec;

/// Eight f32 lanes (AVX2 + FMA).
#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

// SAFETY: every method uses AVX/AVX2/FMA instructions only; callers guarantee the CPU has them
// (the trait's contract). Tails go through a stack buffer, touching only the first `n` values.
unsafe impl F32Vec for F32x8 {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        F32x8(_mm256_set1_ps(v))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        F32x8(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_tail(p: *const f32, n: usize, fill: f32) -> Self {
        let mut buf = [fill; 8];
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
        F32x8(_mm256_loadu_ps(buf.as_ptr()))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self.0)
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, n: usize) {
        let mut buf = [0.0f32; 8];
        _mm256_storeu_ps(buf.as_mut_ptr(), self.0);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        F32x8(_mm256_add_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        F32x8(_mm256_sub_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        F32x8(_mm256_mul_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        F32x8(_mm256_div_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        F32x8(_mm256_fmadd_ps(self.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        F32x8(_mm256_min_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        F32x8(_mm256_max_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        F32x8(_mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0))
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        F32x8(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0))
    }
    #[inline(always)]
    unsafe fn mul_pow2(self, n: Self) -> Self {
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n.0), _mm256_set1_epi32(127)));
        F32x8(_mm256_mul_ps(self.0, _mm256_castsi256_ps(bits)))
    }
    #[inline(always)]
    unsafe fn select_lt(a: Self, b: Self, t: Self, f: Self) -> Self {
        F32x8(_mm256_blendv_ps(f.0, t.0, _mm256_cmp_ps::<_CMP_LT_OQ>(a.0, b.0)))
    }
    #[inline(always)]
    unsafe fn copysign(self, s: Self) -> Self {
        let sign = _mm256_set1_ps(-0.0);
        F32x8(_mm256_or_ps(_mm256_andnot_ps(sign, self.0), _mm256_and_ps(sign, s.0)))
    }
    #[inline(always)]
    unsafe fn reduce_add(self) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
    #[inline(always)]
    unsafe fn reduce_max(self) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
    }
}
