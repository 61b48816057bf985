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

/// Applies `f` to every element of `xs` in place, vector by vector; the tail lanes are loaded
/// with `fill` (a value `f` is well-defined on) and discarded.
///
/// # Safety
/// `V`'s instruction set must be available (see [`F32Vec`]).
#[inline(always)]
pub(crate) unsafe fn map_in_place<V: F32Vec>(xs: &mut [f32], fill: f32, f: impl Fn(V) -> V) {
    let n = xs.len();
    let p = xs.as_mut_ptr();
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: `i + LANES <= n`, so the vector lies inside `xs`.
        f(V::load(p.add(i))).store(p.add(i));
        i += V::LANES;
    }
    if i < n {
        // SAFETY: `n - i < LANES` values remain inside `xs`.
        f(V::load_tail(p.add(i), n - i, fill)).store_tail(p.add(i), n - i);
    }
}

/// `out[i] = f(a[i], b[i])` over `out.len()` elements (`a` and `b` at least that long).
///
/// # Safety
/// `V`'s instruction set must be available (see [`F32Vec`]).
#[inline(always)]
pub(crate) unsafe fn zip_in_place<V: F32Vec>(a: &mut [f32], b: &[f32], f: impl Fn(V, V) -> V) {
    let n = a.len();
    assert!(b.len() >= n, "zip_in_place: second operand too short");
    let (pa, pb) = (a.as_mut_ptr(), b.as_ptr());
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: `i + LANES <= n <= len` for both slices.
        f(V::load(pa.add(i)), V::load(pb.add(i))).store(pa.add(i));
        i += V::LANES;
    }
    if i < n {
        // SAFETY: `n - i < LANES` values remain inside both slices.
        let r = n - i;
        f(V::load_tail(pa.add(i), r, 0.0), V::load_tail(pb.add(i), r, 0.0)).store_tail(pa.add(i), r);
    }
}

/// Reduces `xs` vector by vector: `acc = combine(acc, map(x))`, starting from `init` in every
/// lane; tail lanes hold `fill`, which `map` must send to a neutral element of `combine`.
/// Returns the vector accumulator (reduce its lanes with the same operation).
///
/// # Safety
/// `V`'s instruction set must be available (see [`F32Vec`]).
#[inline(always)]
pub(crate) unsafe fn fold<V: F32Vec>(
    xs: &[f32],
    init: f32,
    fill: f32,
    map: impl Fn(V) -> V,
    combine: impl Fn(V, V) -> V,
) -> V {
    let n = xs.len();
    let p = xs.as_ptr();
    // Two accumulators so the loop is not bound by the latency of `combine`.
    let (mut a0, mut a1) = (V::splat(init), V::splat(init));
    let mut i = 0;
    while i + 2 * V::LANES <= n {
        // SAFETY: both vectors lie inside `xs`.
        a0 = combine(a0, map(V::load(p.add(i))));
        a1 = combine(a1, map(V::load(p.add(i + V::LANES))));
        i += 2 * V::LANES;
    }
    if i + V::LANES <= n {
        // SAFETY: the vector lies inside `xs`.
        a0 = combine(a0, map(V::load(p.add(i))));
        i += V::LANES;
    }
    if i < n {
        // SAFETY: `n - i < LANES` values remain inside `xs`.
        a1 = combine(a1, map(V::load_tail(p.add(i), n - i, fill)));
    }
    combine(a0, a1)
}
