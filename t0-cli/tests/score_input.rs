//! `t0 score --input FILE.jsonl`: every line scored as `t0 score` scores it alone, labels turned
//! into `correct`, and the accuracy over the labelled lines on stderr (T0's evaluation).

mod common;

use common::{fixture, t0};
use serde_json::Value;

const PROMPTS: [&str; 3] = [
    "Suppose \"The cat sat on the mat.\" Can we infer that \"An animal is sitting.\"? Yes, no, or maybe?",
    "Is this review positive or negative? Review: this is the best cast iron skillet you will ever buy",
    "A is the son of B's uncle. What is the family relationship between A and B?",
];
const CHOICES: [&str; 3] = ["Yes", "No", "Maybe"];

/// `t0 score --json` on one prompt: (scores, best).
fn score_alone(model: &str, prompt: &str) -> (Vec<f64>, usize) {
    score_alone_with(model, prompt, &CHOICES, false)
}

fn score_alone_with(model: &str, prompt: &str, choices: &[&str], length_normalize: bool) -> (Vec<f64>, usize) {
    let mut args = vec!["score", "--model", model, "--json", "--no-eos", prompt];
    for c in choices {
        args.extend(["--choice", c]);
    }
    if length_normalize {
        args.push("--length-normalize");
    }
    let (code, out, err) = t0(&args);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let scores = v["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
    (scores, v["best"].as_u64().unwrap() as usize)
}

#[test]
fn labelled_file_gives_scores_correctness_and_accuracy() {
    let dir = fixture();
    let model = dir.to_str().unwrap();
    let alone: Vec<(Vec<f64>, usize)> = PROMPTS.iter().map(|p| score_alone(model, p)).collect();
    // Line 1 labelled with its best choice by index, line 2 with a wrong one by index, line 3
    // with its best by text, line 4 unlabelled, line 5 with a label that names no choice.
    let wrong = (alone[1].1 + 1) % CHOICES.len();
    let lines = [
        serde_json::json!({"prompt": PROMPTS[0], "choices": CHOICES, "label": alone[0].1}),
        serde_json::json!({"prompt": PROMPTS[1], "choices": CHOICES, "label": wrong}),
        serde_json::json!({"prompt": PROMPTS[2], "choices": CHOICES, "label": CHOICES[alone[2].1]}),
        serde_json::json!({"prompt": PROMPTS[0], "choices": CHOICES}),
        serde_json::json!({"prompt": PROMPTS[1], "choices": CHOICES, "label": 3}),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("eval.jsonl");
    std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();

    let (code, out, err) = t0(&["score", "--model", model, "--no-eos", "--input", path.to_str().unwrap(), "-q"]);
    assert_eq!(code, 1, "the bad label fails its line, so the run: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let got: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), 5, "{out}");
    for (i, p) in [0, 1, 2, 0].into_iter().enumerate() {
        assert_close(&floats(&got[i]["scores"]), &alone[p].0, &format!("line {}", i + 1));
        assert_eq!(got[i]["best"], alone[p].1, "line {}", i + 1);
    }
    assert_eq!((got[0]["label"].clone(), got[0]["correct"].clone()), (alone[0].1.into(), true.into()));
    assert_eq!((got[1]["label"].clone(), got[1]["correct"].clone()), (wrong.into(), false.into()));
    assert_eq!((got[2]["label"].clone(), got[2]["correct"].clone()), (alone[2].1.into(), true.into()));
    assert!(got[3].get("label").is_none() && got[3].get("correct").is_none(), "{}", got[3]);
    assert_eq!(got[4]["line"], 5);
    assert!(got[4]["error"].as_str().unwrap().contains("\"label\" 3 is not the index of one of the 3 choices"));
    assert!(
        err.contains("accuracy 0.6667: 2 of 3 labelled lines (2 of the file's 5 lines had no label or failed)"),
        "{err}"
    );
    assert!(err.contains("error: 1 line(s) of"), "{err}");
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect()
}

/// Lines scored in a batch agree with `t0 score` on each alone up to float rounding (a batch
/// takes other matmul paths, which sum in another order).
fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-4, "{what}: {got:?} against {want:?} alone");
    }
}

