//! The decode paths (`m ≤ 8` rows on packed weights) read each panel as one or two streams
//! ([`t0_kernels::decode_streams`]). This binary holds one test, so switching the process-wide
//! setting cannot race with other tests.
//!
//! For every implementation this CPU can run, over awkward depths:
//! - a row's output does not depend on the other rows of its batch (bit for bit), with one and
//!   with two streams, for the `m` each dtype decodes on one full-depth pass (f32 up to the f32
//!   tile height, bf16 and int8 up to 8);
//! - int8 gives the same bits with one and two streams (integer sums);
//! - f32 and bf16 with one and two streams differ only by summation order.

use t0_kernels::{available, set_decode_streams, Kernels, PackDType, PackedWeight};

/// Deterministic values in `[-r, r]`.
fn values(len: usize, seed: u64, r: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * r
        })
        .collect()
}

fn run(kern: &dyn Kernels, x: &[f32], m: usize, w: &PackedWeight) -> Vec<f32> {
    let mut out = vec![f32::NAN; m * w.rows()];
    kern.matmul(x, m, &w.view(), &mut out);
    out
}

/// Rows of `m` for which this implementation decodes `dtype` in one full-depth pass.
fn decode_rows(kern: &dyn Kernels, dtype: PackDType) -> usize {
    match (dtype, kern.name()) {
        (PackDType::F32, "avx2") | (PackDType::F32, "neon") => 6,
        _ => 8,
    }
}

#[test]
fn decode_streams_keep_rows_independent_and_agree() {
    let n = 70; // two full panels and a partial one
    for k in [1usize, 2, 7, 33, 256, 1023] {
        for dtype in [PackDType::F32, PackDType::Bf16, PackDType::Int8] {
            let w = PackedWeight::from_f32(&values(n * k, k as u64, 1.0), n, k, dtype);
            let x = values(8 * k, 7 + k as u64, 2.0);
            let wf: Vec<Vec<f32>> = (0..n)
                .map(|j| {
                    let mut row = vec![0.0; k];
                    w.row_to_f32(j, &mut row);
                    row
                })
                .collect();
            for kern in available() {
                let mut by_streams = Vec::new();
                for streams in [1, 2] {
                    set_decode_streams(streams);
                    let alone: Vec<Vec<f32>> = (0..8).map(|i| run(kern, &x[i * k..(i + 1) * k], 1, &w)).collect();
                    for m in 2..=decode_rows(kern, dtype) {
                        let batch = run(kern, &x[..m * k], m, &w);
                        for (i, row) in alone.iter().take(m).enumerate() {
                            let got = &batch[i * n..(i + 1) * n];
                            assert!(
                                got.iter().zip(row).all(|(a, b)| a.to_bits() == b.to_bits()),
                                "{} {dtype:?} k={k} m={m} streams={streams}: row {i} differs from the row alone",
                                kern.name()
                            );
                        }
                    }
                    by_streams.push(alone);
                }
                for (i, (one, two)) in by_streams[0].iter().zip(&by_streams[1]).enumerate() {
                    for (j, (a, b)) in one.iter().zip(two).enumerate() {
                        let ok = if dtype == PackDType::Int8 {
                            a.to_bits() == b.to_bits()
                        } else {
                            let bound: f32 = (0..k).map(|t| (x[i * k + t] * wf[j][t]).abs()).sum();
                            (a - b).abs() <= 4.0 * f32::EPSILON * (k as f32).sqrt() * bound + 1e-30
                        };
                        assert!(ok, "{} {dtype:?} k={k}: row {i} col {j}: one stream {a}, two {b}", kern.name());
                    }
                }
            }
        }
    }
    set_decode_streams(2);
}
