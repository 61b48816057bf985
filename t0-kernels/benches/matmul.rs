//! Matmul at T0_3B's real shapes (d_model 2048, d_ff 5120, vocab 32128) for M = 1, 8, 64, 512
//! rows of activations, per weight storage: the raw f32 `[out, in]` view (as memory-mapped),
//! and packed f32 / bf16 / int8.
//!
//! - M = 1, 8 (decode): throughput in **bytes of weights** (GB/s). Each iteration uses the
//!   next of several weight copies totalling four times the last-level cache (at least 256 MiB;
//!   `common::rotate_bytes`), so weights come from DRAM, as in a real
//!   decode step. Each group also has `stream_read`: a plain read of the same number of bytes
//!   (also rotating through DRAM), the bandwidth ceiling to compare with.
//! - M = 64, 512: throughput in **flops** (criterion's "elem/s" = FLOP/s).
//!
//! `T0_BENCH_IMPLS=all` benches every implementation; the default is the selected one.
//! Bench ids: `matmul/<shape>/<storage>/<impl>/m<M>`.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use t0_kernels::{roofline, PackDType, PackedWeight, WeightView};

/// `(name, out, in)` of T0_3B's linear layers.
const SHAPES: [(&str, usize, usize); 4] = [
    ("qkvo_2048x2048", 2048, 2048),
    ("wi_5120x2048", 5120, 2048),
    ("wo_2048x5120", 2048, 5120),
    ("lm_head_32128x2048", 32128, 2048),
];
const MS: [usize; 4] = [1, 8, 64, 512];

/// One weight in every storage we bench, `copies` times.
enum Weights {
    Raw(Vec<Vec<f32>>, usize, usize),
    Packed(Vec<PackedWeight>),
}

impl Weights {
    fn view(&self, i: usize) -> WeightView<'_> {
        match self {
            Weights::Raw(v, n, k) => WeightView::f32(&v[i % v.len()], *n, *k),
            Weights::Packed(p) => p[i % p.len()].view(),
        }
    }
    fn bytes(&self) -> usize {
        self.view(0).bytes()
    }
}

fn matmul(c: &mut Criterion) {
    let impls = common::impls();
    let rotate = common::rotate_bytes();
    let read_buf = common::rand_vec(2 * rotate / 4, 7);
    for (name, n, k) in SHAPES {
        let w = common::rand_vec(n * k, 1);
        for storage in ["raw_f32", "f32", "bf16", "int8"] {
            let one = match storage {
                "raw_f32" => Weights::Raw(vec![w.clone()], n, k),
                "f32" => Weights::Packed(vec![PackedWeight::from_f32(&w, n, k, PackDType::F32)]),
                "bf16" => Weights::Packed(vec![PackedWeight::from_f32(&w, n, k, PackDType::Bf16)]),
                _ => Weights::Packed(vec![PackedWeight::from_f32(&w, n, k, PackDType::Int8)]),
            };
            let copies = rotate.div_ceil(one.bytes()).max(1);
            let weights = match one {
                Weights::Raw(v, n, k) => Weights::Raw(vec![v[0].clone(); copies], n, k),
                Weights::Packed(p) => Weights::Packed(vec![p[0].clone(); copies]),
            };
            let bytes = weights.bytes();
            let mut group = c.benchmark_group(format!("matmul/{name}/{storage}"));
            for kern in &impls {
                for m in MS {
                    if kern.name() == "scalar" && m > 8 {
                        continue;
                    }
                    let x = common::rand_vec(m * k, 2);
                    let mut out = vec![0.0f32; m * n];
                    if m <= 8 {
                        group.throughput(Throughput::Bytes(bytes as u64));
                        group.sampling_mode(SamplingMode::Auto);
                    } else {
                        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
                        group.sampling_mode(SamplingMode::Flat);
                    }
                    let mut i = 0;
                    group.bench_function(BenchmarkId::new(kern.name(), format!("m{m}")), |b| {
                        b.iter(|| {
                            kern.matmul(&x, m, &weights.view(i), &mut out);
                            i += 1;
                        })
                    });
                }
            }
            // The bandwidth ceiling for the decode rows: reading the same bytes from DRAM.
            let len = (bytes / 4).div_ceil(64) * 64;
            let chunks = read_buf.len() / len;
            group.throughput(Throughput::Bytes(bytes as u64));
            group.sampling_mode(SamplingMode::Auto);
            let mut i = 0;
            group.bench_function("stream_read", |b| {
                b.iter(|| {
                    let s = roofline::read_pass(&read_buf[(i % chunks) * len..][..len], 4);
                    i += 1;
                    s
                })
            });
            group.finish();
            drop(weights);
        }
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = matmul
}
criterion_main!(benches);
