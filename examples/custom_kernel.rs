//! Swap in your own kernel: a [`Kernels`] implementation that replaces RMS norm with its own
//! code (accumulating in f64) and counts matmul calls, forwarding everything else to the
//! built-in kernels picked for this CPU. The model runs on it through [`LoadOptions::kernels`].
//!
//! ```sh
//! cargo run --release --example custom_kernel
//! ```
//!
//! Every method of the trait has a default, the scalar reference: override what you replace,
//! and forward the rest to [`t0_kernels::select`] (as here) to keep the SIMD speed.

use std::sync::atomic::{AtomicUsize, Ordering};

use t0_kernels::{Activation, AttentionArgs, Kernels, WeightView};
use t0_model::{GenerationConfig, LoadOptions, T5Model};

/// The model used when none is given on the command line.
pub const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/t0-tiny");

/// Built-in kernels, except for RMS norm; counts calls.
#[derive(Debug)]
pub struct MyKernels {
    inner: &'static dyn Kernels,
    rms_norm_calls: AtomicUsize,
    matmul_calls: AtomicUsize,
}

impl MyKernels {
    /// Wrap `inner`.
    pub fn new(inner: &'static dyn Kernels) -> Self {
        Self { inner, rms_norm_calls: AtomicUsize::new(0), matmul_calls: AtomicUsize::new(0) }
    }
}

impl Kernels for MyKernels {
    fn name(&self) -> &'static str {
        "my-rms-norm"
    }

    /// T5's RMS norm (no mean subtraction, no bias): `out = x / sqrt(mean(x²) + eps) · weight`
    /// for each row of `weight.len()` values, with the mean of squares accumulated in f64.
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        self.rms_norm_calls.fetch_add(1, Ordering::Relaxed);
        let d = weight.len();
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean_sq = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / d as f64;
            let inv = (1.0 / (mean_sq + f64::from(eps)).sqrt()) as f32;
            for ((o, &v), &w) in o.iter_mut().zip(row).zip(weight) {
                *o = v * inv * w;
            }
        }
    }

    fn matmul(&self, x: &[f32], m: usize, w: &WeightView<'_>, out: &mut [f32]) {
        self.matmul_calls.fetch_add(1, Ordering::Relaxed);
        self.inner.matmul(x, m, w, out)
    }

    // The rest: forwarded to the built-in kernels.
    fn softmax(&self, row: &mut [f32]) {
        self.inner.softmax(row)
    }
    fn log_softmax(&self, row: &mut [f32]) {
        self.inner.log_softmax(row)
    }
    fn activation(&self, act: Activation, x: &mut [f32]) {
        self.inner.activation(act, x)
    }
    fn gated_activation(&self, act: Activation, gate: &mut [f32], up: &[f32]) {
        self.inner.gated_activation(act, gate, up)
    }
    fn add_assign(&self, acc: &mut [f32], x: &[f32]) {
        self.inner.add_assign(acc, x)
    }
    fn scale(&self, x: &mut [f32], s: f32) {
        self.inner.scale(x, s)
    }
    fn embedding(&self, table: &WeightView<'_>, ids: &[u32], out: &mut [f32]) {
        self.inner.embedding(table, ids, out)
    }
    fn attention(&self, args: &AttentionArgs<'_>, out: &mut [f32]) {
        self.inner.attention(args, out)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&std::env::args().nth(1).unwrap_or_else(|| TINY.to_string()))
}

/// Run `model` (a directory or a hub id) on the custom kernels and on the built-in ones.
pub fn run(model: &str) -> Result<(), Box<dyn std::error::Error>> {
    let dir = t0_model::hub::resolve_model(model, None)?;

    // The model keeps a `&'static dyn Kernels`: make the kernels once per process (a leaked box
    // or a `static`).
    let mine: &'static MyKernels = Box::leak(Box::new(MyKernels::new(t0_kernels::select())));
    let custom = T5Model::load(&dir, LoadOptions { kernels: mine, ..Default::default() })?;
    let builtin = T5Model::from_dir(&dir)?;

    let input = vec![vec![2163, 1]]; // "Yes</s>"
    let cfg = GenerationConfig::greedy(12);
    let a = &custom.generate(&input, &cfg)?[0][0];
    let b = &builtin.generate(&input, &cfg)?[0][0];
    println!("kernels {:>12}: {:?}", custom.kernels().name(), a.token_ids);
    println!("kernels {:>12}: {:?}", builtin.kernels().name(), b.token_ids);
    let max_diff = a.token_logprobs.iter().zip(&b.token_logprobs).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    println!(
        "rms_norm calls {}, matmul calls {}, largest log-prob difference {max_diff:.2e}",
        mine.rms_norm_calls.load(Ordering::Relaxed),
        mine.matmul_calls.load(Ordering::Relaxed)
    );
    if a.token_ids != b.token_ids || max_diff > 1e-4 {
        return Err("the custom kernels disagree with the built-in ones".into());
    }
    Ok(())
}
