//! Shared by the benches: which implementations to run, and bench timing settings.

#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;
use t0_kernels::{available, select, Kernels};

/// The implementations to bench: `T0_BENCH_IMPLS=avx512,avx2` (comma list, `all` for every
/// available one); default: the one [`select`] picks.
pub fn impls() -> Vec<&'static dyn Kernels> {
    match std::env::var("T0_BENCH_IMPLS") {
        Ok(list) if list == "all" => available(),
        Ok(list) => {
            let want: Vec<&str> = list.split(',').collect();
            available().into_iter().filter(|k| want.contains(&k.name())).collect()
        }
        Err(_) => vec![select()],
    }
}

/// Short runs: ten samples, two seconds each op (these benches cover many shapes).
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// A deterministic pseudo-random vector in `[-1, 1)`.
pub fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Bytes of weight copies a bench rotates through so that its weights come from DRAM: four
/// times the last-level cache that Linux reports (`/sys/devices/system/cpu/cpu0/cache/index*`),
/// at least 256 MiB. (A fixed 256 MiB fitted inside the 260 MiB L3 of an Emerald Rapids VM.)
pub fn rotate_bytes() -> usize {
    let llc = (0..8)
        .filter_map(|i| std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu0/cache/index{i}/size")).ok())
        .filter_map(|s| {
            let s = s.trim();
            let (num, mul) = match s.strip_suffix('K') {
                Some(n) => (n, 1usize << 10),
                None => s.strip_suffix('M').map_or((s, 1), |n| (n, 1 << 20)),
            };
            num.parse::<usize>().ok().map(|n| n * mul)
        })
        .max()
        .unwrap_or(0);
    (4 * llc).max(256 << 20)
}
