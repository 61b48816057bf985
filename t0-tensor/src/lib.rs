#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! Tensors for t0-rs: a shape, a dtype and storage that is either owned or a zero-copy view
//! into a memory-mapped safetensors file; plus safetensors reading (validated before any byte
//! of tensor data is touched) and streaming, atomic writing.
//!
//! ```
//! use t0_tensor::{DType, Tensor};
//! let t = Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
//! assert_eq!(t.shape(), &[2, 3]);
//! assert_eq!(t.dtype(), DType::F32);
//! let b = t.to_dtype(DType::BF16);
//! assert_eq!(b.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
//! ```

#![warn(missing_docs)]

mod device;
mod dtype;
mod error;
mod safetensors_read;
mod safetensors_write;
mod storage;
mod tensor;

pub use device::Device;
pub use dtype::DType;
pub use error::TensorError;
pub use safetensors_read::SafeTensorsFile;
pub use safetensors_write::{SafeTensorsWriter, TensorSpec};
pub use storage::Storage;
pub use tensor::Tensor;

/// Result type of this crate.
pub type Result<T, E = TensorError> = std::result::Result<T, E>;
