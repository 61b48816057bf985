//! `--model DIR|ORG/NAME [--revision REV]`, shared by every subcommand that reads a model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use t0_model::{LoadOptions, T5Model, T0};

/// Which model to use.
#[derive(Debug, clap::Args)]
pub struct ModelArg {
    /// Model directory (config.json + safetensors [+ spiece.model]), or a hub id such as
    /// bigscience/T0_3B found in the Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else
    /// ~/.cache/huggingface/hub).
    #[arg(long, value_name = "DIR|ORG/NAME")]
    pub model: String,
    /// Revision of a hub id: a branch or tag downloaded into the cache, or a commit hash
    /// [default: main].
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
}

impl ModelArg {
    /// The model directory: the one given, or the HF cache snapshot of the hub id.
    pub fn dir(&self) -> Result<PathBuf> {
        Ok(t0_model::hub::resolve_model(&self.model, self.revision.as_deref())?)
    }

    /// Load the model, with a progress bar over its weights.
    pub fn load_model(&self, options: LoadOptions) -> Result<T5Model> {
        let dir = self.dir()?;
        let start = std::time::Instant::now();
        tracing::info!(dir = %dir.display(), dtype = ?options.dtype, kernels = options.kernels.name(), "loading");
        let bar = crate::ui::bar(0, "loading {bar:30} {pos}/{len} tensors {msg}");
        let progress = |name: &str, done: usize, total: usize| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(name.to_string());
        };
        let model =
            T5Model::load_with_progress(&dir, options, &progress).with_context(|| format!("loading {}", self.model))?;
        bar.finish_and_clear();
        tracing::info!(seconds = start.elapsed().as_secs_f64(), weight_bytes = model.weight_bytes(), "loaded");
        Ok(model)
    }

    /// Load the model and its tokenizer (if the directory has one). Tokenizer files that do not
    /// load (an unsupported kind, a damaged file) are a warning: token ids still work, and text
    /// input fails with the reason ([`T0::with_model_lenient`]).
    pub fn load(&self, options: LoadOptions) -> Result<T0> {
        let t0 = T0::with_model_lenient(self.load_model(options)?);
        if let Some(reason) = t0.tokenizer_error() {
            eprintln!("warning: the tokenizer of {} did not load ({reason}): use token ids", self.model);
        }
        Ok(t0)
    }
}
