//! Load options shared by the commands that run a model: the input-length limit, the memory
//! check, and the `T0_KERNELS` check.

use anyhow::{bail, Result};
use t0_model::{LoadOptions, PackDType, T5Model};

/// Options of every command that loads a model.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Longest input in tokens: a longer prompt is an error (attention time and memory grow with
    /// the square of the length).
    #[arg(long, default_value_t = t0_model::DEFAULT_MAX_INPUT_TOKENS, value_parser = parse_limit)]
    pub max_input_tokens: usize,
    /// Load even when this machine seems not to have the memory the weights need.
    #[arg(long)]
    pub no_memory_check: bool,
    /// For a model written by `t0 convert`: copy the packed weights into memory of their own
    /// (2 MiB pages where the OS gives them) instead of reading them in place from the map.
    #[arg(long)]
    pub copy_packed: bool,
}

fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number of tokens")),
    }
}

impl LoadArgs {
    /// The load options, after checking that a kernel set forced with `T0_KERNELS` can run here.
    pub fn options(&self, dtype: Option<PackDType>) -> Result<LoadOptions> {
        check_kernels_env()?;
        Ok(LoadOptions {
            dtype,
            check_memory: !self.no_memory_check,
            max_input_tokens: self.max_input_tokens,
            map_packed: !self.copy_packed,
            ..LoadOptions::default()
        })
    }
}

/// `T0_KERNELS` naming kernels this CPU cannot run (or no kernels at all) is an error here,
/// rather than the library's warning and automatic choice: someone who forces a kernel set on
/// the command line wants to know it is not in use.
pub fn check_kernels_env() -> Result<()> {
    let Ok(want) = std::env::var("T0_KERNELS") else { return Ok(()) };
    let want = want.trim();
    if want.is_empty() {
        return Ok(());
    }
    let here: Vec<&str> = t0_kernels::backend::available().iter().map(|k| k.name()).collect();
    if here.contains(&want) {
        return Ok(());
    }
    if ["scalar", "avx2", "avx512", "avx512-bf16dot", "avx512-bf16widen", "neon"].contains(&want) {
        bail!("T0_KERNELS={want}: this CPU cannot run the {want} kernels (it can run: {})", here.join(", "));
    }
    bail!("T0_KERNELS={want:?} is not a kernel set (expected one of: {})", here.join(", "))
}

/// Print a warning naming the tensors of the weight files that the model did not use.
pub fn warn_unused(model: &T5Model) {
    let unused = model.unused_tensors();
    if unused.is_empty() {
        return;
    }
    const SHOWN: usize = 5;
    let mut list = unused.iter().take(SHOWN).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if unused.len() > SHOWN {
        list.push_str(&format!(" and {} more", unused.len() - SHOWN));
    }
    eprintln!(
        "warning: {}: {} tensor(s) in the weights are not used by the model (is config.json the right one?): {list}",
        model.dir().display(),
        unused.len()
    );
}
