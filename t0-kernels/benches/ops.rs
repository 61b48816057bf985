//! The non-matmul kernels at T0_3B's shapes (d_model 2048, d_ff 5120, 32 heads × 64,
//! vocab 32128), for 1 and 512 rows. Throughput: bytes read + written (GB/s) for the
//! element-wise ops; flops for attention (`4 · q_len · kv_len · heads · d_kv`).
//!
//! `T0_BENCH_IMPLS=all` benches every implementation; the default is the selected one.
//! Bench ids: `ops/<op>/<impl>/<shape>`.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use t0_kernels::activation::Activation;
use t0_kernels::{AttentionArgs, BiasView, WeightView};

const D_MODEL: usize = 2048;
const D_FF: usize = 5120;
const HEADS: usize = 32;
const D_KV: usize = 64;
const VOCAB: usize = 32128;

fn ops(c: &mut Criterion) {
    let impls = common::impls();

    let mut g = c.benchmark_group("ops/softmax");
    for len in [512usize, VOCAB] {
        let x = common::rand_vec(len, 1).iter().map(|v| v * 20.0).collect::<Vec<_>>();
        let mut row = x.clone();
        g.throughput(Throughput::Bytes((len * 8) as u64));
        for k in &impls {
            g.bench_function(BenchmarkId::new(k.name(), format!("softmax_{len}")), |b| {
                b.iter(|| {
                    row.copy_from_slice(&x);
                    k.softmax(&mut row)
                })
            });
            g.bench_function(BenchmarkId::new(k.name(), format!("log_softmax_{len}")), |b| {
                b.iter(|| {
                    row.copy_from_slice(&x);
                    k.log_softmax(&mut row)
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("ops/rms_norm");
    let w = common::rand_vec(D_MODEL, 2);
    for m in [1usize, 512] {
        let x = common::rand_vec(m * D_MODEL, 3);
        let mut out = vec![0.0; m * D_MODEL];
        g.throughput(Throughput::Bytes((m * D_MODEL * 8) as u64));
        for k in &impls {
            g.bench_function(BenchmarkId::new(k.name(), format!("m{m}x{D_MODEL}")), |b| {
                b.iter(|| k.rms_norm(&x, &w, 1e-6, &mut out))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("ops/gated_gelu_new");
    for m in [1usize, 512] {
        let gate0: Vec<f32> = common::rand_vec(m * D_FF, 4).iter().map(|v| v * 4.0).collect();
        let up = common::rand_vec(m * D_FF, 5);
        let mut gate = gate0.clone();
        g.throughput(Throughput::Bytes((m * D_FF * 12) as u64));
        for k in &impls {
            g.bench_function(BenchmarkId::new(k.name(), format!("m{m}x{D_FF}")), |b| {
                b.iter(|| {
                    gate.copy_from_slice(&gate0);
                    k.gated_activation(Activation::GeluNew, &mut gate, &up)
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("ops/add_assign");
    for m in [1usize, 512] {
        let x = common::rand_vec(m * D_MODEL, 6);
        let mut acc = vec![0.0; m * D_MODEL];
        g.throughput(Throughput::Bytes((m * D_MODEL * 12) as u64));
        for k in &impls {
            g.bench_function(BenchmarkId::new(k.name(), format!("m{m}x{D_MODEL}")), |b| {
                b.iter(|| k.add_assign(&mut acc, &x))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("ops/embedding");
    let table = common::rand_vec(VOCAB * D_MODEL, 7);
    let view = WeightView::f32(&table, VOCAB, D_MODEL);
    for m in [1usize, 512] {
        let ids: Vec<u32> = (0..m as u32).map(|i| (i * 7919) % VOCAB as u32).collect();
        let mut out = vec![0.0; m * D_MODEL];
        g.throughput(Throughput::Bytes((m * D_MODEL * 8) as u64));
        for k in &impls {
            g.bench_function(BenchmarkId::new(k.name(), format!("m{m}x{D_MODEL}")), |b| {
                b.iter(|| k.embedding(&view, &ids, &mut out))
            });
        }
    }
    g.finish();

    // Attention: decode (1 query against a per-head KV cache, as self-attention at step t, or
    // cross-attention over a 512-token input) and encoder (512 × 512, bias and mask).
    let mut g = c.benchmark_group("ops/attention");
    let inner = HEADS * D_KV;
    for (label, q_len, kv_len, cache) in [
        ("decode_kv64", 1usize, 64usize, true),
        ("decode_kv512", 1, 512, true),
        ("encoder_64x64", 64, 64, false),
        ("encoder_512x512", 512, 512, false),
    ] {
        let q = common::rand_vec(q_len * inner, 8);
        let kk = common::rand_vec(kv_len * inner, 9);
        let v = common::rand_vec(kv_len * inner, 10);
        let q_pos0 = if cache { kv_len - 1 } else { 0 };
        let stride = q_pos0 + q_len + kv_len;
        let bias = common::rand_vec(HEADS * stride, 11);
        let mask = vec![0.0f32; kv_len];
        let (kv_head_stride, kv_row_stride) = if cache { (kv_len * D_KV, D_KV) } else { (D_KV, inner) };
        let args = AttentionArgs {
            q: &q,
            k: &kk,
            v: &v,
            heads: HEADS,
            d_kv: D_KV,
            q_len,
            kv_len,
            q_row_stride: inner,
            kv_head_stride,
            kv_row_stride,
            q_pos0,
            causal: cache,
            bias: Some(BiasView { values: &bias, head_stride: stride, offset: q_pos0 + q_len - 1 }),
            mask: Some(&mask),
        };
        let mut out = vec![0.0; q_len * inner];
        g.throughput(Throughput::Elements((4 * q_len * kv_len * inner) as u64));
        for k in &impls {
            if k.name() == "scalar" && q_len > 1 {
                continue;
            }
            g.bench_function(BenchmarkId::new(k.name(), label), |b| b.iter(|| k.attention(&args, &mut out)));
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = ops
}
criterion_main!(benches);
