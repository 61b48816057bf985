//! The JSON API: request bodies (the CLI's options in snake_case) and the answers (the objects
//! `t0 generate --json` and `t0 score --json` print).

use serde::Deserialize;
use serde_json::{json, Value};
use t0_model::{Classification, EarlyStopping, Generated, GenerationConfig, Tokenizer};

use crate::error::ApiError;

/// Body of `POST /generate`. Every option is optional; the defaults are `t0 generate`'s.
///
/// As on the command line, giving `temperature`, `top_k`, `top_p` or `seed` turns sampling on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// Text prompt (needs the model's tokenizer).
    pub prompt: Option<String>,
    /// The prompt as token ids (instead of `prompt`).
    pub input_ids: Option<Vec<u32>>,
    /// Encode `prompt` without the trailing `</s>` (`--no-eos`).
    #[serde(default)]
    pub no_eos: bool,
    /// Send server-sent events: one `token` event per generated token, then `done`.
    #[serde(default)]
    pub stream: bool,
    /// Most tokens to generate (default 20).
    pub max_new_tokens: Option<usize>,
    /// `</s>` is not generated before this many tokens.
    pub min_new_tokens: Option<usize>,
    /// Beam search with this many beams.
    pub num_beams: Option<usize>,
    /// Sequences returned (beam search).
    pub num_return_sequences: Option<usize>,
    /// Beam scores are divided by length ** length_penalty.
    pub length_penalty: Option<f32>,
    /// Beam search stopping rule: `false`, `true` or `"never"`.
    pub early_stopping: Option<EarlyStopping>,
    /// Forbid repeating n-grams of this size.
    pub no_repeat_ngram_size: Option<usize>,
    /// Sample instead of greedy decoding.
    pub do_sample: Option<bool>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Sample among the k most likely tokens (0 = all).
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens whose probability adds up to p.
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    pub seed: Option<u64>,
    /// Penalise tokens already generated (1 = off).
    pub repetition_penalty: Option<f32>,
}

impl GenerateRequest {
    /// The generation config these options give over `base` (the model's
    /// `generation_config.json`, or the defaults), exactly as `t0 generate`'s flags would,
    /// checked (and `max_new_tokens` at most `max_new_tokens_cap`, `num_beams` at most
    /// `max_beams`). A `max_new_tokens` that only `base` sets is lowered to the cap.
    pub fn config(
        &self,
        base: &GenerationConfig,
        max_new_tokens_cap: usize,
        max_beams: usize,
    ) -> Result<GenerationConfig, ApiError> {
        let mut d = base.clone();
        d.max_new_tokens = d.max_new_tokens.min(max_new_tokens_cap.max(1));
        let sampling = self.do_sample.unwrap_or(d.do_sample)
            || self.temperature.is_some()
            || self.top_k.is_some()
            || self.top_p.is_some()
            || self.seed.is_some();
        let cfg = GenerationConfig {
            max_new_tokens: self.max_new_tokens.unwrap_or(d.max_new_tokens),
            min_new_tokens: self.min_new_tokens.unwrap_or(d.min_new_tokens),
            max_length: None,
            num_beams: self.num_beams.unwrap_or(d.num_beams),
            num_return_sequences: self.num_return_sequences.unwrap_or(d.num_return_sequences),
            length_penalty: self.length_penalty.unwrap_or(d.length_penalty),
            early_stopping: self.early_stopping.unwrap_or(d.early_stopping),
            no_repeat_ngram_size: self.no_repeat_ngram_size.unwrap_or(d.no_repeat_ngram_size),
            do_sample: sampling,
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.unwrap_or(d.top_k),
            top_p: self.top_p.unwrap_or(d.top_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
            seed: self.seed.unwrap_or(d.seed),
        };
        cfg.validate().map_err(|e| ApiError::bad_request(format!("invalid option: {e}")))?;
        if cfg.max_new_tokens > max_new_tokens_cap {
            return Err(ApiError::bad_request(format!(
                "max_new_tokens is {}, above this server's limit of {max_new_tokens_cap}",
                cfg.max_new_tokens
            )));
        }
        if cfg.num_beams > max_beams {
            return Err(ApiError::bad_request(format!(
                "num_beams is {}, above this server's limit of {max_beams} (its --max-batch)",
                cfg.num_beams
            )));
        }
        Ok(cfg)
    }
}

/// Body of `POST /score` (rank classification).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// Text prompt (needs the model's tokenizer).
    pub prompt: Option<String>,
    /// The prompt as token ids (instead of `prompt`).
    pub input_ids: Option<Vec<u32>>,
    /// Answer choices as text (each encoded with `</s>`).
    #[serde(default)]
    pub choices: Vec<String>,
    /// Answer choices as token ids (include the final 1 = `</s>` yourself); scored after `choices`.
    #[serde(default)]
    pub choice_ids: Vec<Vec<u32>>,
    /// Rank by the mean log-prob per token instead of the sum.
    #[serde(default)]
    pub length_normalize: bool,
    /// Encode `prompt` without the trailing `</s>`.
    #[serde(default)]
    pub no_eos: bool,
}

