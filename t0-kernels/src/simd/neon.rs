//! [`F32Vec`] for NEON (AArch64): four lanes in a `float32x4_t`.

use std::arch::aarch64::*;

use super::F32Vec;

/// Four f32 lanes (NEON).
#[derive(Clone, Copy)]
pub(crate) struct F32x4(float32x4_t);

// SAFETY: NEON is part of the AArch64 baseline; tails go through a stack buffer, touching only
// the first `n` values.
unsafe impl F32Vec for F32x4 {
    const LANES: usize = 4;
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        F32x4(vdupq_n_f32(v))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        F32x4(vld1q_f32(p))
    }
    #[inline(always)]
    unsafe fn load_tail(p: *const f32, n: usize, fill: f32) -> Self {
        let mut buf = [fill; 4];
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
        F32x4(vld1q_f32(buf.as_ptr()))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        vst1q_f32(p, self.0)
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, n: usize) {
        let mut buf = [0.0f32; 4];
        vst1q_f32(buf.as_mut_ptr(), self.0);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        F32x4(vaddq_f32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        F32x4(vsubq_f32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        F32x4(vmulq_f32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        F32x4(vdivq_f32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        F32x4(vfmaq_f32(c.0, self.0, b.0))
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        F32x4(vminq_f32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        F32x4(vmaxq_f32(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        F32x4(vabsq_f32(self.0))
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        F32x4(vrndnq_f32(self.0))
    }
    #[inline(always)]
    unsafe fn mul_pow2(self, n: Self) -> Self {
        let bits = vshlq_n_s32::<23>(vaddq_s32(vcvtnq_s32_f32(n.0), vdupq_n_s32(127)));
        F32x4(vmulq_f32(self.0, vreinterpretq_f32_s32(bits)))
    }
    #[inline(always)]
    unsafe fn select_lt(a: Self, b: Self, t: Self, f: Self) -> Self {
        F32x4(vbslq_f32(vcltq_f32(a.0, b.0), t.0, f.0))
    }
    #[inline(always)]
    unsafe fn copysign(self, s: Self) -> Self {
        let sign = vdupq_n_u32(0x8000_0000);
        F32x4(vbslq_f32(sign, s.0, self.0))
    }
    #[inline(always)]
    unsafe fn reduce_add(self) -> f32 {
        vaddvq_f32(self.0)
    }
    #[inline(always)]
    unsafe fn reduce_max(self) -> f32 {
        vmaxvq_f32(self.0)
    }
}
