//! `--input FILE.jsonl` for `t0 generate` and `t0 score`: one request per line, results as JSONL
//! in the same order. Consecutive requests with the same options are decoded together as one
//! batch; a bad line is reported with its line number and the other lines still get results.
//! Scoring lines may name their correct choice (`"label"`): each result then says whether the
//! best choice was it, and the run ends with the accuracy on stderr (T0's evaluation).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use t0_model::{GenerationConfig, T0};

/// Most decoder positions (choice rows × longest choice) scored in one batch: bounds the logits
/// a batch of scoring lines holds at once (vocabulary × 4 bytes each, 128 MiB for T5's 32128).
const MAX_SCORED_POSITIONS: usize = 1024;

/// Most padding a batch of scoring lines may add to the encoder's work, in percent of its real
/// tokens: batching saves 0-25% on a CPU (more in f32, where a bigger GEMM runs faster, than in
/// int8 on AVX2, where it does not), so more padding than this would cost more than it saves.
const MAX_PADDING_PERCENT: usize = 10;

/// `--batch-size` of `t0 generate` and `t0 score`.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct BatchSize {
    /// With --input: the most lines decoded together as one batch (lines of similar length
    /// go together when scoring).
    #[arg(long = "batch-size", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024), default_value_t = 16)]
    size: u16,
}

