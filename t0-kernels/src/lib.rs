//! Raw-slice kernels for T5 inference.
//!
//! Every op has a *scalar reference* (plain Rust, the specification of what the op computes)
//! and may have faster implementations. The model never calls an implementation directly: it
//! calls through the [`Kernels`] trait, and [`select`] picks the implementation once per
//! process (the seam where SIMD, CUDA or a researcher's own kernels plug in).
//!
//! Layout conventions, shared by all ops:
//! - matrices are row-major; a linear layer's weight is `[out, in]` as HF stores it, and
//!   [`Kernels::matmul`] computes `x · Wᵀ`;
//! - activations and accumulators are `f32`; weights may be stored narrower ([`WeightView`]).
//!
//! ```
//! use t0_kernels::{select, WeightView};
//! let k = select();
//! let x = [1.0f32, 2.0];                 // one row, in = 2
//! let w = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // out = 3, in = 2
//! let mut y = [0.0f32; 3];
//! k.matmul(&x, 1, &WeightView::f32(&w, 3, 2), &mut y);
//! assert_eq!(y, [1.0, 2.0, 3.0]);
//! ```

pub mod activation;
pub mod attention;
pub mod backend;
pub mod embedding;
pub mod matmul;
pub mod position_bias;
pub mod rms_norm;
pub mod softmax;

pub use attention::{AttentionArgs, BiasView};
pub use backend::{select, Kernels, ScalarKernels};
pub use matmul::WeightView;
pub use position_bias::relative_position_bucket;
