//! The seam between the model and the kernels: the [`Kernels`] trait, the scalar reference
//! implementation, the SIMD implementations, and [`select`], which picks one once per process.
//!
//! To plug in your own kernels, implement [`Kernels`], overriding the ops you replace and
//! delegating the rest to [`select()`] (or to [`ScalarKernels`]), and hand it to the model when
//! you load it. `examples/custom_kernels.rs` shows one.

use std::sync::OnceLock;

use crate::activation::{activation_reference, gated_activation_reference, Activation};
use crate::attention::{attention_reference, AttentionArgs};
use crate::elementwise::{add_assign_reference, scale_reference};
use crate::embedding::embedding_reference;
use crate::matmul::{matmul_reference, WeightView};
use crate::rms_norm::rms_norm_reference;
use crate::softmax::{log_softmax_reference, softmax_reference};

/// Every op the T5 forward pass needs. Implementations must be thread-safe; the model calls
/// them from one thread at a time per sequence batch and they may use rayon inside.
///
/// Every method has a default: the scalar reference. An implementation overrides what it
/// accelerates.
pub trait Kernels: Send + Sync + std::fmt::Debug {
    /// A short name (`"scalar"`, `"avx512"`, …) for logs and benches.
    fn name(&self) -> &'static str;

    /// `out[m, w.rows()] = x[m, w.cols()] · Wᵀ`.
    fn matmul(&self, x: &[f32], m: usize, w: &WeightView<'_>, out: &mut [f32]) {
        matmul_reference(x, m, w, out)
    }

