//! What other AVX2 int8 multiply-add sequences would give, shaped like the GEMM's int8 tile.
//!
//! ```sh
//! cargo run --release --example int8_avx2_variants     # x86_64 with AVX2; a few seconds
//! ```
//!
//! Without VNNI, `t0-kernels`' int8 tile multiplies a pair of activation rows by 32 output
//! columns per k-quad with `vpsignb` + `vpmaddubsw` + `vpmaddwd` + `vpaddd` (products exact,
//! see `matmul/avx2.rs`). This measures, on one 8-row × 32-column block of 64 quads held in L1
//! (the tile's inner loop, no DRAM), in integer ops per second (2 per multiply-add):
//!
//! - `exact`: that sequence, as the tile runs it;
//! - `unsigned`: the same tile without the sign step, i.e. `vpmaddubsw` on unsigned
//!   activations. That is only exact with 7-bit activations (or saturates, as 8-bit ones do);
//! - `i16-registers`: 16-bit activations and the weights widened in registers
//!   (`vpmovsxbw` + `vpmaddwd`), two rows × 16 columns;
//! - `i16-prewidened`: the block widened to i16 once, then `vpmaddwd` from memory, two rows
//!   × 16 columns, amortised over 64 rows.
//!
//! Each variant runs on one thread and on two at once; best of three rounds.

#[cfg(target_arch = "x86_64")]
mod variants {
    use std::arch::x86_64::*;
    use std::hint::black_box;
    use std::time::Instant;

    /// k-quads per block (the tile's depth block).
    const KB: usize = 64;
    /// Activation rows per tile.
    const ROWS: usize = 8;
    /// Multiply-adds of one block pass over the tile's rows.
    const MACS: usize = KB * 4 * 32 * ROWS;

    type Acc = [__m256i; 32];
    /// A variant: its name, multiply-adds per call, and the call (returns a checksum).
    type Variant = (&'static str, usize, fn() -> i32);

    /// `exact`: pairs of rows × 32 columns per quad; `a` is `[KB][ROWS][4]` i8, `b` `[KB][128]` i8.
    #[target_feature(enable = "avx2")]
    unsafe fn exact(a: *const i8, b: *const i8, out: &mut Acc) {
        let ones = _mm256_set1_epi16(1);
        for pair in 0..ROWS / 2 {
            let mut acc = [[_mm256_setzero_si256(); 4]; 2];
            for q in 0..KB {
                let pa = a.add(q * ROWS * 4 + pair * 8);
                let xs = [0, 1].map(|i| {
                    let xq = _mm256_set1_epi32(pa.add(4 * i).cast::<i32>().read_unaligned());
                    (xq, _mm256_abs_epi8(xq))
                });
                let pb = b.add(q * 128);
                for g in 0..4 {
                    let bg = _mm256_loadu_si256(pb.add(32 * g).cast());
                    for (acc_i, &(xq, ax)) in acc.iter_mut().zip(&xs) {
                        let p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(bg, xq));
                        acc_i[g] = _mm256_add_epi32(acc_i[g], _mm256_madd_epi16(p, ones));
                    }
                }
            }
            fold(out, pair * 2, &acc);
        }
    }

    /// `unsigned`: as [`exact`] without `vpsignb`/`vpabsb` (`a` read as u8).
    #[target_feature(enable = "avx2")]
    unsafe fn unsigned(a: *const i8, b: *const i8, out: &mut Acc) {
        let ones = _mm256_set1_epi16(1);
        for pair in 0..ROWS / 2 {
            let mut acc = [[_mm256_setzero_si256(); 4]; 2];
            for q in 0..KB {
                let pa = a.add(q * ROWS * 4 + pair * 8);
                let xs = [0, 1].map(|i| _mm256_set1_epi32(pa.add(4 * i).cast::<i32>().read_unaligned()));
                let pb = b.add(q * 128);
                for g in 0..4 {
                    let bg = _mm256_loadu_si256(pb.add(32 * g).cast());
                    for (acc_i, &xq) in acc.iter_mut().zip(&xs) {
                        let p = _mm256_maddubs_epi16(xq, bg);
                        acc_i[g] = _mm256_add_epi32(acc_i[g], _mm256_madd_epi16(p, ones));
                    }
                }
            }
            fold(out, pair * 2, &acc);
        }
    }

