//! `--input FILE.jsonl` for `t0 generate` and `t0 score`: one request per line, results as JSONL
//! in the same order. Consecutive requests with the same options are decoded together as one
//! batch; a bad line is reported with its line number and the other lines still get results.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use t0_model::{GenerationConfig, T0};

/// Most requests decoded together in one batch.
const MAX_BATCH: usize = 16;

/// One line of the input file. Options not given fall back to the command line's.
#[derive(Debug, Deserialize)]
struct Request {
    prompt: String,
    #[serde(default)]
    choices: Option<Vec<String>>,
    #[serde(default)]
    length_normalize: Option<bool>,
    #[serde(flatten)]
    options: BTreeMap<String, serde_json::Value>,
}

/// Either a result object or an error for one line.
type Outcome = std::result::Result<serde_json::Value, String>;

fn progress(total: u64, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} lines  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Read the lines; a line that is not valid UTF-8 or JSON becomes an error outcome.
fn read_requests(path: &Path) -> Result<Vec<std::result::Result<Request, String>>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let bytes = line.with_context(|| format!("reading {}", path.display()))?;
        let parsed = match std::str::from_utf8(&bytes) {
            Err(e) => Err(format!("not valid UTF-8 ({e})")),
            Ok(s) if s.trim().is_empty() => continue,
            Ok(s) => serde_json::from_str::<Request>(s).map_err(|e| format!("not a valid request: {e}")),
        };
        out.push(parsed);
    }
    Ok(out)
}

fn merged_config(
    base: &GenerationConfig,
    opts: &BTreeMap<String, serde_json::Value>,
) -> Result<GenerationConfig, String> {
    let mut v = serde_json::to_value(base).map_err(|e| e.to_string())?;
    for (k, x) in opts {
        if v.get(k).is_none() && k != "max_length" {
            return Err(format!("unknown option `{k}`"));
        }
        v[k] = x.clone();
    }
    let cfg: GenerationConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// Run every request and write one JSON line per request (in order) to stdout.
/// Returns the number of failed lines.
pub fn run_file(t0: &T0, path: &Path, base: &GenerationConfig, scoring: bool, quiet: bool) -> Result<usize> {
    let requests = read_requests(path)?;
    let bar = progress(requests.len() as u64, quiet);
    let start = std::time::Instant::now();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; requests.len()];
    let mut tokens = 0usize;
    // Group consecutive generation requests with equal options into batches.
    let mut i = 0;
    while i < requests.len() {
        let req = match &requests[i] {
            Err(e) => {
                outcomes[i] = Some(Err(e.clone()));
                i += 1;
                bar.inc(1);
                continue;
            }
            Ok(r) => r,
        };
        if scoring || req.choices.is_some() {
            outcomes[i] = Some(score_one(t0, req));
            i += 1;
            bar.inc(1);
            continue;
        }
        let cfg = match merged_config(base, &req.options) {
            Ok(c) => c,
            Err(e) => {
                outcomes[i] = Some(Err(e));
                i += 1;
                bar.inc(1);
                continue;
            }
        };
        let mut batch = vec![i];
        let mut j = i + 1;
        while j < requests.len() && batch.len() < MAX_BATCH {
            match &requests[j] {
                Ok(r) if r.choices.is_none() && merged_config(base, &r.options).ok().as_ref() == Some(&cfg) => {
                    batch.push(j);
                    j += 1;
                }
                _ => break,
            }
        }
        let mut inputs = Vec::new();
        let mut ok_rows = Vec::new();
        for &k in &batch {
            let Ok(r) = &requests[k] else { continue };
            match t0.encode(&r.prompt).and_then(|ids| t0.model().check_input(0, &ids).map(|()| ids)) {
                Ok(ids) => {
                    inputs.push(ids);
                    ok_rows.push(k);
                }
                Err(e) => outcomes[k] = Some(Err(line_error(e))),
            }
        }
        match t0.model().generate(&inputs, &cfg).map_err(anyhow::Error::from).and_then(|o| Ok(t0.with_text(o)?)) {
            Ok(out) => {
                for (k, seqs) in ok_rows.iter().zip(out) {
                    let vals: Vec<serde_json::Value> = seqs
                        .iter()
                        .map(|s| {
                            tokens += s.generated.token_ids.len();
                            let mut v = serde_json::json!({
                                "token_ids": s.generated.token_ids,
                                "token_logprobs": s.generated.token_logprobs,
                                "text": s.text,
                            });
                            if let Some(sc) = s.generated.score {
                                v["score"] = sc.into();
                            }
                            v
                        })
                        .collect();
                    let v = if vals.len() == 1 { vals[0].clone() } else { serde_json::json!({ "sequences": vals }) };
                    outcomes[*k] = Some(Ok(v));
                }
            }
            Err(e) => {
                for &k in &ok_rows {
                    outcomes[k] = Some(Err(e.to_string()));
                }
            }
        }
        bar.inc(batch.len() as u64);
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{:.1} tokens/s", tokens as f64 / secs));
        i = j;
    }
    bar.finish_and_clear();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0;
    for (i, o) in outcomes.into_iter().enumerate() {
        let v = match o {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                failed += 1;
                eprintln!("error: {}: line {}: {e}", path.display(), i + 1);
                serde_json::json!({ "line": i + 1, "error": e })
            }
            None => continue,
        };
        writeln!(out, "{v}")?;
    }
    Ok(failed)
}

fn score_one(t0: &T0, req: &Request) -> Outcome {
    let Some(choices) = &req.choices else {
        return Err("no \"choices\" to score".into());
    };
    let refs: Vec<&str> = choices.iter().map(String::as_str).collect();
    let norm = req.length_normalize.unwrap_or(false);
    let r = t0.classify_text(&req.prompt, &refs, norm).map_err(line_error)?;
    let scores: Vec<f32> = r.choices.iter().map(|c| if norm { c.mean } else { c.sum }).collect();
    Ok(serde_json::json!({ "scores": scores, "best": r.best }))
}

/// An error about one line's prompt, worded for that line.
fn line_error(e: t0_model::ModelError) -> String {
    match e {
        t0_model::ModelError::InputTooLong { tokens, limit, .. } => {
            format!("the prompt has {tokens} tokens, more than the limit of {limit} (--max-input-tokens)")
        }
        e => e.to_string(),
    }
}
