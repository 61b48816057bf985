//! `t0 convert`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use t0_model::convert::{convert, temp_dir};

use super::load_args::LoadArgs;
use super::model_arg::ModelArg;

/// Options of `t0 convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Weight dtype to convert to: f32, bf16 or int8 (per-channel scales).
    #[arg(long, value_parser = super::parse_dtype)]
    dtype: t0_model::PackDType,
    /// Output model directory: must not exist; written under a temporary name and renamed
    /// into place when complete.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    load: LoadArgs,
}

pub fn run(a: Args) -> Result<()> {
    let src = a.model.dir()?;
    let options = a.load.options(Some(a.dtype))?;
    #[cfg(unix)]
    {
        let tmp = temp_dir(&a.out);
        let file = t0_tensor::SafeTensorsWriter::temp_path(&tmp.join("model.safetensors"));
        crate::cleanup_on_signal::install(&file, Some(&tmp));
    }
    #[cfg(not(unix))]
    let _ = temp_dir;
    let start = std::time::Instant::now();
    let bar = crate::ui::bar(0, "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}");
    let progress = |name: &str, done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    };
    let report = convert(&src, a.dtype, &a.out, options, &progress)
        .with_context(|| format!("converting {} to {}", a.model.model, a.out.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({}: {} packed weights, {} other tensors, {:.2} GB, {} more files) in {:.1} s",
        report.out.display(),
        t0_model::weights::dtype_name(report.dtype),
        report.packed,
        report.copied,
        report.bytes as f64 / 1e9,
        report.files.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
