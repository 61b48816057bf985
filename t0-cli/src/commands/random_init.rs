//! `t0 random-init`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use t0_model::random_init::write_random_model;
use t0_model::T5Config;
use t0_tensor::DType;

/// Options of `t0 random-init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// HF config.json giving the shapes (e.g. bigscience/T0_3B's).
    #[arg(long)]
    config: PathBuf,
    /// Output model directory (created; files are written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the generator (same seed, same bytes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Weight dtype: f32 or bf16 (layer norms stay f32).
    #[arg(long, default_value = "f32")]
    dtype: DType,
}

pub fn run(a: Args) -> Result<()> {
    let text = std::fs::read_to_string(&a.config).with_context(|| format!("reading {}", a.config.display()))?;
    let config = T5Config::from_json_str(&text, &a.config)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    write_random_model(&config, &text, &a.out, a.seed, a.dtype, |name, done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    })?;
    bar.finish_and_clear();
    eprintln!("wrote {} ({} parameters, {})", a.out.display(), config.num_parameters(), a.dtype);
    Ok(())
}