/// Parse a JSON body into `T`, or a 400 whose message says what is wrong and where.
pub fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty: send a JSON object".to_string()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The prompt's token ids from `prompt` or `input_ids` (exactly one of them).
pub fn prompt_ids(
    prompt: Option<&str>,
    input_ids: Option<&[u32]>,
    no_eos: bool,
    tokenizer: Option<&Tokenizer>,
) -> Result<Vec<u32>, ApiError> {
    let ids = match (prompt, input_ids) {
        (Some(p), None) => tokenizer.ok_or_else(no_tokenizer)?.encode_with(p, !no_eos),
        (None, Some(ids)) => ids.to_vec(),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give either `prompt` or `input_ids`, not both".into()))
        }
        (None, None) => return Err(ApiError::bad_request("no prompt: give `prompt` (text) or `input_ids`".into())),
    };
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "the prompt has no tokens (an empty text prompt is `</s>` unless no_eos is set)".into(),
        ));
    }
    Ok(ids)
}

/// A 400 unless `n` tokens of `what` are within `limit`.
pub fn check_len(what: &str, n: usize, limit: usize) -> Result<(), ApiError> {
    if n > limit {
        return Err(ApiError::bad_request(format!(
            "{what} has {n} tokens, above this server's limit of {limit} (--max-input-tokens)"
        )));
    }
    Ok(())
}

fn no_tokenizer() -> ApiError {
    ApiError::bad_request("this model has no tokenizer (spiece.model or tokenizer.json): send `input_ids`".into())
}

/// The answer choices' token ids: `choices` (text, with `</s>`), then `choice_ids`.
pub fn choice_ids(req: &ScoreRequest, tokenizer: Option<&Tokenizer>) -> Result<Vec<Vec<u32>>, ApiError> {
    let mut out = Vec::with_capacity(req.choices.len() + req.choice_ids.len());
    if !req.choices.is_empty() {
        let tok = tokenizer.ok_or_else(no_tokenizer)?;
        out.extend(req.choices.iter().map(|c| tok.encode_with(c, true)));
    }
    out.extend(req.choice_ids.iter().cloned());
    if out.is_empty() {
        return Err(ApiError::bad_request("no answer choices: give `choices` (text) or `choice_ids`".into()));
    }
    if let Some(i) = out.iter().position(Vec::is_empty) {
        return Err(ApiError::bad_request(format!("answer choice {i} has no tokens")));
    }
    Ok(out)
}

/// One sequence as `t0 generate --json` prints it: `token_ids`, `token_logprobs`, `text` (when
/// the model has a tokenizer) and `score` (beam search).
pub fn sequence_json(g: &Generated, tokenizer: Option<&Tokenizer>) -> Value {
    let mut v = json!({ "token_ids": g.token_ids, "token_logprobs": g.token_logprobs });
    if let Some(tk) = tokenizer {
        v["text"] = tk.decode(&g.token_ids, true).into();
    }
    if let Some(s) = g.score {
        v["score"] = s.into();
    }
    v
}

