//! This machine's ceilings, measured the way the kernels use the hardware:
//! - `peak/fma`: every rayon thread runs 16 independent chains of vector FMAs on registers
//!   (`vfmadd231ps zmm` with AVX-512); throughput in flops (criterion "elem/s" = FLOP/s).
//! - `peak/int8`: the int8 tiles' multiply-add sequence on registers (VNNI `vpdpbusd`, or the
//!   AVX2 sign / `vpmaddubsw` / `vpmaddwd` step); throughput in integer ops (2 per MAC).
//! - `peak/bf16`: the bf16 tiles' `vdpbf16ps` on registers (AVX-512 BF16 only); throughput in
//!   flops (2 per multiply-add).
//! - `peak/read_1stream`, `peak/read_4streams`: every rayon thread sums its share of a 1 GiB
//!   buffer (at least 4× the last-level cache here) with vector loads, as one sequential stream or as four interleaved
//!   ones (like a GEMV reading several weight rows); throughput in bytes (GB/s).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use t0_kernels::roofline;

fn peak(c: &mut Criterion) {
    println!(
        "t0-kernels: CPU features: {}; rayon threads: {}",
        t0_kernels::cpu::summary(),
        rayon::current_num_threads()
    );
    let mut group = c.benchmark_group("peak");
    let (flops, _) = roofline::fma_pass();
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function("fma", |b| b.iter(roofline::fma_pass));
    let (ops, _) = roofline::int8_pass();
    if ops > 0.0 {
        group.throughput(Throughput::Elements(ops as u64));
        group.bench_function("int8", |b| b.iter(roofline::int8_pass));
    }
    let (flops, _) = roofline::bf16_pass();
    if flops > 0.0 {
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function("bf16", |b| b.iter(roofline::bf16_pass));
    }
    let buf = common::rand_vec(1 << 28, 3);
    group.throughput(Throughput::Bytes((buf.len() * 4) as u64));
    group.bench_function("read_1stream", |b| b.iter(|| roofline::read_pass(&buf, 1)));
    group.bench_function("read_4streams", |b| b.iter(|| roofline::read_pass(&buf, 4)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = peak
}
criterion_main!(benches);
