//! Measuring this machine's ceilings, for the roofline figures in `docs/kernels.md`:
//! the f32 FMA peak, the int8 multiply-add peak, the bf16 dot-product peak and the DRAM read
//! bandwidth, all using every rayon thread.
//!
//! - FMA peak: each thread runs 16 independent chains of vector FMAs (enough to cover the FMA
//!   latency on every core we target) on register operands; flops = 2 · lanes · FMAs.
//! - int8 peak: the int8 tiles' own instruction sequence on registers (`vpdpbusd`, or without
//!   VNNI the exact `vpsignb` / `vpmaddubsw` / `vpmaddwd` / `vpaddd` step); ops = 2 · MACs.
//! - bf16 peak: 16 independent chains of `vdpbf16ps` on registers (AVX-512 BF16); flops =
//!   2 · 32 multiply-adds per instruction.
//! - Read bandwidth: each thread sums its share of a buffer much larger than the last-level
//!   cache with vector loads (4 accumulators); bytes = buffer size. No writes, like a GEMV.

use std::time::Instant;

use rayon::prelude::*;

/// FMAs per chain per call of the inner kernel.
const FMA_ITERS: usize = 1 << 20;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 16 chains × `iters` FMAs on zmm registers; returns a value so nothing is optimised away.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_avx512(iters: usize) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); 16];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// As [`fma_avx512`] with ymm registers (12 chains: 16 registers in all).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_avx2(iters: usize) -> f32 {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm256_setzero_ps();
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        let mut t = [0.0f32; 8];
        _mm256_storeu_ps(t.as_mut_ptr(), s);
        t.iter().sum()
    }

    /// The int8 tiles' inner step without VNNI, on registers: per 32 multiply-adds a
    /// `vpsignb`, `vpmaddubsw`, `vpmaddwd` and `vpaddd` (what keeps the products exact, see
    /// `matmul/avx2.rs`), 8 independent accumulators × 4 weight vectors × 2 activation vectors.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn int8_avx2(iters: usize) -> i32 {
        let ones = _mm256_set1_epi16(1);
        let w = [_mm256_set1_epi8(1), _mm256_set1_epi8(3), _mm256_set1_epi8(5), _mm256_set1_epi8(7)];
        let mut x = [_mm256_set1_epi8(2), _mm256_set1_epi8(-4)];
        let mut acc = [_mm256_setzero_si256(); 8];
        for _ in 0..iters {
            for (j, a) in acc.iter_mut().enumerate() {
                let (wj, xj) = (w[j & 3], x[j >> 2]);
                let p = _mm256_maddubs_epi16(_mm256_abs_epi8(xj), _mm256_sign_epi8(wj, xj));
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(p, ones));
            }
            // New activations each step, so nothing is hoisted out of the loop.
            x = [_mm256_add_epi8(x[0], ones), _mm256_sub_epi8(x[1], ones)];
        }
        let s = acc.iter().fold(_mm256_setzero_si256(), |s, a| _mm256_add_epi32(s, *a));
        _mm256_extract_epi32::<0>(s)
    }

    /// The VNNI int8 step: 16 independent `vpdpbusd` chains on zmm registers.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn int8_vnni(iters: usize) -> i32 {
        let b = _mm512_set1_epi8(3);
        let a = _mm512_set1_epi8(1);
        let mut acc = [_mm512_setzero_si512(); 16];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        let s = acc.iter().fold(_mm512_setzero_si512(), |s, a| _mm512_add_epi32(s, *a));
        _mm512_reduce_add_epi32(s)
    }

    /// The bf16 tiles' step: 16 independent `vdpbf16ps` chains on zmm registers (32 multiply-adds
    /// each).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn bf16_dot(iters: usize) -> f32 {
        let a: __m512bh = std::mem::transmute(_mm512_set1_epi16(0x3f80)); // 1.0
        let b: __m512bh = std::mem::transmute(_mm512_set1_epi16(0x3380)); // 2^-24
        let mut acc = [_mm512_setzero_ps(); 16];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, b);
            }
        }
        let s = acc.iter().fold(_mm512_setzero_ps(), |s, a| _mm512_add_ps(s, *a));
        _mm512_reduce_add_ps(s)
    }

    /// Sum of `xs` with 4 zmm accumulators (length a multiple of 64).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum_avx512(xs: &[f32]) -> f32 {
        let p = xs.as_ptr();
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= xs.len() {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_ps(*a, _mm512_loadu_ps(p.add(i + 16 * j)));
            }
            i += 64;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
    }
}

