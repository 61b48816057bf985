#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! T5 / T0 inference: config, weights, encoder, decoder with KV caches, generation, rank
//! classification.
//!
//! Start with [`T0`]: a model and its tokenizer, loaded from a directory or from a hub id in the
//! local Hugging Face cache ([`hub`]), text in and text out.
//!
//! ```
//! # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
//! use t0_model::{GenerationConfig, T0};
//! let t0 = T0::from_pretrained("tests/fixtures/models/t0-tiny")?; // or "bigscience/T0_3B"
//! let answer = &t0.generate_text(&["Is this a question?"], &GenerationConfig::greedy(12))?[0][0];
//! println!("{} {:?}", answer.text, answer.generated.token_logprobs);
//! let r = t0.classify_text("Is this a question?", &["Yes", "No"], false)?;
//! println!("best choice: {}", r.best);
//! # Ok::<(), t0_model::ModelError>(())
//! ```
//!
//! [`T5Model`] is the model alone, on token ids: encoder passes, decoder steps over a
//! [`DecoderState`], generation and scoring:
//!
//! ```
//! # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
//! use t0_model::{GenerationConfig, T5Model};
//! let model = T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
//! let out = model.generate(&[vec![27, 7, 48, 1]], &GenerationConfig::greedy(12))?;
//! println!("{:?} {:?}", out[0][0].token_ids, out[0][0].token_logprobs);
//! # Ok::<(), t0_model::ModelError>(())
//! ```
//!
//! The forward pass reads top to bottom in [`encoder`] and [`decoder`]; every numeric op goes
//! through the kernels of [`t0_kernels`], chosen once per process (or given in
//! [`LoadOptions::kernels`]). [`inspect::ModelInfo`] describes a model directory without
//! loading it. Every fallible call returns [`ModelError`], which implements
//! [`std::error::Error`] and names the file, key, tensor or value at fault.

#![warn(missing_docs)]

pub mod attention;
pub mod beam;
pub mod builder;
pub mod cache;
pub mod config;
pub mod convert;
pub mod decoder;
mod decoding;
pub mod device;
pub mod encoder;
mod error;
pub mod feed_forward;
pub mod generate;
pub mod generation_config;
pub mod hub;
pub mod inspect;
pub mod linear;
pub mod logits_process;
pub mod memory;
pub mod model;
mod pick;
pub mod pipeline;
pub mod position_bias;
pub mod random_init;
pub mod sampling;
pub mod score;
pub mod weights;
mod workspace;

pub use builder::T0Builder;
pub use cache::{CrossCache, DecoderState};
pub use config::T5Config;
pub use error::{ModelError, Result};
pub use generate::Generated;
pub use generation_config::{EarlyStopping, GenerationConfig};
pub use inspect::ModelInfo;
pub use model::{EncoderOutput, LoadOptions, T5Model, DEFAULT_MAX_INPUT_TOKENS};
pub use pipeline::{TextGeneration, Tokenizer, T0};
pub use score::{ChoiceScore, Classification, ClassifyItem};
pub use t0_kernels::PackDType;