/// The answer to a generate request: the sequence's object, or `{"sequences": [...]}` when
/// several were asked for (as in `t0 generate --input FILE.jsonl`).
pub fn generate_json(seqs: &[Generated], tokenizer: Option<&Tokenizer>) -> Value {
    match seqs {
        [one] => sequence_json(one, tokenizer),
        _ => json!({ "sequences": seqs.iter().map(|g| sequence_json(g, tokenizer)).collect::<Vec<_>>() }),
    }
}

/// The answer to a score request, as `t0 score --json` prints it: `{"scores": [...], "best": i}`.
pub fn score_json(r: &Classification, length_normalize: bool) -> Value {
    let scores: Vec<f32> = r.choices.iter().map(|c| if length_normalize { c.mean } else { c.sum }).collect();
    json!({ "scores": scores, "best": r.best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_options_imply_do_sample() {
        let r: GenerateRequest = serde_json::from_str(r#"{"prompt": "x", "seed": 3}"#).unwrap();
        let cfg = r.config(&GenerationConfig::default(), 100, 4).unwrap();
        assert!(cfg.do_sample);
        assert_eq!(cfg.seed, 3);
        let r: GenerateRequest = serde_json::from_str(r#"{"prompt": "x"}"#).unwrap();
        assert_eq!(r.config(&GenerationConfig::default(), 100, 4).unwrap(), GenerationConfig::default());
    }

    /// The model's generation_config.json gives the defaults; a request's options win, and a
    /// budget only the model sets is lowered to the server's cap.
    #[test]
    fn model_defaults_under_the_request() {
        let base =
            GenerationConfig { num_beams: 3, max_new_tokens: 500, no_repeat_ngram_size: 2, ..Default::default() };
        let r: GenerateRequest = serde_json::from_str(r#"{"prompt": "x"}"#).unwrap();
        let cfg = r.config(&base, 100, 4).unwrap();
        assert_eq!((cfg.num_beams, cfg.max_new_tokens, cfg.no_repeat_ngram_size), (3, 100, 2));
        let r: GenerateRequest =
            serde_json::from_str(r#"{"prompt": "x", "num_beams": 1, "max_new_tokens": 7}"#).unwrap();
        let cfg = r.config(&base, 100, 4).unwrap();
        assert_eq!((cfg.num_beams, cfg.max_new_tokens, cfg.no_repeat_ngram_size), (1, 7, 2));
        let sampled = GenerationConfig { do_sample: true, ..Default::default() };
        let r: GenerateRequest = serde_json::from_str(r#"{"prompt": "x", "do_sample": false}"#).unwrap();
        assert!(!r.config(&sampled, 100, 4).unwrap().do_sample);
    }

    #[test]
    fn bad_options_name_the_option() {
        let r: GenerateRequest = serde_json::from_str(r#"{"prompt": "x", "top_p": 2.0}"#).unwrap();
        assert!(r.config(&GenerationConfig::default(), 100, 4).unwrap_err().message.contains("top_p"));
        let r: GenerateRequest = serde_json::from_str(r#"{"prompt": "x", "max_new_tokens": 101}"#).unwrap();
        assert!(r.config(&GenerationConfig::default(), 100, 4).unwrap_err().message.contains("limit of 100"));
        let r: GenerateRequest = serde_json::from_str(r#"{"prompt": "x", "num_beams": 5}"#).unwrap();
        assert!(r.config(&GenerationConfig::default(), 100, 4).unwrap_err().message.contains("limit of 4"));
        let e = parse_body::<GenerateRequest>(br#"{"promt": "x"}"#).unwrap_err();
        assert!(e.message.contains("unknown field `promt`"), "{}", e.message);
    }
}