/// One line of the input file. Options not given fall back to the command line's.
#[derive(Debug, Deserialize)]
struct Request {
    prompt: String,
    #[serde(default)]
    choices: Option<Vec<String>>,
    #[serde(default)]
    length_normalize: Option<bool>,
    /// The correct choice: its index in `choices` (from 0) or its text.
    #[serde(default)]
    label: Option<serde_json::Value>,
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

/// Run every request and write one JSON line per request (in order) to stdout, decoding up to
/// `batch.size` lines together. Returns the number of failed lines.
pub fn run_file(
    t0: &T0,
    path: &Path,
    base: &GenerationConfig,
    scoring: bool,
    quiet: bool,
    batch: BatchSize,
) -> Result<usize> {
    let batch_size = usize::from(batch.size);
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
            // This line and the scoring lines right after it.
            let mut j = i;
            while matches!(&requests[j..], [Ok(r), ..] if scoring || r.choices.is_some()) {
                j += 1;
            }
            score_lines(t0, &requests, i..j, batch_size, &mut outcomes, &bar);
            i = j;
            continue;
        }
        let cfg = match generation_config(base, req) {
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
        while j < requests.len() && batch.len() < batch_size {
            match &requests[j] {
                Ok(r) if r.choices.is_none() && generation_config(base, r).ok().as_ref() == Some(&cfg) => {
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
    let (mut failed, mut labelled, mut correct) = (0, 0, 0);
    for (i, o) in outcomes.into_iter().enumerate() {
        let v = match o {
            Some(Ok(v)) => {
                if let Some(c) = v.get("correct").and_then(serde_json::Value::as_bool) {
                    labelled += 1;
                    correct += usize::from(c);
                }
                v
            }
            Some(Err(e)) => {
                failed += 1;
                eprintln!("error: {}: line {}: {e}", path.display(), i + 1);
                serde_json::json!({ "line": i + 1, "error": e })
            }
            None => continue,
        };
        writeln!(out, "{v}")?;
    }
    out.flush()?;
    if labelled > 0 {
        eprintln!("{}", accuracy_line(correct, labelled, requests.len()));
    }
    Ok(failed)
}

/// The summary printed after a file whose scoring lines had labels.
fn accuracy_line(correct: usize, labelled: usize, lines: usize) -> String {
    let mut s = format!("accuracy {:.4}: {correct} of {labelled} labelled lines", correct as f64 / labelled as f64);
    if lines > labelled {
        s += &format!(" ({} of the file's {lines} lines had no label or failed)", lines - labelled);
    }
    s
}

/// A generation line's options on top of the command line's (a label only goes with choices).
fn generation_config(base: &GenerationConfig, req: &Request) -> Result<GenerationConfig, String> {
    if req.label.is_some() {
        return Err("\"label\" names the correct one of the \"choices\", and this line has none".into());
    }
    merged_config(base, &req.options)
}

/// The index of the correct choice named by `label` (an index from 0, or a choice's text).
fn label_index(label: &serde_json::Value, choices: &[String]) -> Result<usize, String> {
    match label {
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(i) if (i as usize) < choices.len() => Ok(i as usize),
            Some(i) => Err(format!("\"label\" {i} is not the index of one of the {} choices (from 0)", choices.len())),
            None => Err(format!("\"label\" {n} is not a choice's index (0, 1, ...)")),
        },
        serde_json::Value::String(t) => choices
            .iter()
            .position(|c| c == t)
            .ok_or_else(|| format!("\"label\" {t:?} is not one of the choices {choices:?}")),
        other => Err(format!("\"label\" must be a choice's index or its text, not {other}")),
    }
}

/// A scoring line, tokenized.
struct Scoring {
    line: usize,
    prompt: Vec<u32>,
    choices: Vec<Vec<u32>>,
    label: Option<usize>,
    length_normalize: bool,
}

/// Tokenize scoring line `line` (as [`T0::classify_text`] does) and resolve its label.
fn prepare(t0: &T0, line: usize, req: &Request) -> std::result::Result<Scoring, String> {
    let Some(choices) = &req.choices else {
        return Err("no \"choices\" to score".into());
    };
    let label = req.label.as_ref().map(|l| label_index(l, choices)).transpose()?;
    let prompt = t0.encode(&req.prompt).map_err(line_error)?;
    let choices = choices.iter().map(|c| t0.encode_choice(c)).collect::<t0_model::Result<_>>().map_err(line_error)?;
    Ok(Scoring { line, prompt, choices, label, length_normalize: req.length_normalize.unwrap_or(false) })
}

/// Score the lines `lines` (all scoring requests), several at a time: lines of similar prompt
/// length go together, up to `batch_size` lines, [`MAX_SCORED_POSITIONS`] decoder positions and
/// [`MAX_PADDING_PERCENT`] of padding per batch. A batch that fails is scored again line by
/// line, so that each line gets its own error.
fn score_lines(
    t0: &T0,
    requests: &[std::result::Result<Request, String>],
    lines: std::ops::Range<usize>,
    batch_size: usize,
    outcomes: &mut [Option<Outcome>],
    bar: &ProgressBar,
) {
    let mut ready = Vec::new();
    for line in lines {
        let Ok(req) = &requests[line] else { continue };
        match prepare(t0, line, req) {
            Ok(s) => ready.push(s),
            Err(e) => {
                outcomes[line] = Some(Err(e));
                bar.inc(1);
            }
        }
    }
    ready.sort_by_key(|s| (s.length_normalize, s.prompt.len()));
    let mut rest = &ready[..];
    while !rest.is_empty() {
        let (mut n, mut rows, mut t, mut tokens) = (0, 0, 0, 0);
        while let Some(s) = rest.get(n) {
            let t_with = s.choices.iter().map(Vec::len).max().unwrap_or(1).max(t);
            // Sorted by length, so this line's prompt is the batch's longest: every prompt
            // would be padded to it.
            let padded = (n + 1) * s.prompt.len();
            let fits = n < batch_size
                && s.length_normalize == rest[0].length_normalize
                && (rows + s.choices.len()) * t_with <= MAX_SCORED_POSITIONS
                && padded * 100 <= (tokens + s.prompt.len()) * (100 + MAX_PADDING_PERCENT);
            if n > 0 && !fits {
                break;
            }
            (n, rows, t, tokens) = (n + 1, rows + s.choices.len(), t_with, tokens + s.prompt.len());
        }
        let (chunk, tail) = rest.split_at(n);
        let items: Vec<t0_model::ClassifyItem> =
            chunk.iter().map(|s| (s.prompt.as_slice(), s.choices.as_slice())).collect();
        match t0.model().classify_batch(&items, chunk[0].length_normalize) {
            Ok(rs) => {
                for (s, r) in chunk.iter().zip(rs) {
                    outcomes[s.line] = Some(Ok(scored(s, &r)));
                }
            }
            Err(_) => {
                for s in chunk {
                    let r = t0.model().classify(&s.prompt, &s.choices, s.length_normalize);
                    outcomes[s.line] = Some(r.map(|r| scored(s, &r)).map_err(line_error));
                }
            }
        }
        bar.inc(n as u64);
        rest = tail;
    }
}

/// A scoring line's result object.
fn scored(s: &Scoring, r: &t0_model::Classification) -> serde_json::Value {
    let scores: Vec<f32> = r.choices.iter().map(|c| if s.length_normalize { c.mean } else { c.sum }).collect();
    let mut v = serde_json::json!({ "scores": scores, "best": r.best });
    if let Some(l) = s.label {
        v["label"] = l.into();
        v["correct"] = (r.best == l).into();
    }
    v
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_by_index_or_text() {
        let choices = vec!["yes".to_string(), "no".to_string(), "maybe".to_string()];
        assert_eq!(label_index(&json!(0), &choices), Ok(0));
        assert_eq!(label_index(&json!(2), &choices), Ok(2));
        assert_eq!(label_index(&json!("no"), &choices), Ok(1));
        let err = |v| label_index(&v, &choices).unwrap_err();
        assert!(err(json!(3)).contains("3 is not the index of one of the 3 choices"));
        assert!(err(json!(-1)).contains("-1 is not a choice's index"));
        assert!(err(json!(1.5)).contains("1.5 is not a choice's index"));
        assert!(err(json!("No")).contains("\"No\" is not one of the choices"));
        assert!(err(json!(true)).contains("must be a choice's index or its text, not true"));
    }

    #[test]
    fn a_label_rides_along_without_being_an_option() {
        let r: Request = serde_json::from_str(r#"{"prompt": "p", "choices": ["a", "b"], "label": 1}"#).unwrap();
        assert_eq!(r.label, Some(json!(1)));
        assert!(r.options.is_empty());
        let g: Request = serde_json::from_str(r#"{"prompt": "p", "label": 1, "max_new_tokens": 2}"#).unwrap();
        let e = generation_config(&GenerationConfig::greedy(4), &g).unwrap_err();
        assert!(e.contains("this line has none"), "{e}");
    }

    #[test]
    fn accuracy_summary() {
        assert_eq!(accuracy_line(2, 3, 3), "accuracy 0.6667: 2 of 3 labelled lines");
        assert_eq!(
            accuracy_line(1, 1, 4),
            "accuracy 1.0000: 1 of 1 labelled lines (3 of the file's 4 lines had no label or failed)"
        );
    }
}
