//! `t0 tokenize`.

use anyhow::{Context, Result};
use t0_model::Tokenizer;

/// Options of `t0 tokenize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model (or any directory with spiece.model or tokenizer.json).
    #[command(flatten)]
    model: super::model_arg::ModelArg,
    /// The text.
    text: String,
    /// Leave out the trailing `</s>`.
    #[arg(long)]
    no_eos: bool,
    /// Print {"ids": [...], "tokens": [...]}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let dir = a.model.dir()?;
    let tok = Tokenizer::from_dir(&dir).with_context(|| format!("loading the tokenizer of {}", a.model.model))?;
    let ids = tok.encode_with(&a.text, !a.no_eos);
    let tokens = tok.tokens(&ids);
    if a.json {
        println!("{}", serde_json::json!({ "ids": ids, "tokens": tokens }));
    } else {
        for (id, t) in ids.iter().zip(&tokens) {
            println!("{id:>6}  {t}");
        }
    }
    Ok(())
}
