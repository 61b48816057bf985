//! Errors of the model crate. Each names the file, key, tensor or value at fault.

use std::path::PathBuf;

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// An I/O error on a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A model directory that is missing a required file.
    #[error("{dir}: {what}")]
    MissingFile {
        /// The directory.
        dir: PathBuf,
        /// What is missing and what to do about it.
        what: String,
    },
    /// A `config.json` that cannot be used.
    #[error("{path}: `{key}`: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A weight tensor with the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, but the config needs {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A weight tensor that is in none of the model's files.
    #[error("{dir}: no tensor named `{name}` in the model's safetensors files")]
    MissingTensor {
        /// The model directory.
        dir: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is out of range: the model's vocabulary has {vocab_size} entries")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// An invalid argument to a model call (empty batch, bad option value...).
    #[error("{0}")]
    InvalidArgument(String),
    /// An error from the tensor layer.
    #[error(transparent)]
    Tensor(#[from] t0_tensor::TensorError),
}

/// Result type of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
