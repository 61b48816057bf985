//! Root package of the t0-rs workspace: it only holds the integration tests (`tests/`) and
//! the criterion benches (`benches/`). The library lives in the member crates:
//! [`t0_kernels`], [`t0_tensor`] and [`t0_model`].
pub use t0_kernels;
pub use t0_model;
pub use t0_tensor;
