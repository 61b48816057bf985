//! A/B of the decode matmul reading each weight panel as one or two streams
//! ([`t0_kernels::decode_streams`]), alternating in one process so that both settings see the
//! same machine state (shared-host bandwidth drifts by ±10% between runs).
//!
//! ```sh
//! cargo run --release --example decode_streams            # f32, bf16 and int8; about a minute
//! cargo run --release --example decode_streams -- int8 8  # one dtype, M = 8 rows
//! ```
//!
//! T0_3B's FFN up-projection (5120 × 2048), packed, M = 1 by default; copies rotating through
//! 768 MiB so that every call reads its weights from DRAM. Prints the median (and range) of 9
//! rounds per setting, in GB/s of weights, beside a plain read of DRAM in the same process.

use std::time::Instant;

use t0_kernels::{roofline, select, set_decode_streams, PackDType, PackedWeight};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dtypes = match args.first().map(String::as_str) {
        Some("f32") => vec![PackDType::F32],
        Some("bf16") => vec![PackDType::Bf16],
        Some("int8") => vec![PackDType::Int8],
        Some(other) => {
            eprintln!("unknown dtype {other:?} (f32, bf16 or int8)");
            std::process::exit(2);
        }
        None => vec![PackDType::F32, PackDType::Bf16, PackDType::Int8],
    };
    let m: usize = match args.get(1).map(|s| s.parse()) {
        None => 1,
        Some(Ok(m)) if (1..=8).contains(&m) => m,
        Some(_) => {
            eprintln!("M must be 1..=8 (the decode paths)");
            std::process::exit(2);
        }
    };
    let (n, k) = (5120, 2048);
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 2003) as f32 / 1001.0 - 1.0).collect();
    let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut out = vec![0.0f32; m * n];
    let kernels = select();
    let read_buf = vec![1.0f32; (1usize << 30) / 4];
    println!("kernels {}, M = {m}, weight {n} x {k}", kernels.name());
    println!("plain DRAM read, one stream per thread: {:.1} GB/s", roofline::read_bandwidth_gbs(&read_buf, 3));
    drop(read_buf);
    for dtype in dtypes {
        let one = PackedWeight::from_f32(&w, n, k, dtype);
        let copies = (768usize << 20).div_ceil(one.bytes());
        let ws: Vec<PackedWeight> = (0..copies).map(|_| one.clone()).collect();
        let mut gbs = [Vec::new(), Vec::new()];
        let mut i = 0;
        for round in 0..10 {
            for (slot, streams) in [1, 2].into_iter().enumerate() {
                set_decode_streams(streams);
                let calls = 3 * copies;
                let t = Instant::now();
                for _ in 0..calls {
                    kernels.matmul(&x, m, &ws[i % copies].view(), &mut out);
                    i += 1;
                }
                // Round 0 warms up.
                if round > 0 {
                    gbs[slot].push((calls * one.bytes()) as f64 / t.elapsed().as_secs_f64() / 1e9);
                }
            }
        }
        let mut medians = [0.0; 2];
        for (slot, r) in gbs.iter_mut().enumerate() {
            r.sort_by(f64::total_cmp);
            medians[slot] = r[r.len() / 2];
            println!(
                "{dtype:?}: {} stream{}: median {:.1} GB/s (range {:.1}-{:.1})",
                slot + 1,
                if slot == 0 { "" } else { "s" },
                medians[slot],
                r[0],
                r[r.len() - 1]
            );
        }
        println!("{dtype:?}: two streams / one = {:.2}", medians[1] / medians[0]);
    }
    set_decode_streams(2);
}
