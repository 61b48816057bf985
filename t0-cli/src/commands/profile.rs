//! A [`Kernels`] wrapper that times every op it forwards: `t0 bench --profile` prints where a
//! decode step's time goes. It is also a small example of plugging kernels into the model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use t0_kernels::activation::Activation;
use t0_kernels::{AttentionArgs, Kernels, WeightView};

const OPS: [&str; 8] = ["matmul", "attention", "rms_norm", "softmax", "activation", "add", "embedding", "other"];

/// Forwards to `inner`, adding each call's wall time to a per-op counter.
#[derive(Debug)]
pub struct Profiled {
    inner: &'static dyn Kernels,
    nanos: [AtomicU64; 8],
    calls: [AtomicU64; 8],
}

impl Profiled {
    pub fn new(inner: &'static dyn Kernels) -> Self {
        Self { inner, nanos: Default::default(), calls: Default::default() }
    }

    fn time<R>(&self, op: usize, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        self.nanos[op].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls[op].fetch_add(1, Ordering::Relaxed);
        r
    }

    /// Zero the counters.
    pub fn reset(&self) {
        for (n, c) in self.nanos.iter().zip(&self.calls) {
            n.store(0, Ordering::Relaxed);
            c.store(0, Ordering::Relaxed);
        }
    }

    /// `(op, total ms, calls)` for every op called since the last reset.
    pub fn report(&self) -> Vec<(&'static str, f64, u64)> {
        OPS.iter()
            .enumerate()
            .map(|(i, &name)| {
                (name, self.nanos[i].load(Ordering::Relaxed) as f64 / 1e6, self.calls[i].load(Ordering::Relaxed))
            })
            .filter(|r| r.2 > 0)
            .collect()
    }
}

impl Kernels for Profiled {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn matmul(&self, x: &[f32], m: usize, w: &WeightView<'_>, out: &mut [f32]) {
        self.time(0, || self.inner.matmul(x, m, w, out))
    }
    fn matmul_stacked(&self, x: &[f32], m: usize, ws: &[WeightView<'_>], out: &mut [f32]) {
        self.time(0, || self.inner.matmul_stacked(x, m, ws, out))
    }
    fn attention(&self, args: &AttentionArgs<'_>, out: &mut [f32]) {
        self.time(1, || self.inner.attention(args, out))
    }
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        self.time(2, || self.inner.rms_norm(x, weight, eps, out))
    }
    fn softmax(&self, row: &mut [f32]) {
        self.time(3, || self.inner.softmax(row))
    }
    fn log_softmax(&self, row: &mut [f32]) {
        self.time(3, || self.inner.log_softmax(row))
    }
    fn activation(&self, act: Activation, x: &mut [f32]) {
        self.time(4, || self.inner.activation(act, x))
    }
    fn gated_activation(&self, act: Activation, gate: &mut [f32], up: &[f32]) {
        self.time(4, || self.inner.gated_activation(act, gate, up))
    }
    fn add_assign(&self, acc: &mut [f32], x: &[f32]) {
        self.time(5, || self.inner.add_assign(acc, x))
    }
    fn scale(&self, x: &mut [f32], s: f32) {
        self.time(7, || self.inner.scale(x, s))
    }
    fn embedding(&self, table: &WeightView<'_>, ids: &[u32], out: &mut [f32]) {
        self.time(6, || self.inner.embedding(table, ids, out))
    }
}
