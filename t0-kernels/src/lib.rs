#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! Raw-slice kernels for T5 inference.
//!
//! Every op has a *scalar reference* (plain Rust, the specification of what the op computes)
//! and faster implementations (AVX-512, AVX2 + FMA, NEON). The model never calls an
//! implementation directly: it calls through the [`Kernels`] trait, and [`select`] picks the
//! implementation once per process (the seam where SIMD, CUDA or a researcher's own kernels
//! plug in). `T0_KERNELS=scalar|avx2|avx512|neon` forces one.
//!
//! Layout conventions, shared by all ops:
//! - matrices are row-major; a linear layer's weight is `[out, in]` as HF stores it, and
//!   [`Kernels::matmul`] computes `x · Wᵀ`;
//! - activations and accumulators are `f32`; weights may be stored narrower ([`WeightView`]),
//!   or converted once at load into the kernels' own panel layout ([`PackedWeight`]: f32, bf16
//!   or int8 with per-output-channel scales).
//!
//! ```
//! use t0_kernels::{select, PackDType, PackedWeight, WeightView};
//! let k = select();
//! let x = [1.0f32, 2.0];                 // one row, in = 2
//! let w = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // out = 3, in = 2
//! let mut y = [0.0f32; 3];
//! k.matmul(&x, 1, &WeightView::f32(&w, 3, 2), &mut y);
//! assert_eq!(y, [1.0, 2.0, 3.0]);
//!
//! // Converted once at load, then used exactly like a plain view.
//! let packed = PackedWeight::from_f32(&w, 3, 2, PackDType::Bf16);
//! k.matmul(&x, 1, &packed.view(), &mut y);
//! assert_eq!(y, [1.0, 2.0, 3.0]);
//! ```

#![warn(missing_docs)]

pub mod activation;
pub mod attention;
pub mod backend;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod elementwise;
pub mod embedding;
mod linebuf;
pub mod logit_edit;
pub mod matmul;
pub mod position_bias;
pub mod quant;
pub mod rms_norm;
pub mod roofline;
pub mod row_summary;
mod scratch;
mod simd;
pub mod softmax;

pub use activation::Activation;
pub use attention::{AttentionArgs, BiasView};
#[cfg(target_arch = "aarch64")]
pub use backend::NeonKernels;
pub use backend::{available, select, Kernels, ScalarKernels};
#[cfg(target_arch = "x86_64")]
pub use backend::{Avx2Kernels, Avx512Kernels};
pub use linebuf::F32Buf;
pub use matmul::{decode_streams, set_decode_streams, PackDType, PackError, PackedWeight, SharedPanels, WeightView};
pub use position_bias::relative_position_bucket;
