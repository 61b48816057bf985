//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading a tokenizer.
///
/// Encoding and decoding never fail: every `&str` encodes and every id list decodes (ids the
/// vocabulary does not have are skipped). Each variant names the file (or `<bytes>` for
/// in-memory input) and, where there is one, the field and the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A model directory holds neither `spiece.model` nor `tokenizer.json`.
    #[error(
        "no tokenizer in {dir}: it has neither spiece.model nor tokenizer.json \
         (text input needs one of them; token ids can still be given directly)"
    )]
    NotFound {
        /// The directory that was searched.
        dir: PathBuf,
    },

    /// `spiece.model` is not a valid SentencePiece `ModelProto`.
    #[error("{origin}: malformed protobuf at byte {offset}: {reason}")]
    Protobuf {
        /// The file (or `<bytes>`).
        origin: String,
        /// Byte offset of the problem in the file.
        offset: usize,
        /// What is wrong.
        reason: String,
    },

    /// A JSON file (`tokenizer.json`, `tokenizer_config.json`) is not valid JSON.
    #[error("{origin}: invalid JSON: {source}")]
    Json {
        /// The file.
        origin: String,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// A required field is absent.
    #[error("{origin}: missing field `{field}`")]
    MissingField {
        /// The file.
        origin: String,
        /// Dotted path of the field, e.g. `model.vocab`.
        field: String,
    },

    /// A field holds a value that cannot be right.
    #[error("{origin}: field `{field}` = {value}: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// Dotted path of the field.
        field: String,
        /// The value found (shortened when long).
        value: String,
        /// Why it is rejected.
        reason: String,
    },

    /// A valid value that this crate does not implement (e.g. a BPE model, an NFKC normalizer).
    #[error("{origin}: field `{field}` = {value} is not supported by t0-tokenizer")]
    Unsupported {
        /// The file.
        origin: String,
        /// Dotted path of the field.
        field: String,
        /// The unsupported value.
        value: String,
    },
}

impl TokenizerError {
    pub(crate) fn invalid(
        origin: &str,
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        TokenizerError::Invalid {
            origin: origin.to_string(),
            field: field.into(),
            value: shorten(&value.to_string()),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(origin: &str, field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        TokenizerError::Unsupported {
            origin: origin.to_string(),
            field: field.into(),
            value: shorten(&value.to_string()),
        }
    }

    pub(crate) fn missing(origin: &str, field: impl Into<String>) -> Self {
        TokenizerError::MissingField { origin: origin.to_string(), field: field.into() }
    }
}

/// Keeps error messages readable when a value is huge (a whole vocabulary, a base64 blob).
fn shorten(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_shortened() {
        let e = TokenizerError::invalid("x.json", "model.vocab", "é".repeat(500), "bad");
        let msg = e.to_string();
        assert!(msg.len() < 250, "{msg}");
        assert!(msg.contains("(1000 bytes)"), "{msg}");
    }
}
