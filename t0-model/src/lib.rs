//! T5 / T0 inference: config, weights, encoder, decoder with KV caches, generation.
//!
//! The forward pass reads top to bottom in [`encoder`] and [`decoder`]; every numeric op goes
//! through the kernels of [`t0_kernels`], chosen once per process (or given in
//! [`LoadOptions`]).
//!
//! ```no_run
//! use t0_model::{GenerateOptions, T5Model};
//! let model = T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
//! let out = model.generate(&[vec![27, 7, 48, 1]], &GenerateOptions { max_new_tokens: 12, min_new_tokens: 0 })?;
//! println!("{:?} {:?}", out[0].token_ids, out[0].token_logprobs);
//! # Ok::<(), t0_model::ModelError>(())
//! ```

pub mod attention;
pub mod cache;
pub mod config;
pub mod decoder;
pub mod encoder;
mod error;
pub mod feed_forward;
pub mod generate;
pub mod linear;
pub mod model;
pub mod position_bias;
pub mod random_init;
pub mod weights;

pub use cache::{CrossCache, DecoderState};
pub use config::T5Config;
pub use error::{ModelError, Result};
pub use generate::{GenerateOptions, Generated};
pub use model::{EncoderOutput, LoadOptions, T5Model};
