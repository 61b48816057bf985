//! The seam between the model and the kernels: the [`Kernels`] trait, the scalar reference
//! implementation, and [`select`], which picks an implementation once per process.
//!
//! To plug in your own kernels, implement [`Kernels`] (delegating to [`ScalarKernels`] for the
//! ops you do not replace) and hand it to the model when you load it.

use std::sync::OnceLock;

use crate::activation::{activation_reference, gated_activation_reference, Activation};
use crate::attention::{attention_reference, AttentionArgs};
use crate::embedding::embedding_reference;
use crate::matmul::{matmul_reference, WeightView};
use crate::rms_norm::rms_norm_reference;
use crate::softmax::{log_softmax_reference, softmax_reference};

/// Every op the T5 forward pass needs. Implementations must be thread-safe; the model calls
/// them from one thread at a time per sequence batch and they may use rayon inside.
pub trait Kernels: Send + Sync + std::fmt::Debug {
    /// A short name (`"scalar"`, `"avx512"`, …) for logs and benches.
    fn name(&self) -> &'static str;

    /// `out[m, w.rows()] = x[m, w.cols()] · Wᵀ`.
    fn matmul(&self, x: &[f32], m: usize, w: &WeightView<'_>, out: &mut [f32]) {
        matmul_reference(x, m, w, out)
    }

    /// T5 RMS norm of each row of `x` (row length `weight.len()`) into `out`.
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        rms_norm_reference(x, weight, eps, out)
    }

    /// Softmax of one row, in place.
    fn softmax(&self, row: &mut [f32]) {
        softmax_reference(row)
    }

    /// Log-softmax of one row, in place.
    fn log_softmax(&self, row: &mut [f32]) {
        log_softmax_reference(row)
    }

    /// `x = act(x)` in place.
    fn activation(&self, act: Activation, x: &mut [f32]) {
        activation_reference(act, x)
    }

    /// `gate = act(gate) ⊙ up` in place.
    fn gated_activation(&self, act: Activation, gate: &mut [f32], up: &[f32]) {
        gated_activation_reference(act, gate, up)
    }

    /// `acc += x` elementwise (the residual connection).
    fn add_assign(&self, acc: &mut [f32], x: &[f32]) {
        assert_eq!(acc.len(), x.len(), "add_assign: length mismatch");
        for (a, &b) in acc.iter_mut().zip(x) {
            *a += b;
        }
    }

    /// `x *= s` elementwise.
    fn scale(&self, x: &mut [f32], s: f32) {
        for v in x {
            *v *= s;
        }
    }

    /// Rows `ids` of an embedding table, widened to f32, into `out` (`[ids.len(), cols]`).
    fn embedding(&self, table: &WeightView<'_>, ids: &[u32], out: &mut [f32]) {
        embedding_reference(table, ids, out)
    }

    /// Attention over one sequence; see [`AttentionArgs`].
    fn attention(&self, args: &AttentionArgs<'_>, out: &mut [f32]) {
        attention_reference(args, out)
    }
}

/// The scalar reference kernels: the specification every other implementation is tested against.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScalarKernels;

impl Kernels for ScalarKernels {
    fn name(&self) -> &'static str {
        "scalar"
    }
}

/// The implementations this build offers, by name.
pub fn available() -> Vec<&'static dyn Kernels> {
    vec![&ScalarKernels]
}

/// The best implementation for this CPU, chosen once per process.
///
/// The environment variable `T0_KERNELS` (`scalar`, `avx2`, `avx512`, `neon`) forces one; an
/// unknown or unavailable name falls back to the automatic choice with a warning on stderr.
pub fn select() -> &'static dyn Kernels {
    static CHOSEN: OnceLock<&'static dyn Kernels> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let all = available();
        if let Ok(want) = std::env::var("T0_KERNELS") {
            if let Some(k) = all.iter().find(|k| k.name() == want) {
                return *k;
            }
            eprintln!("t0-kernels: T0_KERNELS={want:?} is not available here; choosing automatically");
        }
        // `available()` lists the fastest implementation last.
        all.last().copied().unwrap_or(&ScalarKernels)
    })
}
