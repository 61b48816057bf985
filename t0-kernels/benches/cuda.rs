//! The CUDA kernels (feature `cuda`) at T0_3B's shapes, on device 0; without a device it says
//! why and benches nothing.
//!
//! - Decode GEMV (`m` = 1, 8) in f32, bf16 and f16: throughput in **bytes of weights** (GB/s),
//!   each iteration on the next of several weight copies totalling 256 MiB (several times any
//!   GPU's L2), so the weights come from device memory, as in a decode step.
//! - The bf16 tensor-core GEMM (`m` = 64, 512; the encoder and prompts): **flops**.
//! - Decode attention (batch 8, 32 heads × 64, one query against 64 / 512 cached keys): bytes of
//!   keys and values read.
//! - Row summaries of 8 rows of T0's 32128 logits (k = 1, 9, 51), summaries brought back: bytes
//!   of logits.
//!
//! Every iteration waits for the device (`synchronize`), so launch latency is in the figure. At
//! the end a table gives each bench's rate and its share of the memory's peak bandwidth (clock ×
//! bus width, as the driver reports them). `cargo bench -p t0-kernels --features cuda --bench cuda`.
//! Bench ids: `cuda/<kernel>/<shape>/m<M>`.

mod common;

use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use t0_kernels::cuda::cudarc::driver::CudaSlice;
use t0_kernels::cuda::{self, CudaAttention, CudaKernels};

/// `(name, out, in)` of T0_3B's linear layers.
const SHAPES: [(&str, usize, usize); 4] = [
    ("qkvo_2048x2048", 2048, 2048),
    ("wi_5120x2048", 5120, 2048),
    ("wo_2048x5120", 2048, 5120),
    ("lm_head_32128x2048", 32128, 2048),
];
const ROTATE_BYTES: usize = 256 << 20;

/// Weight copies on the device: f32 or 16-bit bits.
enum Copies {
    F32(Vec<CudaSlice<f32>>),
    U16(Vec<CudaSlice<u16>>),
}

/// One rate for the closing table: bytes (or flops) per second.
struct Rate {
    id: String,
    per_s: f64,
    bytes: bool,
}

/// Benchmarks `call` (which waits for the device) as `param` of `group`, and notes its rate for
/// the closing table as `id`: `units` bytes (`bytes`) or flops per call, over every iteration
/// criterion timed. A bench the command line's filter skips leaves no row (and costs nothing).
#[allow(clippy::too_many_arguments)]
fn bench_rate(
    group: &mut BenchmarkGroup<'_, WallTime>,
    param: &str,
    id: String,
    units: f64,
    bytes: bool,
    rates: &mut Vec<Rate>,
    mut call: impl FnMut(),
) {
    let (mut n, mut secs) = (0u64, 0.0f64);
    group.bench_function(BenchmarkId::from_parameter(param), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                call();
            }
            let elapsed = t.elapsed();
            n += iters;
            secs += elapsed.as_secs_f64();
            elapsed
        })
    });
    if n > 0 && secs > 0.0 {
        rates.push(Rate { id, per_s: units * n as f64 / secs, bytes });
    }
}