/// One block of FMAs on every rayon thread (widest vectors available); returns the flops done
/// and a value to keep the work alive.
pub fn fma_pass() -> (f64, f32) {
    let threads = rayon::current_num_threads();
    let run = |_: usize| -> (f64, f32) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::has_avx512() {
                // SAFETY: AVX-512F was detected.
                return (2.0 * 16.0 * 16.0 * FMA_ITERS as f64, unsafe { x86::fma_avx512(FMA_ITERS) });
            }
            if crate::cpu::has_avx2() {
                // SAFETY: AVX2 and FMA were detected.
                return (2.0 * 8.0 * 12.0 * FMA_ITERS as f64, unsafe { x86::fma_avx2(FMA_ITERS) });
            }
        }
        // Portable fallback: 8 independent scalar chains (the compiler may vectorise them).
        let mut acc = [1.0f32; 8];
        for _ in 0..FMA_ITERS {
            for v in acc.iter_mut() {
                *v = v.mul_add(0.999_999, 1e-7);
            }
        }
        (2.0 * 8.0 * FMA_ITERS as f64, acc.iter().sum())
    };
    (0..threads).into_par_iter().map(run).reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Iterations of the int8 (and bf16) inner kernel per thread per call.
#[cfg(target_arch = "x86_64")]
const INT8_ITERS: usize = 1 << 19;

/// One block of the int8 tiles' multiply-add instructions on every rayon thread (VNNI
/// `vpdpbusd` when present, else the AVX2 sequence the tiles use); returns the integer ops done
/// (2 per multiply-add) and a value to keep the work alive. `(0.0, _)` where neither exists.
pub fn int8_pass() -> (f64, i64) {
    let threads = rayon::current_num_threads();
    let run = |_: usize| -> (f64, i64) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::has_avx512_vnni() {
                // SAFETY: AVX-512F and VNNI were detected.
                return (2.0 * 64.0 * 16.0 * INT8_ITERS as f64, unsafe { x86::int8_vnni(INT8_ITERS) } as i64);
            }
            if crate::cpu::has_avx2() {
                // SAFETY: AVX2 was detected.
                return (2.0 * 32.0 * 8.0 * INT8_ITERS as f64, unsafe { x86::int8_avx2(INT8_ITERS) } as i64);
            }
        }
        (0.0, 0)
    };
    (0..threads).into_par_iter().map(run).reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1.wrapping_add(b.1)))
}

/// One block of the bf16 tiles' `vdpbf16ps` on every rayon thread (AVX-512 BF16); returns the
/// flops done (2 per multiply-add) and a value to keep the work alive. `(0.0, _)` without it.
pub fn bf16_pass() -> (f64, f32) {
    let threads = rayon::current_num_threads();
    let run = |_: usize| -> (f64, f32) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::has_avx512() && crate::cpu::has_avx512_bf16() {
                // SAFETY: AVX-512F and BF16 were detected.
                return (2.0 * 32.0 * 16.0 * INT8_ITERS as f64, unsafe { x86::bf16_dot(INT8_ITERS) });
            }
        }
        (0.0, 0.0)
    };
    (0..threads).into_par_iter().map(run).reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// The bf16 dot-product ceiling in GFLOP/s (see [`bf16_pass`]), best of `reps` runs; 0 where
