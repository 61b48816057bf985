//! `t0 bench`: load time, encoder time, decode time per step, tokens/s and peak RSS.

use std::time::Instant;

use anyhow::{bail, Result};
use t0_model::sampling::Rng;

use super::profile::Profiled;

/// Options of `t0 bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: super::model_arg::ModelArg,
    /// Decoder rows decoded together (each with its own random input).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Input length in tokens (random ids).
    #[arg(long, default_value_t = 64)]
    input_tokens: usize,
    /// Decode steps to time (EOS is never chosen: the steps are forced).
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Timed repetitions of the encoder.
    #[arg(long, default_value_t = 3)]
    encoder_runs: usize,
    /// Seed for the random input ids.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Convert the weights at load: f32, bf16 or int8 (default: as stored, from the memory map);
    /// with --device f32, bf16 or f16 (default f32).
    #[arg(long, value_parser = super::device::parse_weight_dtype)]
    dtype: Option<super::device::WeightDType>,
    /// Where to run: `cpu` (the CPU model), `cuda` / `cuda:N` (a GPU, builds with feature
    /// `cuda`; `--dtype` f32, bf16 or f16), or `host` (the GPU's code path on host memory, for checking
    /// it on machines without one)
    #[arg(long, value_parser = super::device::parse_device, default_value = "cpu")]
    device: super::device::Device,
    /// Also print how the time of an encoder pass, of the cross K/V and of a decode step splits
    /// between ops.
    #[arg(long)]
    profile: bool,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also time rank classification: one prompt scored against 1 and against K answer choices
    /// (random ids, `--choice-tokens` each), so the cost of K choices can be compared with one
    #[arg(long, value_name = "K")]
    score_choices: Option<usize>,
    /// Tokens per answer choice for `--score-choices` (the last one is `</s>`)
    #[arg(long, default_value_t = 4)]
    choice_tokens: usize,
    #[command(flatten)]
    load: super::load_args::LoadArgs,
}

/// A `kB` field of a `/proc/self` file (Linux), in bytes.
fn proc_kb(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/{file}")).ok()?;
    let kb: u64 = text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kb("status", "VmHWM:")
}

/// Bytes of this process's anonymous memory backed by transparent huge pages (Linux).
fn huge_page_bytes() -> Option<u64> {
    proc_kb("smaps_rollup", "AnonHugePages:")
}

/// `batch` random inputs of `input_tokens` ids ending in `</s>` (ids 2.., past pad and eos, when
/// the vocabulary has them), and the end of the id range drawn from.
fn random_inputs(model: &t0_model::T5Model, a: &Args, rng: &mut Rng) -> (Vec<Vec<u32>>, u64) {
    let c = model.config();
    let (lo, hi) = if c.vocab_size > 2 { (2, c.vocab_size.min(32000) as u64) } else { (0, c.vocab_size as u64) };
    let inputs = (0..a.batch)
        .map(|_| {
            let mut v: Vec<u32> = (0..a.input_tokens - 1).map(|_| (lo + rng.next_u64() % (hi - lo)) as u32).collect();
            v.push(c.eos_token_id);
            v
        })
        .collect();
    (inputs, hi)
}