fn kernels(c: &mut Criterion) {
    if cuda::device_count() == 0 {
        eprintln!("cuda bench: no CUDA device (driver library found: {}): nothing to bench", cuda::driver_available());
        return;
    }
    let gpu = match CudaKernels::new(0) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cuda bench: {e}");
            return;
        }
    };
    let mut rates: Vec<Rate> = Vec::new();
    for (name, n, k) in SHAPES {
        let w = common::rand_vec(n * k, 1);
        for dtype in ["f32", "bf16", "f16"] {
            let elem = if dtype == "f32" { 4 } else { 2 };
            let bytes = n * k * elem;
            let copies = ROTATE_BYTES.div_ceil(bytes).max(2);
            let weights = match dtype {
                "f32" => Copies::F32((0..copies).map(|_| gpu.upload(&w).unwrap()).collect()),
                _ => {
                    let bits: Vec<u16> = if dtype == "bf16" {
                        w.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect()
                    } else {
                        w.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect()
                    };
                    Copies::U16((0..copies).map(|_| gpu.upload(&bits).unwrap()).collect())
                }
            };
            let mut group = c.benchmark_group(format!("cuda/gemv_{dtype}/{name}"));
            group.throughput(Throughput::Bytes(bytes as u64));
            for m in [1, 8] {
                let x = gpu.upload(&common::rand_vec(m * k, 2)).unwrap();
                let mut y = gpu.zeros(m * n).unwrap();
                let mut i = 0;
                let call = || {
                    match &weights {
                        Copies::F32(v) => {
                            gpu.gemv_f32(&x.as_view(), m, &v[i % v.len()].as_view(), n, k, &mut y.as_view_mut())
                        }
                        Copies::U16(v) if dtype == "bf16" => {
                            gpu.gemv_bf16(&x.as_view(), m, &v[i % v.len()].as_view(), n, k, &mut y.as_view_mut())
                        }
                        Copies::U16(v) => {
                            gpu.gemv_f16(&x.as_view(), m, &v[i % v.len()].as_view(), n, k, &mut y.as_view_mut())
                        }
                    }
                    .unwrap();
                    gpu.synchronize().unwrap();
                    i += 1;
                };
                let id = format!("gemv_{dtype}/{name}/m{m}");
                bench_rate(&mut group, &format!("m{m}"), id, bytes as f64, true, &mut rates, call);
            }
            group.finish();
        }
    }

    if gpu.has_bf16_tensor_cores() {
        for (name, n, k) in SHAPES {
            let wbits: Vec<u16> =
                common::rand_vec(n * k, 3).iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect();
            let w = gpu.upload(&wbits).unwrap();
            let mut group = c.benchmark_group(format!("cuda/gemm_bf16_tc/{name}"));
            for m in [64, 512] {
                let xbits: Vec<u16> =
                    common::rand_vec(m * k, 4).iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect();
                let x = gpu.upload(&xbits).unwrap();
                let mut y = gpu.zeros(m * n).unwrap();
                let flops = 2 * m * n * k;
                group.throughput(Throughput::Elements(flops as u64));
                let call = || {
                    gpu.gemm_bf16(&x.as_view(), m, &w.as_view(), n, k, &mut y.as_view_mut()).unwrap();
                    gpu.synchronize().unwrap();
                };
                let id = format!("gemm_bf16_tc/{name}/m{m}");
                bench_rate(&mut group, &format!("m{m}"), id, flops as f64, false, &mut rates, call);
            }
            group.finish();
        }
    }

    // Decode self-attention: 8 rows, each one query against its own cache.
    let (rows, heads, d) = (8, 32, 64);
    let mut group = c.benchmark_group("cuda/attention/decode_b8_h32x64");
    for kv_len in [64, 512] {
        let cap = kv_len;
        let q = gpu.upload(&common::rand_vec(rows * 3 * heads * d, 5)).unwrap();
        let kc = gpu.upload(&common::rand_vec(rows * heads * cap * d, 6)).unwrap();
        let vc = gpu.upload(&common::rand_vec(rows * heads * cap * d, 7)).unwrap();
        let bias = gpu.upload(&common::rand_vec(heads * kv_len, 8)).unwrap();
        let mut out = gpu.zeros(rows * heads * d).unwrap();
        let bytes = 2 * rows * heads * kv_len * d * 4;
        group.throughput(Throughput::Bytes(bytes as u64));
        let (qv, kv, vv, bv) = (q.as_view(), kc.as_view(), vc.as_view(), bias.as_view());
        let args = CudaAttention {
            q: &qv,
            k: &kv,
            v: &vv,
            heads,
            d,
            q_len: 1,
            kv_len,
            q_pos0: kv_len - 1,
            causal: true,
            q_row_stride: 3 * heads * d,
            kv_head_stride: cap * d,
            kv_row_stride: d,
            bias: Some((&bv, kv_len, kv_len - 1)),
            mask: None,
            q_pos_at: None,
            batch: rows,
            q_batch_stride: 3 * heads * d,
            kv_batch_stride: heads * cap * d,
        };
        let call = || {
            gpu.attention(&args, &mut out.as_view_mut()).unwrap();
            gpu.synchronize().unwrap();
        };
        let id = format!("attention/decode_b8_h32x64/kv{kv_len}");
        bench_rate(&mut group, &format!("kv{kv_len}"), id, bytes as f64, true, &mut rates, call);
    }
    group.finish();

    // Row summaries of a step's logits (T0's vocabulary): greedy (k = 1), beam search with 4
    // beams (k = 9), top-50 sampling (k = 51); bytes of logits read (k passes, from L2 after the
    // first), with the download of the summaries.
    let (rows, vocab) = (8, 32128);
    let logits = gpu.upload(&common::rand_vec(rows * vocab, 9)).unwrap();
    let mut group = c.benchmark_group("cuda/row_summary/b8_v32128");
    group.throughput(Throughput::Bytes((rows * vocab * 4) as u64));
    for k in [1, 9, 51] {
        let lv = logits.as_view();
        let call = || {
            gpu.row_summaries(&lv, rows, vocab, k, &[]).unwrap();
        };
        let id = format!("row_summary/b8_v32128/k{k}");
        bench_rate(&mut group, &format!("k{k}"), id, (rows * vocab * 4) as f64, true, &mut rates, call);
    }
    group.finish();

    let peak = gpu.peak_bandwidth_gbs().ok();
    let peak_text = peak.map_or("unknown".to_string(), |p| format!("{p:.0} GB/s"));
    eprintln!("\ncuda:0 ({}), memory peak {peak_text}", gpu.arch());
    eprintln!("| bench | rate | share of the memory peak |\n|---|---|---|");
    for r in &rates {
        if r.bytes {
            let gbs = r.per_s / 1e9;
            let share = peak.map_or(String::new(), |p| format!("{:.0}%", 100.0 * gbs / p));
            eprintln!("| {} | {gbs:.0} GB/s | {share} |", r.id);
        } else {
            eprintln!("| {} | {:.1} TFLOP/s | |", r.id, r.per_s / 1e12);
        }
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = kernels
}
criterion_main!(benches);
