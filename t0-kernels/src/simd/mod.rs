//! A small vector abstraction over one instruction set's f32 registers, so that each
//! element-wise op (softmax, RMS norm, activations, attention's inner loops) is written once,
//! generically, and instantiated per ISA inside a `#[target_feature]` function
//! (see [`crate::backend`]).
//!
//! Everything here is `#[inline(always)]`: the generic code only becomes machine code once it
//! is inlined into a caller compiled with the ISA's target features enabled.

pub(crate) mod math;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

/// `LANES` f32 values in one register.
///
/// # Safety
///
/// Every method may only be called on a CPU that supports the implementing type's instruction
/// set, from code compiled with (or inlined into a function with) those target features.
/// Pointer arguments follow the usual rules: `load`/`store` touch exactly `LANES` values,
/// `load_tail`/`store_tail` exactly `n < LANES` values.
pub(crate) unsafe trait F32Vec: Copy {
    /// Number of f32 lanes.
    const LANES: usize;
    /// All lanes `v`.
    unsafe fn splat(v: f32) -> Self;
    /// `LANES` values from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// `n < LANES` values from `p`; the other lanes hold `fill`.
    unsafe fn load_tail(p: *const f32, n: usize, fill: f32) -> Self;
    /// `LANES` values to `p` (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// The first `n < LANES` lanes to `p`.
    unsafe fn store_tail(self, p: *mut f32, n: usize);
    /// Lane-wise `self + b`.
    unsafe fn add(self, b: Self) -> Self;
    /// Lane-wise `self - b`.
    unsafe fn sub(self, b: Self) -> Self;
    /// Lane-wise `self * b`.
    unsafe fn mul(self, b: Self) -> Self;
    /// Lane-wise `self / b` (IEEE division).
    unsafe fn div(self, b: Self) -> Self;
    /// Lane-wise `self * b + c`, fused (one rounding).
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise minimum.
    unsafe fn min(self, b: Self) -> Self;
    /// Lane-wise maximum.
    unsafe fn max(self, b: Self) -> Self;
    /// Lane-wise absolute value.
    unsafe fn abs(self) -> Self;
    /// Round to the nearest integer, ties to even.
    unsafe fn round(self) -> Self;
    /// `self · 2^n` for integral `n` in `[-126, 127]` and normal results.
    unsafe fn mul_pow2(self, n: Self) -> Self;
    /// `if a < b { t } else { f }` lane-wise.
    unsafe fn select_lt(a: Self, b: Self, t: Self, f: Self) -> Self;
    /// `|self|` with the sign of `s`.
    unsafe fn copysign(self, s: Self) -> Self;
    /// Sum of the lanes.
    unsafe fn reduce_add(self) -> f32;
    /// Maximum of the lanes.
    unsafe fn reduce_max(self) -> f32;
}

// The helpers below are macros, not functions taking closures: a closure is compiled as its own
// function with its *lexical* parent's target features, and the generic op code that would
// define it has none, so any SIMD inside it would not be inlined. A macro expands in place,
// inside the `#[target_feature]` function that instantiates the op.

/// `xs[i] = body(v)` vector by vector over a `&mut [f32]`, with `v` bound to each vector (tail
/// lanes hold `fill`, which `body` must be well-defined on; they are discarded).
///
/// Expands to unsafe code: `V`'s instruction set must be available.
macro_rules! simd_map {
    ($V:ty, $xs:expr, $fill:expr, |$v:ident| $body:expr) => {{
        let xs: &mut [f32] = $xs;
        let n = xs.len();
        let p = xs.as_mut_ptr();
        let mut i = 0;
        while i + <$V as $crate::simd::F32Vec>::LANES <= n {
            // SAFETY: the vector lies inside `xs`.
            let $v = <$V as $crate::simd::F32Vec>::load(p.add(i));
            let r: $V = $body;
            r.store(p.add(i));
            i += <$V as $crate::simd::F32Vec>::LANES;
        }
        if i < n {
            // SAFETY: `n - i < LANES` values remain inside `xs`.
            let $v = <$V as $crate::simd::F32Vec>::load_tail(p.add(i), n - i, $fill);
            let r: $V = $body;
            r.store_tail(p.add(i), n - i);
        }
    }};
}