    /// `i16-registers`: `a` is `[KB][ROWS][4]` i16; each half of the block's columns in turn.
    #[target_feature(enable = "avx2")]
    unsafe fn i16_registers(a: *const i16, b: *const i8, out: &mut Acc) {
        for half in 0..2 {
            for pair in 0..ROWS / 2 {
                let mut acc = [[_mm256_setzero_si256(); 4]; 2];
                for q in 0..KB {
                    let pa = a.add(q * ROWS * 4 + pair * 8);
                    let x = [0, 1].map(|i| _mm256_set1_epi64x(pa.add(4 * i).cast::<i64>().read_unaligned()));
                    let pb = b.add(q * 128 + half * 64);
                    for g in 0..4 {
                        let w = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(16 * g).cast()));
                        for (acc_i, xi) in acc.iter_mut().zip(&x) {
                            acc_i[g] = _mm256_add_epi32(acc_i[g], _mm256_madd_epi16(*xi, w));
                        }
                    }
                }
                fold(out, pair * 2, &acc);
            }
        }
    }

    /// `i16-prewidened`: the block widened once into `w16` (`[KB][128]` i16), then `passes`
    /// row pairs (cycling over the tile's rows) per half.
    #[target_feature(enable = "avx2")]
    unsafe fn i16_prewidened(a: *const i16, b: *const i8, w16: &mut [i16], out: &mut Acc, passes: usize) {
        for v in 0..KB * 128 / 16 {
            let w = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(16 * v).cast()));
            _mm256_storeu_si256(w16.as_mut_ptr().add(16 * v).cast(), w);
        }
        for half in 0..2 {
            for pass in 0..passes {
                let pair = pass % (ROWS / 2);
                let mut acc = [[_mm256_setzero_si256(); 4]; 2];
                for q in 0..KB {
                    let pa = a.add(q * ROWS * 4 + pair * 8);
                    let x = [0, 1].map(|i| _mm256_set1_epi64x(pa.add(4 * i).cast::<i64>().read_unaligned()));
                    let pb = w16.as_ptr().add(q * 128 + half * 64);
                    for g in 0..4 {
                        let w = _mm256_loadu_si256(pb.add(16 * g).cast());
                        for (acc_i, xi) in acc.iter_mut().zip(&x) {
                            acc_i[g] = _mm256_add_epi32(acc_i[g], _mm256_madd_epi16(*xi, w));
                        }
                    }
                }
                fold(out, pair * 2, &acc);
            }
        }
    }

    #[inline(always)]
    unsafe fn fold(out: &mut Acc, row: usize, acc: &[[__m256i; 4]; 2]) {
        for (i, acc_i) in acc.iter().enumerate() {
            for (g, v) in acc_i.iter().enumerate() {
                let o = &mut out[(row + i) * 4 + g];
                *o = _mm256_add_epi32(*o, *v);
            }
        }
    }

    fn checksum(out: &Acc) -> i32 {
        // SAFETY: AVX2 was detected before any variant runs.
        out.iter().fold(0, |s, v| s ^ unsafe { _mm256_extract_epi32::<0>(*v) })
    }

    /// Best of three rounds of `reps` calls on each of `threads` threads, in GOP/s.
    fn rate(threads: usize, macs_per_call: usize, call: fn() -> i32) -> f64 {
        let reps = 20_000;
        let mut best = 0.0f64;
        for _ in 0..3 {
            let t = Instant::now();
            let handles: Vec<_> =
                (0..threads).map(|_| std::thread::spawn(move || (0..reps).fold(0, |s, _| s ^ call()))).collect();
            let sink = handles.into_iter().fold(0, |s, h| s ^ h.join().unwrap_or(0));
            black_box(sink);
            let ops = 2.0 * macs_per_call as f64 * reps as f64 * threads as f64;
            best = best.max(ops / t.elapsed().as_secs_f64() / 1e9);
        }
        best
    }

    static A8: [i8; KB * ROWS * 4] = [3; KB * ROWS * 4];
    static A16: [i16; KB * ROWS * 4] = [3; KB * ROWS * 4];
    static B8: [i8; KB * 128] = [5; KB * 128];

    pub fn run() {
        if !is_x86_feature_detected!("avx2") {
            eprintln!("this CPU has no AVX2");
            return;
        }
        // SAFETY (all four): AVX2 was detected; the pointers cover the static blocks the
        // variants index. `black_box` keeps the compiler from folding the constant inputs.
        let variants: [Variant; 4] = [
            ("exact (the tile today)", MACS, || unsafe {
                let mut o = [_mm256_setzero_si256(); 32];
                exact(black_box(A8.as_ptr()), black_box(B8.as_ptr()), &mut o);
                checksum(&o)
            }),
            ("unsigned (7-bit or saturating)", MACS, || unsafe {
                let mut o = [_mm256_setzero_si256(); 32];
                unsigned(black_box(A8.as_ptr()), black_box(B8.as_ptr()), &mut o);
                checksum(&o)
            }),
            ("i16-registers", MACS, || unsafe {
                let mut o = [_mm256_setzero_si256(); 32];
                i16_registers(black_box(A16.as_ptr()), black_box(B8.as_ptr()), &mut o);
                checksum(&o)
            }),
            ("i16-prewidened (64 rows)", MACS * 8, || unsafe {
                let mut o = [_mm256_setzero_si256(); 32];
                let mut w16 = vec![0i16; KB * 128];
                i16_prewidened(black_box(A16.as_ptr()), black_box(B8.as_ptr()), &mut w16, &mut o, 32);
                checksum(&o)
            }),
        ];
        println!("{:32} {:>12} {:>12}", "variant", "1 thread", "2 threads");
        for (name, macs, call) in variants {
            let (one, two) = (rate(1, macs, call), rate(2, macs, call));
            println!("{name:32} {one:>8.0} GOP/s {two:>6.0} GOP/s");
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    variants::run();
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("x86_64 only");
}
