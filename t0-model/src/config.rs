//! [`T5Config`]: the model's hyper-parameters, read from HF's `config.json`.

use std::path::Path;

use serde_json::{Map, Value};
use t0_kernels::activation::Activation;

use crate::{ModelError, Result};

/// The feed-forward block of each layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedForward {
    /// The activation.
    pub activation: Activation,
    /// Gated (`wo(act(wi_0 x) ⊙ wi_1 x)`) or plain (`wo(act(wi x))`).
    pub gated: bool,
}

/// T5 hyper-parameters, with HF's names and defaults.
///
/// ```
/// let json = r#"{"vocab_size": 32128, "d_model": 2048, "d_kv": 64, "d_ff": 5120,
///   "num_layers": 24, "num_heads": 32, "feed_forward_proj": "gated-gelu",
///   "tie_word_embeddings": false}"#;
/// let c = t0_model::T5Config::from_json_str(json, "config.json".as_ref()).unwrap();
/// assert_eq!(c.num_decoder_layers, 24);
/// assert!(c.feed_forward.gated);
/// assert_eq!(c.inner_dim(), 2048);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct T5Config {
    /// Rows of the embedding table (and of the LM head).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    /// Width of the feed-forward hidden layer.
    pub d_ff: usize,
    /// Encoder layers.
    pub num_layers: usize,
    /// Decoder layers (HF: defaults to `num_layers`).
    pub num_decoder_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets (default 32).
    pub relative_attention_num_buckets: usize,
    /// Distance beyond which buckets stop growing (default 128).
    pub relative_attention_max_distance: usize,
    /// RMS norm epsilon (default 1e-6).
    pub layer_norm_epsilon: f32,
    /// The feed-forward kind (`feed_forward_proj`, default `relu`).
    pub feed_forward: FeedForward,
    /// The original `feed_forward_proj` string.
    pub feed_forward_proj: String,
    /// LM head shares the embedding (when the weights hold no `lm_head.weight` of their own).
    pub tie_word_embeddings: bool,
    /// The decoder output is scaled by `d_model^-0.5` before the LM head (original T5's tied
    /// head). transformers 4.x scales iff `tie_word_embeddings`; transformers 5.x writes
    /// `tie_word_embeddings: true` for every T5 and says whether to scale in
    /// `scale_decoder_outputs`, which is read when present.
    pub scale_decoder_outputs: bool,
    /// First decoder input (default: the pad id, 0).
    pub decoder_start_token_id: u32,
    /// End of sequence (default 1).
    pub eos_token_id: u32,
    /// Padding (default 0).
    pub pad_token_id: u32,
    /// Every self-attention layer has its own relative-position bias table (umT5,
    /// `model_type: "umt5"`); T5 and mT5 have one per stack, in its first layer, shared by all.
    pub bias_per_layer: bool,
}

struct Keys<'a> {
    map: &'a Map<String, Value>,
    path: &'a Path,
}

impl Keys<'_> {
    fn err(&self, key: &str, reason: impl Into<String>) -> ModelError {
        ModelError::Config { path: self.path.to_path_buf(), key: key.to_string(), reason: reason.into() }
    }

    fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a non-negative integer, found {v}"))),
        }
    }

    fn usize_req(&self, key: &str) -> Result<usize> {
        self.usize_opt(key)?.ok_or_else(|| self.err(key, "missing (required for a T5 model)"))
    }

    fn positive(&self, key: &str, v: usize, max: usize) -> Result<usize> {
        if v == 0 {
            return Err(self.err(key, "must be at least 1, found 0"));
        }
        if v > max {
            return Err(self.err(key, format!("{v} is absurdly large (limit {max})")));
        }
        Ok(v)
    }

    fn token_id(&self, key: &str, default: u32) -> Result<u32> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            // HF allows a list of eos ids; the first is the one T5 generates.
            Some(Value::Array(a)) if key == "eos_token_id" && !a.is_empty() => self.id_value(key, &a[0]),
            Some(v) => self.id_value(key, v),
        }
    }

    fn id_value(&self, key: &str, v: &Value) -> Result<u32> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.err(key, format!("expected a token id, found {v}")))
    }
}

