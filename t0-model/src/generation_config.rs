//! [`GenerationConfig`]: how to generate, with HF's option names and defaults; loadable from a
//! model's `generation_config.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{ModelError, Result};

/// When beam search stops (HF's `early_stopping`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EarlyStopping {
    /// `true`: stop as soon as `num_beams` hypotheses are finished; `false` (HF's default):
    /// stop when the best running beam, at its current length, cannot beat the worst finished one.
    Bool(bool),
    /// `"never"`: canonical beam search, stop only when no improvement is possible at all.
    #[serde(with = "never")]
    Never,
}

mod never {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("never")
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "never" => Ok(()),
            other => Err(serde::de::Error::custom(format!("expected true, false or \"never\", found {other:?}"))),
        }
    }
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping::Bool(false)
    }
}

/// Generation options. Field names and defaults are HF's `GenerationConfig`'s (except that the
/// budget is `max_new_tokens`, default 20, rather than `max_length`).
///
/// ```
/// use t0_model::GenerationConfig;
/// let cfg: GenerationConfig = serde_json::from_str(r#"{"num_beams": 4, "max_new_tokens": 12}"#).unwrap();
/// assert_eq!(cfg.num_beams, 4);
/// assert_eq!(cfg.length_penalty, 1.0);
/// cfg.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// Most tokens to generate after the decoder start token (at least 1).
    pub max_new_tokens: usize,
    /// `</s>` is suppressed until this many tokens were generated.
    pub min_new_tokens: usize,
    /// HF's older budget, counting the decoder start token; used only when a
    /// `generation_config.json` sets it and not `max_new_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Beam width (1 = greedy or sampling).
    pub num_beams: usize,
    /// Sequences returned per input (≤ `num_beams`).
    pub num_return_sequences: usize,
    /// Beam scores are divided by `length ** length_penalty`.
    pub length_penalty: f32,
    /// Beam search stopping rule.
    pub early_stopping: EarlyStopping,
    /// Forbid repeating any n-gram of this size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Sample instead of taking the most likely token.
    pub do_sample: bool,
    /// Softmax temperature when sampling.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens when sampling (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` when sampling.
    pub top_p: f32,
    /// Penalise tokens already in the output (HF's CTRL-style penalty; 1 = off).
    pub repetition_penalty: f32,
    /// Seed of the sampler (see [`crate::sampling::Rng`]).
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 20,
            min_new_tokens: 0,
            max_length: None,
            num_beams: 1,
            num_return_sequences: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::default(),
            no_repeat_ngram_size: 0,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

/// The widest beam search [`GenerationConfig::validate`] accepts.
pub const MAX_BEAMS: usize = 1024;

impl GenerationConfig {
    /// Greedy decoding of at most `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self { max_new_tokens, ..Self::default() }
    }

    /// The defaults a model directory sets: its `generation_config.json` read with
    /// [`GenerationConfig::from_file`], or [`GenerationConfig::default`] when it has none
    /// (as HF's `generate` starts from the model's generation config).
    ///
    /// ```
    /// use t0_model::GenerationConfig;
    /// let dir = std::env::temp_dir().join(format!("t0-gencfg-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// assert_eq!(GenerationConfig::from_model_dir(&dir)?, GenerationConfig::default());
    /// std::fs::write(dir.join("generation_config.json"), r#"{"num_beams": 4, "max_length": 64}"#)?;
    /// let cfg = GenerationConfig::from_model_dir(&dir)?;
    /// assert_eq!((cfg.num_beams, cfg.max_new_tokens), (4, 63)); // max_length counts the start token
    /// std::fs::write(dir.join("generation_config.json"), r#"{"temperature": null, "min_length": 3}"#)?;
    /// let cfg = GenerationConfig::from_model_dir(&dir)?;
    /// assert_eq!((cfg.temperature, cfg.min_new_tokens), (1.0, 2)); // null: not set
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_model_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("generation_config.json");
        if path.is_file() {
            Self::from_file(&path)
        } else {
            Ok(Self::default())
        }
    }

    /// Read a `generation_config.json` (unknown keys are ignored, as HF's own are many).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.into(), source })?;
        let mut v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Config {
            path: path.into(),
            key: "(file)".into(),
            reason: format!("not valid JSON: {e}"),
        })?;
        // `null` means "not set", as in HF.
        if let serde_json::Value::Object(m) = &mut v {
            m.retain(|_, x| !x.is_null());
        }
        let mut cfg: Self = serde_json::from_value(v.clone()).map_err(|e| ModelError::Config {
            path: path.into(),
            key: "(file)".into(),
            reason: e.to_string(),
        })?;
        if v.get("max_new_tokens").is_none() {
            if let Some(ml) = cfg.max_length {
                cfg.max_new_tokens = ml.saturating_sub(1).max(1);
            }
        }
        // HF's `min_length` counts the decoder start token too.
        if v.get("min_new_tokens").is_none() {
            if let Some(ml) = v.get("min_length").and_then(serde_json::Value::as_u64) {
                cfg.min_new_tokens = (ml as usize).saturating_sub(1);
            }
        }
        Ok(cfg)
    }

    /// Check the values; the error names the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ModelError::InvalidArgument(msg));
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1".into());
        }
        if self.num_beams == 0 {
            return bad("num_beams must be at least 1".into());
        }
        if self.num_beams > MAX_BEAMS {
            // Each beam is a decoder row with its own logits and KV cache: a width in the
            // thousands would take minutes per token and gigabytes, never a better answer.
            return bad(format!("num_beams must be at most {MAX_BEAMS}, found {}", self.num_beams));
        }
        if self.num_return_sequences == 0 || self.num_return_sequences > self.num_beams {
            return bad(format!(
                "num_return_sequences must be between 1 and num_beams ({}), found {}",
                self.num_beams, self.num_return_sequences
            ));
        }
        if self.do_sample && self.num_beams > 1 {
            return bad("beam sampling (do_sample with num_beams > 1) is not supported".into());
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(format!("temperature must be a positive number, found {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], found {}", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(format!("repetition_penalty must be a positive number, found {}", self.repetition_penalty));
        }
        if !self.length_penalty.is_finite() {
            return bad(format!("length_penalty must be finite, found {}", self.length_penalty));
        }
        Ok(())
    }
}
