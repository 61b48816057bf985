#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! An exact T5 / T0 tokenizer that reads SentencePiece's `spiece.model` directly, in Rust.
//!
//! It gives the ids of HF transformers' `T5TokenizerFast` (what `AutoTokenizer` returns for
//! `bigscience/T0_3B`): the precompiled-charsmap normalisation with HF's grapheme quirks,
//! right-strip and `" {2,}"` → `▁`, the `Metaspace` pre-tokenizer (`▁` prepended to every
//! stretch of text), unigram Viterbi with the model's scores and HF's tie-breaking, fused
//! `<unk>`s, `</s>` appended, and `<pad>`, `</s>`, `<unk>`, `<extra_id_0>`…`<extra_id_99>`
//! (ids 32099 down to 32000) recognised whole in the input. [`Tokenizer::decode`] gives HF's
//! fast decode and [`Tokenizer::decode_legacy`] the slow sentencepiece one. A `tokenizer.json`
//! with a Unigram model loads too.
//!
//! ```
//! # fn main() -> Result<(), t0_tokenizer::TokenizerError> {
//! # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
//! use t0_tokenizer::Tokenizer;
//! let tok = Tokenizer::from_dir(&dir)?; // spiece.model (or tokenizer.json)
//! let ids = tok.encode("Is this review positive or negative? Review: this is the best cast iron skillet you will ever buy");
//! assert_eq!(&ids[..6], &[27, 7, 48, 1132, 1465, 42]);
//! assert_eq!(*ids.last().unwrap(), tok.eos_id());
//! assert_eq!(tok.tokens(&ids[..2]), ["▁I", "s"]);
//! assert_eq!(tok.decode(&ids, true), "Is this review positive or negative? Review: this is the best cast iron skillet you will ever buy");
//! # Ok(()) }
//! ```
//!
//! Encoding never fails and never panics, whatever the input; loading returns a
//! [`TokenizerError`] that names the file, the field and the value at fault.

#![warn(missing_docs)]

mod added;
mod cache;
mod config;
mod decode;
mod error;
mod json;
pub mod model_proto;
mod normalizer;
mod pre_tokenizer;
mod spiece;
mod tokenizer;
mod trie;
mod unigram;

pub use error::TokenizerError;
pub use tokenizer::{Batch, Tokenizer};