/// Lines of different prompt lengths, choice counts and lengths, and both rankings, scored with
/// the default batch and one line at a time: each line's result in its place, as `t0 score`
/// gives it alone.
#[test]
fn batches_keep_each_lines_result_in_its_place() {
    let dir = fixture();
    let model = dir.to_str().unwrap();
    let long = format!("{} {}", PROMPTS[1], PROMPTS[2]);
    let jobs: Vec<(&str, Vec<&str>, bool)> = vec![
        (PROMPTS[0], vec!["Yes", "No", "Maybe"], false),
        (&long, vec!["a brother", "a cousin"], false),
        ("Short?", vec!["yes", "no", "it is rather hard to tell from this", "perhaps"], true),
        (PROMPTS[1], vec!["Positive", "Negative"], false),
        (PROMPTS[2], vec!["cousins"], true),
        ("Short?", vec!["yes", "no"], false),
        (&long, vec!["the son of an uncle of someone is that person's cousin", "no relation"], false),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("jobs.jsonl");
    let text: String = jobs
        .iter()
        .map(|(p, c, n)| format!("{}\n", serde_json::json!({"prompt": p, "choices": c, "length_normalize": n})))
        .collect();
    std::fs::write(&path, text).unwrap();
    let run = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["score", "--model", model, "--no-eos", "--input", path.to_str().unwrap(), "-q"];
        args.extend_from_slice(extra);
        let (code, out, err) = t0(&args);
        assert_eq!(code, 0, "{err}");
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let (batched, one_by_one) = (run(&[]), run(&["--batch-size", "1"]));
    assert_eq!(batched.len(), jobs.len());
    for (i, ((p, c, n), (b, o))) in jobs.iter().zip(batched.iter().zip(&one_by_one)).enumerate() {
        let (want, best) = score_alone_with(model, p, c, *n);
        assert_close(&floats(&b["scores"]), &want, &format!("line {} batched", i + 1));
        assert_close(&floats(&o["scores"]), &want, &format!("line {} one by one", i + 1));
        assert_eq!((b["best"].as_u64(), o["best"].as_u64()), (Some(best as u64), Some(best as u64)), "line {}", i + 1);
    }
}

#[test]
fn no_labels_no_accuracy_line() {
    let dir = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("in.jsonl");
    std::fs::write(&path, format!("{}\n", serde_json::json!({"prompt": PROMPTS[0], "choices": ["yes", "no"]})))
        .unwrap();
    let (code, out, err) = t0(&["score", "--model", dir.to_str().unwrap(), "--input", path.to_str().unwrap(), "-q"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(!err.contains("accuracy"), "{err}");
}

#[test]
fn a_label_on_a_generation_line_is_an_error() {
    let dir = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("in.jsonl");
    let line = serde_json::json!({"prompt": PROMPTS[0], "label": 0, "max_new_tokens": 2});
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let (code, out, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "--input", path.to_str().unwrap(), "-q"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("this line has none"), "{out}");
}

#[test]
fn batch_size_must_be_positive() {
    let dir = fixture();
    for cmd in ["score", "generate"] {
        let (code, _, err) = t0(&[cmd, "--model", dir.to_str().unwrap(), "--input", "x.jsonl", "--batch-size", "0"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--batch-size") && err.contains("0"), "{err}");
    }
}

/// A line the model refuses (no choices) in the same batch as good ones: the batch is scored
/// again line by line, the bad line gets its error and the others their results.
#[test]
fn a_bad_line_in_a_batch_fails_alone() {
    let dir = fixture();
    let model = dir.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("in.jsonl");
    let lines = [
        serde_json::json!({"prompt": PROMPTS[0], "choices": CHOICES}),
        serde_json::json!({"prompt": PROMPTS[0], "choices": []}),
        serde_json::json!({"prompt": PROMPTS[0], "choices": ["No", "Yes"], "label": "Yes"}),
    ];
    std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let (code, out, err) = t0(&["score", "--model", model, "--no-eos", "--input", path.to_str().unwrap(), "-q"]);
    assert_eq!(code, 1, "{err}");
    let got: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), 3, "{out}");
    let (want, best) = score_alone(model, PROMPTS[0]);
    assert_close(&floats(&got[0]["scores"]), &want, "line 1");
    assert_eq!(got[0]["best"], best);
    assert_eq!(got[1]["line"], 2);
    assert!(got[1]["error"].as_str().unwrap().contains("no answer choices"), "{out}");
    assert_eq!(got[2]["label"], 1);
    let (want, _) = score_alone_with(model, PROMPTS[0], &["No", "Yes"], false);
    assert_close(&floats(&got[2]["scores"]), &want, "line 3");
    assert!(err.contains("accuracy") && err.contains("of 1 labelled lines"), "{err}");
}
