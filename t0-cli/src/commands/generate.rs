//! `t0 generate`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use t0_model::{EarlyStopping, Generated, GenerationConfig, Tokenizer};

/// Options of `t0 generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: super::model_arg::ModelArg,
    /// Convert the linear weights at load: f32, bf16 or int8 (weight-only, per-channel scales);
    /// with --device also f16 (f16 weights, f32 activations). Default: use them as stored,
    /// straight from the memory map (on a device: f32).
    #[arg(long, value_parser = super::device::parse_weight_dtype)]
    dtype: Option<super::device::WeightDType>,
    /// Text prompts (need the model's tokenizer). Each is one input.
    prompts: Vec<String>,
    /// Input token ids, comma-separated (e.g. 27,7,48,1). Repeat for several inputs.
    #[arg(long = "input-ids", value_parser = super::parse_ids)]
    input_ids: Vec<Vec<u32>>,
    /// A JSONL file of requests (`{"prompt": ..., <options>}` per line); results are printed as
    /// JSONL in the same order.
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    batch: super::jobs::BatchSize,
    /// Encode text prompts without the trailing `</s>` (as T0's evaluation scripts do).
    #[arg(long)]
    no_eos: bool,
    #[command(flatten)]
    gen: GenArgs,
    #[command(flatten)]
    load: super::load_args::LoadArgs,
    /// Print one JSON object per sequence: {"token_ids": [...], "token_logprobs": [...], "text": "..."}.
    #[arg(long)]
    json: bool,
    /// Where to run: cpu (default), host (the device path on host memory) or `cuda[:N]` (feature
    /// `cuda`). Off the CPU: `--dtype` f32, bf16 or f16, no `--input FILE`.
    #[arg(long, value_parser = super::device::parse_device, default_value = "cpu")]
    device: super::device::Device,
}

/// Generation options shared by the commands that generate. Each one left out takes the
/// model's `generation_config.json` value, else the default shown.
#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// Most tokens to generate [default: 20, or the model's generation_config.json].
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// `</s>` is not generated before this many tokens [default: 0].
    #[arg(long)]
    min_new_tokens: Option<usize>,
    /// Beam search with this many beams [default: 1].
    #[arg(long)]
    num_beams: Option<usize>,
    /// Sequences returned per input (beam search) [default: 1].
    #[arg(long)]
    num_return_sequences: Option<usize>,
    /// Beam scores are divided by length ** length_penalty (negative: shorter sequences win)
    /// [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    length_penalty: Option<f32>,
    /// Beam search stopping rule: false (HF's default), true or never.
    #[arg(long, value_parser = parse_early_stopping)]
    early_stopping: Option<EarlyStopping>,
    /// Forbid repeating n-grams of this size [default: 0].
    #[arg(long)]
    no_repeat_ngram_size: Option<usize>,
    /// Sample instead of greedy decoding (implied by --temperature, --top-k, --top-p and --seed).
    #[arg(long)]
    do_sample: bool,
    /// Sampling temperature [default: 1].
    #[arg(long)]
    temperature: Option<f32>,
    /// Sample among the k most likely tokens (0 = all) [default: 50].
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample among the most likely tokens whose probability adds up to p [default: 1].
    #[arg(long)]
    top_p: Option<f32>,
    /// Seed of the sampler (same seed, same output) [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Penalise tokens already generated (1 = off) [default: 1].
    #[arg(long)]
    repetition_penalty: Option<f32>,
}

fn parse_early_stopping(s: &str) -> Result<EarlyStopping, String> {
    match s {
        "true" => Ok(EarlyStopping::Bool(true)),
        "false" => Ok(EarlyStopping::Bool(false)),
        "never" => Ok(EarlyStopping::Never),
        _ => Err(format!("`{s}` is not true, false or never")),
    }
}

