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
    #[error("{}: tensor `{name}` has shape {found:?}, but the config needs {expected:?}", file.display())]
    Shape {
        /// The safetensors file holding it.
        file: PathBuf,
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
    /// An input longer than the model's limit ([`crate::LoadOptions::max_input_tokens`]).
    #[error(
        "input {index} has {tokens} tokens, more than the limit of {limit} \
         (raise it with --max-input-tokens or LoadOptions::max_input_tokens)"
    )]
    InputTooLong {
        /// Which input of the batch.
        index: usize,
        /// Its length in tokens.
        tokens: usize,
        /// The limit.
        limit: usize,
    },
    /// The machine obviously lacks the memory the model needs (see [`crate::memory`]).
    #[error(
        "{dir}: not enough memory to load the model: {reason} \
         (to try anyway: --no-memory-check, or LoadOptions::check_memory = false)"
    )]
    InsufficientMemory {
        /// The model directory.
        dir: PathBuf,
        /// What is needed and what there is.
        reason: String,
    },
    /// An invalid argument to a model call (empty batch, bad option value...).
    #[error("{0}")]
    InvalidArgument(String),
    /// An error from the tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] t0_tokenizer::TokenizerError),
    /// The model directory's tokenizer files did not load (kept by
    /// [`crate::T0::with_model_lenient`]): text input and text output need them, token ids
    /// do not. `reason` is the loading error.
    #[error("{}: the tokenizer did not load, so text needs token ids instead: {reason}", dir.display())]
    TokenizerUnavailable {
        /// The model directory.
        dir: PathBuf,
        /// Why the tokenizer did not load.
        reason: String,
    },
    /// An error from the tensor layer.
    #[error(transparent)]
    Tensor(#[from] t0_tensor::TensorError),
    /// A model given as a hub id (`org/name`) that cannot be found in (or fetched into) the
    /// Hugging Face cache; the reason names the paths tried and how to get the model.
    #[error("model `{spec}` {reason}")]
    Hub {
        /// The model as given (`bigscience/T0_3B`).
        spec: String,
        /// What was tried and what to do.
        reason: String,
    },
    /// A compute device failed or is missing (the CUDA driver or NVRTC library, a launch, an
    /// allocation); the message says which.
    #[error("device {device}: {reason}")]
    Device {
        /// The device (`cuda:0`).
        device: String,
        /// What failed.
        reason: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
