//! Shared helpers of the integration tests: reading the HF parity fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use t0_tensor::SafeTensorsFile;

/// `tests/fixtures` of this repository: of the checkout the tests were built in, or, when that
/// is gone (a test binary carried to another machine, as `tools/gpu_check.sh` does), of the
/// checkout the binary runs in.
pub fn fixtures() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("tests").join("fixtures")
    }
}

/// Every fixture model directory (those with an `expected.json`), sorted by name.
pub fn fixture_models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join("models"))
        .expect("tests/fixtures/models exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    v.sort();
    assert!(v.len() >= 4, "expected at least four fixture models, found {}", v.len());
    v
}

/// HF's recorded outputs for one fixture model.
pub struct Expected {
    pub json: Value,
    pub arrays: SafeTensorsFile,
}

impl Expected {
    pub fn load(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
        let json = serde_json::from_str(&text).expect("expected.json is JSON");
        let arrays = SafeTensorsFile::open(&dir.join("expected.safetensors")).expect("expected.safetensors");
        Self { json, arrays }
    }

    pub fn cases(&self) -> &Vec<Value> {
        self.json["cases"].as_array().expect("cases")
    }

    /// A recorded f32 array, flattened.
    pub fn array(&self, name: &str) -> Vec<f32> {
        self.arrays.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}")).to_f32_vec()
    }
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("float list").iter().map(|x| x.as_f64().expect("float") as f32).collect()
}

/// Largest absolute difference; panics with context when lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32], what: &str) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    let d = max_abs_diff(a, b, what);
    assert!(d <= tol, "{what}: max abs diff {d:e} > {tol:e}");
}

/// Teacher-forced logits of a fixture case (`[decoder tokens, vocab]`): the case's input
/// encoded, then its `teacher.decoder_input_ids` decoded in one pass.
pub fn teacher_logits(model: &t0_model::T5Model, case: &Value) -> Vec<f32> {
    let input = ids(&case["input_ids"]);
    let teacher = ids(&case["teacher"]["decoder_input_ids"]);
    let cross = model.cross_cache(&model.encode(&[&input]).unwrap());
    let mut state = model.decoder_state(cross, vec![0]).unwrap();
    model.decode(&mut state, &teacher, teacher.len()).unwrap()
}

/// Checks `generate` (inputs, settings → per input, its sequences) against HF's greedy and beam
/// search with logits processors at work, recorded for the fixture model in `dir`
/// (`expected_processors.json`: repetition penalties above and below 1, n-gram bans, minimum
/// lengths; the beams also with length penalties 0, 2, −1 and 0.5 and early stopping true or
/// "never"): per setting, all of the model's cases in one call, greedy then beam search (4
/// beams, 2 returned); ids identical, log-probs within `tol`, a beam score (a sum of log-probs
/// over `length^length_penalty`) within `tol` per token so summed and scaled.
pub fn check_processor_runs(
    dir: &Path,
    tol: f32,
    what: &str,
    generate: impl Fn(&[Vec<u32>], &t0_model::GenerationConfig) -> Vec<Vec<t0_model::Generated>>,
) {
    let text = std::fs::read_to_string(dir.join("expected_processors.json")).expect("expected_processors.json");
    let exp: Value = serde_json::from_str(&text).expect("expected_processors.json is JSON");
    let runs = exp["runs"].as_array().expect("runs");
    assert!(!runs.is_empty(), "{what}: no processor runs recorded");
    for run in runs {
        let p = &run["processors"];
        let cfg = t0_model::GenerationConfig {
            max_new_tokens: 12,
            repetition_penalty: p["repetition_penalty"].as_f64().unwrap_or(1.0) as f32,
            no_repeat_ngram_size: p["no_repeat_ngram_size"].as_u64().unwrap_or(0) as usize,
            min_new_tokens: p["min_new_tokens"].as_u64().unwrap_or(0) as usize,
            ..Default::default()
        };
        let cases = run["cases"].as_array().expect("cases");
        let inputs: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["input_ids"])).collect();
        let greedy = generate(&inputs, &cfg);
        let b = &run["beam_options"];
        let lp = b["length_penalty"].as_f64().unwrap_or(1.0) as f32;
        let early_stopping = match &b["early_stopping"] {
            Value::Bool(v) => t0_model::EarlyStopping::Bool(*v),
            Value::String(s) if s == "never" => t0_model::EarlyStopping::Never,
            _ => t0_model::EarlyStopping::Bool(false),
        };
        let beam_cfg = t0_model::GenerationConfig {
            num_beams: 4,
            num_return_sequences: 2,
            length_penalty: lp,
            early_stopping,
            ..cfg.clone()
        };
        let beams = generate(&inputs, &beam_cfg);
        for (i, case) in cases.iter().enumerate() {
            let at = format!("{what} processors {p}, beams {b}, case {i}");
            let g = &case["greedy"];
            assert_eq!(greedy[i][0].token_ids, ids(&g["token_ids"]), "{at}: greedy ids");
            assert_close(&greedy[i][0].token_logprobs, &floats(&g["token_logprobs"]), tol, &format!("{at}: greedy"));
            let b = &case["beam"];
            let want_scores = floats(&b["sequence_scores"]);
            for (j, want) in b["token_ids"].as_array().expect("beams").iter().enumerate() {
                assert_eq!(beams[i][j].token_ids, ids(want), "{at}: beam {j} ids");
                let s = beams[i][j].score.expect("a beam score");
                // The start token counts in the length.
                let len = (beams[i][j].token_ids.len() + 1) as f32;
                let bar = tol * len.powf(1.0 - lp).max(1.0);
                assert!((s - want_scores[j]).abs() <= bar, "{at}: beam {j} score {s} vs {}", want_scores[j]);
            }
        }
    }
}