impl GenArgs {
    /// The options given, over `base` (the model's `generation_config.json`, or the defaults).
    pub fn config(&self, base: &GenerationConfig) -> Result<GenerationConfig> {
        let sampling = self.do_sample
            || self.temperature.is_some()
            || self.top_k.is_some()
            || self.top_p.is_some()
            || self.seed.is_some();
        let b = base;
        let cfg = GenerationConfig {
            max_new_tokens: self.max_new_tokens.unwrap_or(b.max_new_tokens),
            min_new_tokens: self.min_new_tokens.unwrap_or(b.min_new_tokens),
            max_length: None,
            num_beams: self.num_beams.unwrap_or(b.num_beams),
            num_return_sequences: self.num_return_sequences.unwrap_or(b.num_return_sequences),
            length_penalty: self.length_penalty.unwrap_or(b.length_penalty),
            early_stopping: self.early_stopping.unwrap_or(b.early_stopping),
            no_repeat_ngram_size: self.no_repeat_ngram_size.unwrap_or(b.no_repeat_ngram_size),
            do_sample: sampling || b.do_sample,
            temperature: self.temperature.unwrap_or(b.temperature),
            top_k: self.top_k.unwrap_or(b.top_k),
            top_p: self.top_p.unwrap_or(b.top_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(b.repetition_penalty),
            seed: self.seed.unwrap_or(b.seed),
        };
        if cfg.max_new_tokens == 0 {
            bail!("--max-new-tokens must be at least 1");
        }
        cfg.validate().map_err(|e| anyhow::anyhow!("{}", e.to_string().replace('_', "-")).context("invalid option"))?;
        Ok(cfg)
    }
}

pub fn run(a: Args) -> Result<()> {
    // The model's generation_config.json (read before the weights, so bad options fail fast).
    let dir = a.model.dir()?;
    let base = GenerationConfig::from_model_dir(&dir).with_context(|| format!("loading {}", dir.display()))?;
    let cfg = a.gen.config(&base)?;
    if a.prompts.is_empty() && a.input_ids.is_empty() && a.input.is_none() {
        bail!("nothing to generate from: give a text PROMPT, --input-ids or --input FILE.jsonl");
    }
    if let Some(i) = a.input_ids.iter().position(Vec::is_empty) {
        bail!("--input-ids number {} is empty: give at least one id (an empty prompt is `1`, i.e. `</s>`)", i + 1);
    }
    if a.device != super::device::Device::Cpu {
        return run_device(a, &cfg);
    }
    let options = a.load.options(super::device::cpu_dtype(a.dtype)?)?;
    let t0 = a.model.load(options)?.with_eos(!a.no_eos);
    super::load_args::warn_unused(t0.model());
    if let Some(path) = &a.input {
        let quiet = !crate::ui::show_progress();
        let failed = super::jobs::run_file(&t0, path, &cfg, false, quiet, a.batch)?;
        if failed > 0 {
            bail!("{failed} line(s) of {} failed (see the error objects in the output)", path.display());
        }
        if a.prompts.is_empty() && a.input_ids.is_empty() {
            return Ok(());
        }
    }
    let inputs = collect_inputs(&t0, &a)?;
    let tokenizer = t0.tokenizer().ok();

    // Streaming: one input, no beams, human output: print text as it comes.
    let stream = !a.json && inputs.len() == 1 && cfg.num_beams == 1;
    let mut shown = 0usize;
    let mut so_far: Vec<u32> = Vec::new();
    let out = t0.model().generate_streaming(&inputs, &cfg, |_, tok| {
        if !stream {
            return;
        }
        so_far.push(tok);
        if let Some(tk) = tokenizer {
            let text = tk.decode(&so_far, true);
            if text.len() > shown && text.is_char_boundary(shown) {
                print!("{}", &text[shown..]);
                let _ = std::io::stdout().flush();
                shown = text.len();
            }
        }
    })?;
    if stream {
        if tokenizer.is_some() {
            println!();
        } else {
            println!("{:?}", out[0][0].token_ids);
        }
        return Ok(());
    }
    print_results(&inputs, &out, tokenizer, a.json);
    Ok(())
}

/// Prints each input's sequences: text (or ids without a tokenizer), or with `json` one object
/// per sequence.
fn print_results(inputs: &[Vec<u32>], out: &[Vec<Generated>], tokenizer: Option<&Tokenizer>, json: bool) {
    for (input, seqs) in inputs.iter().zip(out) {
        for g in seqs {
            let text = tokenizer.map(|tk| tk.decode(&g.token_ids, true));
            if json {
                let mut v = serde_json::json!({ "token_ids": g.token_ids, "token_logprobs": g.token_logprobs });
                if let Some(t) = &text {
                    v["text"] = t.clone().into();
                }
                if let Some(s) = g.score {
                    v["score"] = s.into();
                }
                println!("{v}");
            } else {
                match &text {
                    Some(t) => println!("{t}"),
                    None => println!("{input:?} -> {:?}", g.token_ids),
                }
            }
        }
    }
}

/// `t0 generate --device host|cuda[:N]`: the model loaded as stored (memory map), uploaded, then
/// generation of all inputs on the device ([`super::device::Generate`]), printed as on the CPU.
fn run_device(a: Args, cfg: &GenerationConfig) -> Result<()> {
    if a.input.is_some() {
        bail!("--input FILE runs on the CPU model: leave out --device");
    }
    let dtype = super::device::device_dtype(a.dtype)?;
    let t0 = a.model.load(a.load.options(None)?)?.with_eos(!a.no_eos);
    let inputs = collect_inputs(&t0, &a)?;
    let job = super::device::Generate { dtype, inputs: &inputs, cfg };
    let out = super::device::on_device(a.device, t0.model(), job)?;
    print_results(&inputs, &out, t0.tokenizer().ok(), a.json);
    Ok(())
}

/// The text prompts, encoded, then the `--input-ids`, in that order.
fn collect_inputs(t0: &t0_model::T0, a: &Args) -> Result<Vec<Vec<u32>>> {
    let mut inputs = Vec::new();
    for p in &a.prompts {
        inputs.push(t0.encode(p)?);
    }
    inputs.extend(a.input_ids.iter().cloned());
    Ok(inputs)
}