/// `a[i] = body(va, vb)` vector by vector over `a: &mut [f32]` and `b: &[f32]` (`b` at least as
/// long; tail lanes hold 0).
///
/// Expands to unsafe code: `V`'s instruction set must be available.
macro_rules! simd_zip {
    ($V:ty, $a:expr, $b:expr, |$va:ident, $vb:ident| $body:expr) => {{
        let a: &mut [f32] = $a;
        let b: &[f32] = $b;
        let n = a.len();
        assert!(b.len() >= n, "simd_zip: second operand too short");
        let (pa, pb) = (a.as_mut_ptr(), b.as_ptr());
        let mut i = 0;
        while i + <$V as $crate::simd::F32Vec>::LANES <= n {
            // SAFETY: `i + LANES <= n <= len` for both slices.
            let $va = <$V as $crate::simd::F32Vec>::load(pa.add(i));
            let $vb = <$V as $crate::simd::F32Vec>::load(pb.add(i));
            let r: $V = $body;
            r.store(pa.add(i));
            i += <$V as $crate::simd::F32Vec>::LANES;
        }
        if i < n {
            // SAFETY: `n - i < LANES` values remain inside both slices.
            let $va = <$V as $crate::simd::F32Vec>::load_tail(pa.add(i), n - i, 0.0);
            let $vb = <$V as $crate::simd::F32Vec>::load_tail(pb.add(i), n - i, 0.0);
            let r: $V = $body;
            r.store_tail(pa.add(i), n - i);
        }
    }};
}

/// Reduces `xs: &[f32]` to one vector: `acc = combine(acc, map(v))` from `init` in every lane,
/// two accumulators wide; tail lanes hold `fill`, which `map` must send to a neutral element of
/// `combine`. Reduce the result's lanes with the same operation.
///
/// Expands to unsafe code: `V`'s instruction set must be available.
macro_rules! simd_fold {
    ($V:ty, $xs:expr, $init:expr, $fill:expr, |$v:ident| $map:expr, |$a:ident, $b:ident| $combine:expr) => {{
        let xs: &[f32] = $xs;
        let n = xs.len();
        let p = xs.as_ptr();
        let l: usize = <$V as $crate::simd::F32Vec>::LANES;
        let mut acc0: $V = <$V as $crate::simd::F32Vec>::splat($init);
        let mut acc1: $V = acc0;
        let mut i = 0;
        while i + 2 * l <= n {
            // SAFETY: both vectors lie inside `xs`.
            let $v = <$V as $crate::simd::F32Vec>::load(p.add(i));
            let m0: $V = $map;
            let $v = <$V as $crate::simd::F32Vec>::load(p.add(i + l));
            let m1: $V = $map;
            acc0 = {
                let ($a, $b) = (acc0, m0);
                $combine
            };
            acc1 = {
                let ($a, $b) = (acc1, m1);
                $combine
            };
            i += 2 * l;
        }
        while i < n {
            let r = (n - i).min(l);
            // SAFETY: `r` values remain inside `xs`.
            let $v = if r == l {
                <$V as $crate::simd::F32Vec>::load(p.add(i))
            } else {
                <$V as $crate::simd::F32Vec>::load_tail(p.add(i), r, $fill)
            };
            let m0: $V = $map;
            acc0 = {
                let ($a, $b) = (acc0, m0);
                $combine
            };
            i += r;
        }
        let ($a, $b) = (acc0, acc1);
        $combine
    }};
}

pub(crate) use {simd_fold, simd_map, simd_zip};
