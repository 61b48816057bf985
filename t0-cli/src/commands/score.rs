//! `t0 score`: rank classification of answer choices.

use std::path::PathBuf;

use anyhow::{bail, Result};
use t0_model::T0;

/// Options of `t0 score`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: super::model_arg::ModelArg,
    /// Convert the linear weights at load: f32, bf16 or int8 (weight-only, per-channel scales);
    /// with --device also f16 (f16 weights, f32 activations). Default: use them as stored,
    /// straight from the memory map (on a device: f32).
    #[arg(long, value_parser = super::device::parse_weight_dtype)]
    dtype: Option<super::device::WeightDType>,
    /// The prompt (text; or use --input-ids).
    prompt: Option<String>,
    /// The prompt as token ids, comma-separated.
    // A `Vec` of lists (clap reads `Option<Vec<_>>` as several values of one option): given
    // more than once is an error below.
    #[arg(long = "input-ids", value_parser = super::parse_ids)]
    input_ids: Vec<Vec<u32>>,
    /// An answer choice (text, encoded with `</s>`). Repeat for each choice.
    #[arg(long = "choice")]
    choices: Vec<String>,
    /// An answer choice as token ids (include the final 1 = `</s>` yourself). Repeat.
    #[arg(long = "choice-ids", value_parser = super::parse_ids)]
    choice_ids: Vec<Vec<u32>>,
    /// A JSONL file of requests (`{"prompt": ..., "choices": [...]}` per line, optionally
    /// `"label"`: the correct choice's index or text); results as JSONL, then the accuracy over
    /// the labelled lines on stderr.
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    batch: super::jobs::BatchSize,
    /// Rank by the mean log-prob per token instead of the sum.
    #[arg(long)]
    length_normalize: bool,
    /// Encode the text prompt without the trailing `</s>`.
    #[arg(long)]
    no_eos: bool,
    /// Print {"scores": [...], "best": i}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    load: super::load_args::LoadArgs,
    /// Where to run: cpu (default), host (the device path on host memory) or `cuda[:N]` (feature
    /// `cuda`). Off the CPU: `--dtype` f32, bf16 or f16, no `--input FILE`.
    #[arg(long, value_parser = super::device::parse_device, default_value = "cpu")]
    device: super::device::Device,
}

pub fn run(a: Args) -> Result<()> {
    let on_device = a.device != super::device::Device::Cpu;
    if on_device && a.input.is_some() {
        bail!("--input FILE runs on the CPU model: leave out --device");
    }
    if let Some(path) = &a.input {
        let t0 = load(&a)?;
        let quiet = !crate::ui::show_progress();
        let failed = super::jobs::run_file(&t0, path, &Default::default(), true, quiet, a.batch)?;
        if failed > 0 {
            bail!("{failed} line(s) of {} failed (see the error objects in the output)", path.display());
        }
        return Ok(());
    }
    if a.choices.is_empty() && a.choice_ids.is_empty() {
        bail!("no answer choices: give --choice TEXT (or --choice-ids) at least once");
    }
    // On a device the model is loaded as stored and converted as it is uploaded.
    let dtype = if on_device { Some(super::device::device_dtype(a.dtype)?) } else { None };
    let t0 = if on_device { a.model.load(a.load.options(None)?)?.with_eos(!a.no_eos) } else { load(&a)? };
    if a.input_ids.len() > 1 {
        bail!(
            "--input-ids was given {} times: score one prompt at a time (or use --input FILE.jsonl)",
            a.input_ids.len()
        );
    }
    let prompt = match (&a.prompt, a.input_ids.first()) {
        (Some(p), None) => t0.encode(p)?,
        (None, Some(ids)) => ids.clone(),
        (Some(_), Some(_)) => bail!("give either a text PROMPT or --input-ids, not both"),
        (None, None) => bail!("no prompt: give a text PROMPT or --input-ids"),
    };
    let mut choices = Vec::new();
    for c in &a.choices {
        choices.push(t0.encode_choice(c)?);
    }
    choices.extend(a.choice_ids.iter().cloned());
    let r = match dtype {
        None => t0.model().classify(&prompt, &choices, a.length_normalize)?,
        Some(dtype) => {
            let job = super::device::Classify {
                dtype,
                prompt: &prompt,
                choices: &choices,
                length_normalize: a.length_normalize,
            };
            super::device::on_device(a.device, t0.model(), job)?
        }
    };
    let scores: Vec<f32> = r.choices.iter().map(|c| if a.length_normalize { c.mean } else { c.sum }).collect();
    if a.json {
        println!("{}", serde_json::json!({ "scores": scores, "best": r.best }));
    } else {
        let names: Vec<String> =
            a.choices.iter().cloned().chain(a.choice_ids.iter().map(|ids| format!("{ids:?}"))).collect();
        for (i, (name, s)) in names.iter().zip(&scores).enumerate() {
            let mark = if i == r.best { "*" } else { " " };
            println!("{mark} {s:>12.5}  {name}");
        }
    }
    Ok(())
}

fn load(a: &Args) -> Result<T0> {
    let options = a.load.options(super::device::cpu_dtype(a.dtype)?)?;
    let t0 = a.model.load(options)?.with_eos(!a.no_eos);
    super::load_args::warn_unused(t0.model());
    Ok(t0)
}
