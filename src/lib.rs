//! Root package of the t0-rs workspace: it holds the integration tests (`tests/`), the examples
//! (`examples/`) and the criterion benches (`benches/`). The library lives in the member crates:
//! [`t0_kernels`], [`t0_tensor`] and [`t0_model`]. The README follows; its Rust code is run as
//! a doc test, so the README cannot drift from the API.
#![doc = include_str!("../README.md")]

pub use t0_kernels;
pub use t0_model;
pub use t0_tensor;