/// `t0 bench --device host|cuda[:N]`: the model loaded as stored (memory map), uploaded, then
/// [`super::device::Bench`].
fn run_device(a: Args) -> Result<()> {
    if a.profile || a.score_choices.is_some() {
        bail!("--profile and --score-choices time the CPU model: leave them out with --device");
    }
    let dtype = super::device::device_dtype(a.dtype)?;
    let t = Instant::now();
    let model = a.model.load_model(a.load.options(None)?)?;
    let load_s = t.elapsed().as_secs_f64();
    let (inputs, _) = random_inputs(&model, &a, &mut Rng::new(a.seed));
    let job = super::device::Bench { dtype, inputs: &inputs, runs: a.encoder_runs, new_tokens: a.new_tokens };
    let r = super::device::on_device(a.device, &model, job)?;
    let median_ms = r.step_ms[r.step_ms.len() / 2];
    let gbs = r.step_weight_bytes as f64 / (r.decode_ms_per_step * 1e-3) / 1e9;
    let share = r.peak_bandwidth_gbs.map(|p| gbs / p);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": a.model.model,
                "device": r.backend,
                "dtype": format!("{dtype:?}").to_lowercase(),
                "batch": a.batch,
                "input_tokens": a.input_tokens,
                "new_tokens": a.new_tokens,
                "load_s": load_s,
                "upload_s": r.upload_s,
                "encoder_ms": r.encoder_ms,
                "decode_ms_per_step": r.decode_ms_per_step,
                "decode_ms_median": median_ms,
                "decode_ms_min": r.step_ms[0],
                "tokens_per_s": r.tokens_per_s,
                "replayed_steps": r.replayed_steps,
                "step_weight_bytes": r.step_weight_bytes,
                "decode_gb_per_s": gbs,
                "peak_bandwidth_gb_per_s": r.peak_bandwidth_gbs,
                "bandwidth_share": share,
            })
        );
    } else {
        println!("model            {}", a.model.model);
        println!("device           {} ({})", r.backend, format!("{dtype:?}").to_lowercase());
        println!("load             {load_s:.2} s (+ {:.2} s upload)", r.upload_s);
        println!("encoder          {:.1} ms ({} x {} tokens)", r.encoder_ms, a.batch, a.input_tokens);
        println!(
            "decode           {:.2} ms/step (batch {}; median {median_ms:.2}, min {:.2}; {} of {} steps replayed)",
            r.decode_ms_per_step, a.batch, r.step_ms[0], r.replayed_steps, a.new_tokens
        );
        println!("throughput       {:.1} tokens/s", r.tokens_per_s);
        match (r.peak_bandwidth_gbs, share) {
            (Some(p), Some(s)) => {
                println!("weights read     {gbs:.0} GB/s per step ({:.0}% of {p:.0} GB/s)", s * 100.0)
            }
            _ => println!("weights read     {gbs:.1} GB/s per step"),
        }
    }
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    if a.batch == 0 || a.input_tokens == 0 || a.new_tokens == 0 {
        bail!("--batch, --input-tokens and --new-tokens must be at least 1");
    }
    if a.batch > 4096 {
        bail!("--batch {} is more than 4096 rows", a.batch);
    }
    if a.device != super::device::Device::Cpu {
        return run_device(a);
    }
    let t = Instant::now();
    let mut opts = a.load.options(super::device::cpu_dtype(a.dtype)?)?;
    let profiler: Option<&'static Profiled> =
        a.profile.then(|| &*Box::leak(Box::new(Profiled::new(t0_kernels::select()))));
    if let Some(p) = profiler {
        opts.kernels = p;
    }
    let model = a.model.load_model(opts)?;
    super::load_args::warn_unused(&model);
    let load_s = t.elapsed().as_secs_f64();
    let c = model.config();
    let mut rng = Rng::new(a.seed);
    let (inputs, hi) = random_inputs(&model, &a, &mut rng);
    let refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();

    // Encoder: one warm-up, then the mean of the timed runs (the profile leaves the warm-up
    // out: its first touch of the mapped embedding rows and cold caches are not a pass's cost).
    let reset = || profiler.iter().for_each(|p| p.reset());
    let (enc, encoder_ms) = mean_ms_after(a.encoder_runs, || Ok(model.encode(&refs)?), reset)?;
    let runs = a.encoder_runs.max(1) as f64;
    if let Some(p) = profiler {
        print_profile(p, "per encoder pass", runs);
    }
    // The cross-attention keys and values of every decoder layer, once per input (CTranslate2
    // and HF compute them in their first decode step): timed apart, as the rest of the prompt's
    // cost.
    let (cross, cross_kv_ms) = mean_ms_after(a.encoder_runs, || Ok(model.cross_cache(&enc)), reset)?;
    if let Some(p) = profiler {
        print_profile(p, "per cross K/V (every decoder layer)", runs);
    }

    // Decode: a warm-up step in a throwaway state, then `new_tokens` timed steps, each row
    // feeding back its argmax (EOS excluded).
    let start = vec![c.decoder_start_token_id; a.batch];
    let mut warm = model.decoder_state(cross.clone(), (0..a.batch).collect())?;
    model.decode(&mut warm, &start, 1)?;
    drop(warm);
    let mut state = model.decoder_state(cross, (0..a.batch).collect())?;
    state.reserve(a.new_tokens + 1);
    let mut next = start;
    let vocab = c.vocab_size;
    if let Some(p) = profiler {
        p.reset();
    }
    let t = Instant::now();
    let mut step_ms = Vec::with_capacity(a.new_tokens);
    for _ in 0..a.new_tokens {
        let ts = Instant::now();
        let logits = model.decode_step(&mut state, &next, 1)?;
        step_ms.push(ts.elapsed().as_secs_f64() * 1e3);
        for (r, tok) in next.iter_mut().enumerate() {
            let row = &mut logits[r * vocab..(r + 1) * vocab];
            row[c.eos_token_id as usize] = f32::NEG_INFINITY;
            let mut best = 0;
            for (i, &x) in row.iter().enumerate() {
                if x > row[best] {
                    best = i;
                }
            }
            *tok = best as u32;
        }
    }
    let decode_s = t.elapsed().as_secs_f64();
    let decode_ms_per_step = decode_s * 1e3 / a.new_tokens as f64;
    let tokens_per_s = (a.batch * a.new_tokens) as f64 / decode_s;
    step_ms.sort_by(f64::total_cmp);

    // Rank classification: the prompt is encoded once per call; K choices decode as one batch.
    let score = match a.score_choices {
        Some(k) if k > 0 && a.choice_tokens > 0 => {
            let choices: Vec<Vec<u32>> = (0..k)
                .map(|_| {
                    let mut v: Vec<u32> =
                        (0..a.choice_tokens - 1).map(|_| 2 + (rng.next_u64() % (hi - 2)) as u32).collect();
                    v.push(c.eos_token_id);
                    v
                })
                .collect();
            let time = |choices: &[Vec<u32>]| -> Result<f64> {
                model.classify(&inputs[0], choices, false)?;
                let t = Instant::now();
                for _ in 0..3 {
                    model.classify(&inputs[0], choices, false)?;
                }
                Ok(t.elapsed().as_secs_f64() * 1e3 / 3.0)
            };
            let one = time(&choices[..1])?;
            let all = time(&choices)?;
            Some((k, one, all))
        }
        Some(_) => bail!("--score-choices and --choice-tokens must be at least 1"),
        None => None,
    };
    let median_ms = step_ms[step_ms.len() / 2];
    let peak = peak_rss_bytes().unwrap_or(0);
    let huge = huge_page_bytes().unwrap_or(0);
    if let Some(p) = profiler {
        print_profile(p, "per decode step", a.new_tokens as f64);
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": a.model.model,
                "kernels": model.kernels().name(),
                "dtype": a.dtype.map_or("as stored".to_string(), |d| d.to_string()),
                "batch": a.batch,
                "input_tokens": a.input_tokens,
                "new_tokens": a.new_tokens,
                "weight_bytes": model.weight_bytes(),
                "load_s": load_s,
                "encoder_ms": encoder_ms,
                "cross_kv_ms": cross_kv_ms,
                "decode_ms_per_step": decode_ms_per_step,
                "decode_ms_median": median_ms,
                "decode_ms_min": step_ms[0],
                "tokens_per_s": tokens_per_s,
                "peak_rss_bytes": peak,
                "huge_page_bytes": huge,
                "score_choices": score.map(|(k, _, _)| k),
                "score_one_choice_ms": score.map(|(_, one, _)| one),
                "score_all_choices_ms": score.map(|(_, _, all)| all),
            })
        );
    } else {
        println!("model            {}", a.model.model);
        println!("kernels          {}", model.kernels().name());
        println!("weights          {:.2} GB", model.weight_bytes() as f64 / 1e9);
        println!("load             {load_s:.2} s");
        println!("encoder          {encoder_ms:.1} ms ({} x {} tokens)", a.batch, a.input_tokens);
        println!("cross K/V        {cross_kv_ms:.1} ms (every decoder layer's, once per input)");
        println!(
            "decode           {decode_ms_per_step:.1} ms/step (batch {}; median {median_ms:.1}, min {:.1})",
            a.batch, step_ms[0]
        );
        println!("throughput       {tokens_per_s:.1} tokens/s");
        println!("peak RSS         {:.2} GB", peak as f64 / 1e9);
        println!("huge pages       {:.2} GB", huge as f64 / 1e9);
        if let Some((k, one, all)) = score {
            println!("score 1 choice   {one:.1} ms");
            println!("score {k} choices  {all:.1} ms ({:.2}x one choice)", all / one);
        }
    }
    Ok(())
}

/// Print the profiler's per-op split divided by `n` runs to stderr, then zero it. Ops that run
/// on several threads at once (a feed-forward block's per-row activation) add up every thread's
/// time.
fn print_profile(p: &Profiled, what: &str, n: f64) {
    eprintln!("{what}:");
    for (op, ms, calls) in p.report() {
        eprintln!("  {op:<12} {:>8.2} ms  {:>6.0} calls", ms / n, calls as f64 / n);
    }
    p.reset();
}

/// Runs `f` once to warm up, then `runs` times (at least once); returns the last result and the
/// mean milliseconds of the timed runs.
pub fn mean_ms<T>(runs: usize, f: impl FnMut() -> Result<T>) -> Result<(T, f64)> {
    mean_ms_after(runs, f, || {})
}

/// [`mean_ms`], calling `warmed` between the warm-up and the timed runs.
fn mean_ms_after<T>(runs: usize, mut f: impl FnMut() -> Result<T>, warmed: impl FnOnce()) -> Result<(T, f64)> {
    let mut out = f()?;
    warmed();
    let t = Instant::now();
    for _ in 0..runs.max(1) {
        out = f()?;
    }
    Ok((out, t.elapsed().as_secs_f64() * 1e3 / runs.max(1) as f64))
}