    /// `out[m, Σ rows] = x[m, cols] · [W₀; W₁; …]ᵀ` for weights with the same `cols`: the
    /// matmul against their rows stacked in order, without stacking them (each output row is
    /// `[x·W₀ᵀ | x·W₁ᵀ | …]`). Worth having because an implementation may run it as one
    /// matmul, `x` quantised or packed once and one parallel pass over every weight: e.g. the
    /// cross-attention keys and values of every decoder layer from one encoder output. The
    /// default runs [`Self::matmul`] weight by weight into a temporary and copies each result
    /// into its columns.
    ///
    /// ```
    /// use t0_kernels::{Kernels, WeightView};
    /// let (a, b) = ([1.0f32, 0.0, 0.0, 1.0], [2.0f32, 3.0]);
    /// let ws = [WeightView::f32(&a, 2, 2), WeightView::f32(&b, 1, 2)];
    /// let mut y = [0.0f32; 3];
    /// t0_kernels::select().matmul_stacked(&[5.0, 7.0], 1, &ws, &mut y);
    /// assert_eq!(y, [5.0, 7.0, 31.0]);
    /// ```
    fn matmul_stacked(&self, x: &[f32], m: usize, ws: &[WeightView<'_>], out: &mut [f32]) {
        crate::matmul::stacked_by_parts(m, ws, out, |w, o| self.matmul(x, m, w, o))
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
        add_assign_reference(acc, x)
    }

    /// `x *= s` elementwise.
    fn scale(&self, x: &mut [f32], s: f32) {
        scale_reference(x, s)
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

/// Implements [`Kernels`] for one instruction set: element-wise ops and attention through the
/// generic SIMD code in each op's module (instantiated here inside `#[target_feature]`
/// functions), matmul through the shared drivers in [`crate::matmul`].
macro_rules! simd_kernels {
    (
        $(#[$meta:meta])*
        $name:ident, label = $label:literal, features = $features:literal, vec = $V:ty, isa = $Isa:ty
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            isa: $Isa,
        }

        impl $name {
            /// The kernels, if this CPU supports them.
            pub fn new() -> Option<Self> {
                <$Isa>::detect().map(|isa| $name { isa })
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn rms_norm_tf(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
            crate::rms_norm::rms_norm_simd::<$V>(x, weight, eps, out)
        }
        #[target_feature(enable = $features)]
        unsafe fn softmax_tf(row: &mut [f32]) {
            crate::softmax::softmax_simd::<$V>(row)
        }
        #[target_feature(enable = $features)]
        unsafe fn log_softmax_tf(row: &mut [f32]) {
            crate::softmax::log_softmax_simd::<$V>(row)
        }
        #[target_feature(enable = $features)]
        unsafe fn activation_tf(act: crate::activation::Activation, x: &mut [f32]) {
            crate::activation::activation_simd::<$V>(act, x)
        }
        #[target_feature(enable = $features)]
        unsafe fn gated_activation_tf(act: crate::activation::Activation, gate: &mut [f32], up: &[f32]) {
            crate::activation::gated_activation_simd::<$V>(act, gate, up)
        }
        #[target_feature(enable = $features)]
        unsafe fn add_assign_tf(acc: &mut [f32], x: &[f32]) {
            crate::elementwise::add_assign_simd::<$V>(acc, x)
        }
        #[target_feature(enable = $features)]
        unsafe fn scale_tf(x: &mut [f32], s: f32) {
            crate::elementwise::scale_simd::<$V>(x, s)
        }
        #[target_feature(enable = $features)]
        unsafe fn attention_head_tf(a: &crate::attention::AttentionArgs<'_>, h: usize, out: *mut f32, buf: &mut [f32]) {
            crate::attention::attention_head_simd::<$V>(a, h, out, buf)
        }

        // SAFETY (every `unsafe` block below): a `$name` exists only if `new` detected the
        // instruction set the `_tf` functions are compiled for.
        impl crate::backend::Kernels for $name {
            fn name(&self) -> &'static str {
                crate::matmul::MatmulIsa::label(self.isa, $label)
            }
            fn matmul(&self, x: &[f32], m: usize, w: &crate::matmul::WeightView<'_>, out: &mut [f32]) {
                crate::matmul::matmul_with(self.isa, x, m, w, out)
            }
            fn matmul_stacked(&self, x: &[f32], m: usize, ws: &[crate::matmul::WeightView<'_>], out: &mut [f32]) {
                crate::matmul::matmul_stacked_with(self.isa, x, m, ws, out)
            }
            fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
                let d = weight.len().max(1);
                assert_eq!(x.len(), out.len(), "rms_norm: x and out differ in length");
                let rows = crate::backend::PAR_MIN_ELEMS.div_ceil(d);
                crate::backend::par_rows(x, out, rows * d, |x, out| unsafe { rms_norm_tf(x, weight, eps, out) })
            }
            fn softmax(&self, row: &mut [f32]) {
                unsafe { softmax_tf(row) }
            }
            fn log_softmax(&self, row: &mut [f32]) {
                unsafe { log_softmax_tf(row) }
            }
            fn activation(&self, act: crate::activation::Activation, x: &mut [f32]) {
                crate::backend::par_chunks(x, |x| unsafe { activation_tf(act, x) })
            }
            fn gated_activation(&self, act: crate::activation::Activation, gate: &mut [f32], up: &[f32]) {
                assert_eq!(gate.len(), up.len(), "gated activation: gate and up differ in length");
                crate::backend::par_zip(gate, up, |g, u| unsafe { gated_activation_tf(act, g, u) })
            }
            fn add_assign(&self, acc: &mut [f32], x: &[f32]) {
                assert_eq!(acc.len(), x.len(), "add_assign: length mismatch");
                crate::backend::par_zip(acc, x, |a, b| unsafe { add_assign_tf(a, b) })
            }
            fn scale(&self, x: &mut [f32], s: f32) {
                crate::backend::par_chunks(x, |x| unsafe { scale_tf(x, s) })
            }
            fn attention(&self, args: &crate::attention::AttentionArgs<'_>, out: &mut [f32]) {
                unsafe { crate::attention::attention_by_heads(args, out, attention_head_tf) }
            }
        }
    };
}

/// Element-wise work below this many elements runs on the calling thread (a hand-off to the
/// pool costs more than it saves); above it, in chunks of this size across the pool.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 15;

/// Runs `f` over `xs` in chunks of [`PAR_MIN_ELEMS`], in parallel when there are several.
pub(crate) fn par_chunks(xs: &mut [f32], f: impl Fn(&mut [f32]) + Sync + Send) {
    use rayon::prelude::*;
    if xs.len() <= PAR_MIN_ELEMS {
        f(xs)
    } else {
        xs.par_chunks_mut(PAR_MIN_ELEMS).for_each(f)
    }
}

/// Runs `f` over matching chunks of `a` and `b` (same length), in parallel when large.
pub(crate) fn par_zip(a: &mut [f32], b: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync + Send) {
    use rayon::prelude::*;
    if a.len() <= PAR_MIN_ELEMS {
        f(a, b)
    } else {
        a.par_chunks_mut(PAR_MIN_ELEMS).zip(b.par_chunks(PAR_MIN_ELEMS)).for_each(|(a, b)| f(a, b))
    }
}

/// Runs `f(x_chunk, out_chunk)` over chunks of `chunk` elements (whole rows), in parallel when
/// there are several.
pub(crate) fn par_rows(x: &[f32], out: &mut [f32], chunk: usize, f: impl Fn(&[f32], &mut [f32]) + Sync + Send) {
    use rayon::prelude::*;
    if x.len() <= chunk {
        f(x, out)
    } else {
        x.par_chunks(chunk).zip(out.par_chunks_mut(chunk)).for_each(|(x, o)| f(x, o))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2Kernels;
#[cfg(target_arch = "x86_64")]
pub use avx512::Avx512Kernels;
#[cfg(target_arch = "aarch64")]
pub use neon::NeonKernels;

/// The implementations this CPU can run, slowest first (the scalar reference is always there).
pub fn available() -> Vec<&'static dyn Kernels> {
    let mut all: Vec<&'static dyn Kernels> = vec![&ScalarKernels];
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: OnceLock<Option<Avx2Kernels>> = OnceLock::new();
        static AVX512: OnceLock<Option<Avx512Kernels>> = OnceLock::new();
        static AVX512_ALT: OnceLock<Option<Avx512Kernels>> = OnceLock::new();
        if let Some(k) = AVX2.get_or_init(Avx2Kernels::new) {
            all.push(k);
        }
        // With AVX-512 BF16, the bf16 path `avx512` does not take, listed (so tested) before it.
        if let Some(k) = AVX512_ALT.get_or_init(Avx512Kernels::alternative) {
            all.push(k);
        }
        if let Some(k) = AVX512.get_or_init(Avx512Kernels::new) {
            all.push(k);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        static NEON: OnceLock<Option<NeonKernels>> = OnceLock::new();
        if let Some(k) = NEON.get_or_init(NeonKernels::new) {
            all.push(k);
        }
    }
    all
}

/// The best implementation for this CPU, chosen once per process.
///
/// The environment variable `T0_KERNELS` (`scalar`, `avx2`, `avx512`, `neon`, and on CPUs with
/// AVX-512 BF16 the bf16 path `avx512` does not take: `avx512-bf16dot` or `avx512-bf16widen`,
/// see [`crate::cpu::bf16_dot_is_fast`]) forces one; an
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
