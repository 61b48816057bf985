//! Errors of the tensor crate. Every variant names the file, tensor or value at fault.

use std::path::PathBuf;

use crate::DType;

/// What can go wrong with tensors and tensor files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A safetensors file whose header or layout is invalid.
    #[error("{path}: not a valid safetensors file: {reason}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor stored in a dtype this crate cannot hold.
    #[error("{path}: tensor `{name}` has dtype {dtype}, which t0 cannot use (expected F32, BF16, F16 or I8)")]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A tensor that is not in the file.
    #[error("{path}: no tensor named `{name}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// Data of the wrong length for a shape.
    #[error("shape {shape:?} needs {expected} elements, got {got}")]
    LengthMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// A typed access with the wrong dtype.
    #[error("tensor has dtype {found}, expected {expected}")]
    DTypeMismatch {
        /// Wanted.
        expected: DType,
        /// Found.
        found: DType,
    },
    /// An unknown dtype name.
    #[error("unknown dtype `{0}` (expected f32, bf16, f16 or int8)")]
    UnknownDType(String),
    /// An unknown device name.
    #[error("unknown device `{0}` (expected cpu)")]
    UnknownDevice(String),
    /// A write that does not follow the declared tensor list.
    #[error("{path}: {reason}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl TensorError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TensorError::Io { path: path.into(), source }
    }
    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TensorError::InvalidFile { path: path.into(), reason: reason.into() }
    }
}
