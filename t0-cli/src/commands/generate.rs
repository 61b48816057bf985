//! `t0 generate`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use t0_model::{GenerateOptions, T5Model};

/// Options of `t0 generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory (config.json + model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Input token ids, comma-separated (e.g. 27,7,48,1). Repeat for several inputs.
    #[arg(long = "input-ids", value_parser = super::parse_ids, required = true)]
    input_ids: Vec<Vec<u32>>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 20)]
    max_new_tokens: usize,
    /// `</s>` is not generated before this many tokens.
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    /// Print one JSON object per input: {"token_ids": [...], "token_logprobs": [...]}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    if let Some(i) = a.input_ids.iter().position(Vec::is_empty) {
        bail!("--input-ids number {} is empty: give at least one id (an empty prompt is `1`, i.e. `</s>`)", i + 1);
    }
    let model = T5Model::from_dir(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let opts = GenerateOptions { max_new_tokens: a.max_new_tokens, min_new_tokens: a.min_new_tokens };
    let out = model.generate(&a.input_ids, &opts)?;
    for (input, g) in a.input_ids.iter().zip(&out) {
        if a.json {
            let v = serde_json::json!({ "token_ids": g.token_ids, "token_logprobs": g.token_logprobs });
            println!("{v}");
        } else {
            let total: f32 = g.token_logprobs.iter().sum();
            println!("input    {input:?}");
            println!("output   {:?}", g.token_ids);
            println!("logprob  {total:.4} over {} tokens", g.token_ids.len());
        }
    }
    Ok(())
}