/// the machine has no AVX-512 BF16.
///
/// ```
/// use t0_kernels::roofline;
///
/// let bf16 = roofline::bf16_peak_gflops(1);
/// // 0 without AVX-512 BF16; elsewhere about twice `fma_peak_gflops` (32 multiply-adds per
/// // `vdpbf16ps`).
/// println!("bf16 {bf16:.0} GFLOP/s");
/// assert!(bf16 >= 0.0);
/// ```
pub fn bf16_peak_gflops(reps: usize) -> f64 {
    best_rate(reps, || {
        let (flops, sink) = bf16_pass();
        std::hint::black_box(sink);
        flops
    })
}

/// The int8 multiply-add ceiling in GOP/s (see [`int8_pass`]), best of `reps` runs; 0 where
/// the machine has neither VNNI nor AVX2.
///
/// ```
/// use t0_kernels::roofline;
///
/// let int8 = roofline::int8_peak_gops(1);
/// let fma = roofline::fma_peak_gflops(1);
/// println!("int8 {int8:.0} GOP/s, f32 FMA {fma:.0} GFLOP/s");
/// assert!(int8 >= 0.0 && fma > 0.0);
/// ```
pub fn int8_peak_gops(reps: usize) -> f64 {
    best_rate(reps, || {
        let (ops, sink) = int8_pass();
        std::hint::black_box(sink);
        ops
    })
}

/// The highest of `reps` rates (units of `pass`'s returned work per second, ÷ 10⁹).
fn best_rate(reps: usize, pass: impl Fn() -> f64) -> f64 {
    (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            let work = pass();
            work / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// The f32 FMA peak of this machine in GFLOP/s (all rayon threads, widest vectors available),
/// best of `reps` runs.
pub fn fma_peak_gflops(reps: usize) -> f64 {
    best_rate(reps, || {
        let (flops, sink) = fma_pass();
        std::hint::black_box(sink);
        flops
    })
}

/// Sum of a slice with the widest vectors available.
fn sum(xs: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::has_avx512() && xs.len().is_multiple_of(64) {
            // SAFETY: AVX-512F was detected.
            return unsafe { x86::sum_avx512(xs) };
        }
    }
    // Eight independent partial sums vectorise without fast-math.
    let mut acc = [0.0f32; 8];
    for c in xs.chunks_exact(8) {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum()
}

/// One read pass over `buf`: every rayon thread sums a contiguous share, `streams` interleaved
/// sub-streams at a time (chunks of 16 KiB round-robin), like a GEMV reading several weight
/// rows at once. Returns the sum (to keep the reads alive).
pub fn read_pass(buf: &[f32], streams: usize) -> f32 {
    let threads = rayon::current_num_threads();
    let share = (buf.len() / threads / 64).max(1) * 64;
    buf.par_chunks(share)
        .map(|mine| {
            if streams <= 1 {
                return sum(mine);
            }
            // `streams` equal parts of `mine`, visited 16 KiB at a time in turn.
            const STEP: usize = 4096;
            let part = mine.len() / streams / STEP * STEP;
            let mut s = 0.0;
            for off in (0..part).step_by(STEP) {
                for p in 0..streams {
                    s += sum(&mine[p * part + off..p * part + off + STEP]);
                }
            }
            s + sum(&mine[streams * part..])
        })
        .sum()
}

/// DRAM read bandwidth in GB/s (10⁹ bytes per second): [`read_pass`] with one stream per
/// thread over `buf` (make it several times the last-level cache), best of `reps` passes.
pub fn read_bandwidth_gbs(buf: &[f32], reps: usize) -> f64 {
    best_rate(reps, || {
        std::hint::black_box(read_pass(buf, 1));
        (buf.len() * 4) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_pass_counts_ops_where_the_tiles_have_an_int8_path() {
        let (ops, _) = int8_pass();
        let expected = cfg!(target_arch = "x86_64") && (crate::cpu::has_avx2() || crate::cpu::has_avx512_vnni());
        assert_eq!(ops > 0.0, expected, "ops = {ops}");
        if expected {
            assert!(int8_peak_gops(1) > 0.0);
        }
    }
}
