//! A criterion benchmark of one kernel: RMS norm at T0_3B's width (d_model 2048), the built-in
//! kernels chosen for this CPU against the scalar reference, for one row (a decode step) and 64
//! rows (an encoder pass).
//!
//! ```sh
//! cargo run --release --example bench_kernel              # about 10 s
//! cargo run --release --example bench_kernel -- --quick   # a rough figure, for CI
//! ```
//!
//! The kernel crate's own benches (`cargo bench -p t0-kernels`) cover matmul and the other ops.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use t0_kernels::{Kernels, ScalarKernels};

fn bench_rms_norm(c: &mut Criterion) {
    let d = 2048;
    let weight: Vec<f32> = (0..d).map(|i| 1.0 + (i % 7) as f32 * 0.01).collect();
    let mut group = c.benchmark_group("rms_norm");
    for rows in [1usize, 64] {
        let x: Vec<f32> = (0..rows * d).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let mut out = vec![0.0f32; rows * d];
        group.throughput(Throughput::Bytes((rows * d * 4 * 2) as u64));
        let kernels: [&dyn Kernels; 2] = [t0_kernels::select(), &ScalarKernels];
        for k in kernels {
            group.bench_with_input(BenchmarkId::new(k.name(), rows), &rows, |b, _| {
                b.iter(|| k.rms_norm(black_box(&x), black_box(&weight), 1e-6, &mut out))
            });
        }
    }
    group.finish();
}

fn main() {
    run(std::env::args().any(|a| a == "--quick"));
}

/// Run the benchmark; `quick`: few, short samples.
pub fn run(quick: bool) {
    let mut c = Criterion::default().without_plots();
    c = if quick {
        c.sample_size(10).warm_up_time(Duration::from_millis(50)).measurement_time(Duration::from_millis(200))
    } else {
        c.sample_size(50).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2))
    };
    bench_rms_norm(&mut c);
    c.final_summary();
}