impl T5Config {
    /// Read and validate `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.into(), source })?;
        Self::from_json_str(&text, path)
    }

    /// Parse and validate config JSON; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| ModelError::Config {
            path: path.into(),
            key: "(file)".into(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let Value::Object(map) = &value else {
            return Err(ModelError::Config {
                path: path.into(),
                key: "(file)".into(),
                reason: "not a JSON object".into(),
            });
        };
        let k = Keys { map, path };
        // HF's config classes differ in their defaults (a key left out of config.json takes the
        // class's): mT5 and umT5 default to gated-gelu, mT5 to an untied head.
        let model_type = match map.get("model_type") {
            None | Some(Value::Null) => "t5",
            Some(mt) => match mt.as_str() {
                Some(t @ ("t5" | "mt5" | "umt5")) => t,
                _ => {
                    return Err(
                        k.err("model_type", format!("{mt} is not a T5 model (expected \"t5\", \"mt5\" or \"umt5\")"))
                    )
                }
            },
        };
        const BIG: usize = 1 << 20;
        let vocab_size = k.positive("vocab_size", k.usize_req("vocab_size")?, 1 << 24)?;
        let d_model = k.positive("d_model", k.usize_req("d_model")?, 1 << 16)?;
        let d_kv = k.positive("d_kv", k.usize_req("d_kv")?, 1 << 12)?;
        let d_ff = k.positive("d_ff", k.usize_req("d_ff")?, BIG)?;
        let num_layers = k.positive("num_layers", k.usize_req("num_layers")?, 1024)?;
        let num_decoder_layers =
            k.positive("num_decoder_layers", k.usize_opt("num_decoder_layers")?.unwrap_or(num_layers), 1024)?;
        let num_heads = k.positive("num_heads", k.usize_req("num_heads")?, 1024)?;
        if num_heads * d_kv > BIG {
            return Err(k.err("num_heads", format!("num_heads · d_kv = {} is absurdly large", num_heads * d_kv)));
        }
        let buckets = k.usize_opt("relative_attention_num_buckets")?.unwrap_or(32);
        // Below 4 buckets the encoder's exact range is empty and HF's bucket formula divides by zero.
        if !(4..=1 << 16).contains(&buckets) {
            return Err(
                k.err("relative_attention_num_buckets", format!("must be between 4 and 65536, found {buckets}"))
            );
        }
        let max_distance = k.usize_opt("relative_attention_max_distance")?.unwrap_or(128);
        // Buckets grow logarithmically from the exact range (the decoder's: buckets / 2) up to
        // max_distance; at or under it, HF's formula yields negative buckets (an IndexError there).
        if max_distance <= buckets / 2 {
            return Err(k.err(
                "relative_attention_max_distance",
                format!(
                    "must be larger than relative_attention_num_buckets / 2 = {} (where the logarithmic buckets start), found {max_distance}",
                    buckets / 2
                ),
            ));
        }
        let eps = match map.get("layer_norm_epsilon") {
            None | Some(Value::Null) => 1e-6,
            Some(v) => match v.as_f64() {
                Some(x) if x > 0.0 && x < 1.0 => x as f32,
                _ => return Err(k.err("layer_norm_epsilon", format!("expected a small positive number, found {v}"))),
            },
        };
        let proj = match map.get("feed_forward_proj") {
            None | Some(Value::Null) => if model_type == "t5" { "relu" } else { "gated-gelu" }.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(k.err("feed_forward_proj", format!("expected a string, found {v}"))),
        };
        let feed_forward = parse_feed_forward(&proj).ok_or_else(|| {
            k.err(
                "feed_forward_proj",
                format!(
                    "{proj:?} is not supported (expected relu, gated-gelu, gated-silu, gated-relu, silu or gelu_new)"
                ),
            )
        })?;
        let tie_word_embeddings = match map.get("tie_word_embeddings") {
            None | Some(Value::Null) => model_type != "mt5",
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(k.err("tie_word_embeddings", format!("expected true or false, found {v}"))),
        };
        let scale_decoder_outputs = match map.get("scale_decoder_outputs") {
            None | Some(Value::Null) => tie_word_embeddings,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(k.err("scale_decoder_outputs", format!("expected true or false, found {v}"))),
        };
        let pad_token_id = k.token_id("pad_token_id", 0)?;
        let eos_token_id = k.token_id("eos_token_id", 1)?;
        let decoder_start_token_id = k.token_id("decoder_start_token_id", pad_token_id)?;
        for (key, id) in [
            ("pad_token_id", pad_token_id),
            ("eos_token_id", eos_token_id),
            ("decoder_start_token_id", decoder_start_token_id),
        ] {
            if id as usize >= vocab_size {
                return Err(k.err(key, format!("{id} is not below vocab_size {vocab_size}")));
            }
        }
        Ok(Self {
            vocab_size,
            d_model,
            d_kv,
            d_ff,
            num_layers,
            num_decoder_layers,
            num_heads,
            relative_attention_num_buckets: buckets,
            relative_attention_max_distance: max_distance,
            layer_norm_epsilon: eps,
            feed_forward,
            feed_forward_proj: proj,
            tie_word_embeddings,
            scale_decoder_outputs,
            decoder_start_token_id,
            eos_token_id,
            pad_token_id,
            bias_per_layer: model_type == "umt5",
        })
    }

    /// Width of the attention projections, `num_heads · d_kv` (may differ from `d_model`).
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }

    /// Number of parameters (tied tables counted once).
    pub fn num_parameters(&self) -> usize {
        let (d, inner, ff) = (self.d_model, self.inner_dim(), self.d_ff);
        let ffn = if self.feed_forward.gated { 3 * d * ff } else { 2 * d * ff };
        let attn = 4 * d * inner;
        let bias = self.relative_attention_num_buckets * self.num_heads;
        let tables = |layers: usize| if self.bias_per_layer { layers } else { 1 };
        let enc = self.num_layers * (attn + ffn + 2 * d) + tables(self.num_layers) * bias + d;
        let dec = self.num_decoder_layers * (2 * attn + ffn + 3 * d) + tables(self.num_decoder_layers) * bias + d;
        let head = if self.tie_word_embeddings { 0 } else { self.vocab_size * d };
        self.vocab_size * d + enc + dec + head
    }
}

fn parse_feed_forward(proj: &str) -> Option<FeedForward> {
    // HF: `act_info = feed_forward_proj.split("-")`; gated iff it has the form `gated-<act>`;
    // "gated-gelu" means gelu_new (the tanh approximation).
    let (gated, act) = match proj.split_once('-') {
        Some(("gated", act)) => (true, act),
        Some(_) => return None,
        None => (false, proj),
    };
    let activation = match (act, gated) {
        ("relu", _) => Activation::Relu,
        ("gelu", true) | ("gelu_new", _) => Activation::GeluNew,
        ("silu", _) | ("swish", _) => Activation::Silu,
        _ => return None,
    };
    Some(FeedForward { activation, gated })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> T5Config {
        let json = format!(
            r#"{{"vocab_size": 64, "d_model": 8, "d_kv": 4, "d_ff": 12, "num_layers": 2, "num_heads": 2{extra}}}"#
        );
        T5Config::from_json_str(&json, "config.json".as_ref()).unwrap()
    }

    /// A key config.json leaves out takes the default of HF's config class for the model type:
    /// relu and a tied head for T5, gated-gelu for mT5 (untied) and umT5 (tied).
    #[test]
    fn defaults_follow_the_model_type() {
        let (t5, mt5, umt5) = (parse(""), parse(r#", "model_type": "mt5""#), parse(r#", "model_type": "umt5""#));
        assert_eq!((t5.feed_forward_proj.as_str(), t5.tie_word_embeddings, t5.bias_per_layer), ("relu", true, false));
        assert_eq!(
            (mt5.feed_forward_proj.as_str(), mt5.tie_word_embeddings, mt5.bias_per_layer),
            ("gated-gelu", false, false)
        );
        assert_eq!(
            (umt5.feed_forward_proj.as_str(), umt5.tie_word_embeddings, umt5.bias_per_layer),
            ("gated-gelu", true, true)
        );
        // umT5 counts a bias table per layer (2 + 2 tables of 32 buckets × 2 heads), as HF's num_parameters does.
        assert_eq!(
            umt5.num_parameters() - parse(r#", "feed_forward_proj": "gated-gelu""#).num_parameters(),
            2 * 32 * 2
        );
        let bad = T5Config::from_json_str(r#"{"model_type": "bert"}"#, "config.json".as_ref()).unwrap_err();
        assert!(bad.to_string().contains(r#"expected "t5", "mt5" or "umt5""#), "{bad}");
    }
}
