//! Global flags (`--quiet`, `-v`/`-vv`), `--dtype` on the commands that load a model, and
//! `t0 score --input-ids`.

mod common;

use common::{fixture, t0};

fn generate(extra: &[&str]) -> (i32, String, String) {
    let dir = fixture();
    let mut args = vec!["generate", "--model", dir.to_str().unwrap(), "--input-ids", "2163,1", "--max-new-tokens", "6"];
    args.extend_from_slice(extra);
    args.push("--json");
    t0(&args)
}

#[test]
fn stderr_is_silent_without_a_terminal_or_with_quiet() {
    let (code, out, err) = generate(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "no progress bar when stderr is not a terminal: {err:?}");
    assert!(out.contains("token_ids"));
    let (code, _, err) = generate(&["--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err:?}");
    // Global flags go before or after the subcommand.
    let dir = fixture();
    let (code, _, err) = t0(&["-q", "tokenize", "--model", dir.to_str().unwrap(), "Hi"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn verbose_logs_to_stderr() {
    let (code, out, err) = generate(&["-v"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("INFO") && err.contains("loading") && err.contains("loaded"), "{err}");
    assert!(!err.contains("DEBUG"), "{err}");
    assert!(!out.contains("INFO"), "logs stay off stdout: {out}");
    let (code, _, err) = generate(&["-vv"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("DEBUG") && err.contains("opening safetensors"), "{err}");
}

#[test]
fn dtype_on_generate_and_score() {
    let (code, as_stored, err) = generate(&[]);
    assert_eq!(code, 0, "{err}");
    for dt in ["f32", "bf16", "int8"] {
        let (code, out, err) = generate(&["--dtype", dt]);
        assert_eq!(code, 0, "{dt}: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert!(!v["token_ids"].as_array().unwrap().is_empty());
        if dt == "f32" {
            let a: serde_json::Value = serde_json::from_str(as_stored.trim()).unwrap();
            assert_eq!(v["token_ids"], a["token_ids"]);
        }
    }
    let (code, _, err) = generate(&["--dtype", "f8"]);
    assert_ne!(code, 0);
    assert!(err.contains("not a weight dtype"), "{err}");
    let dir = fixture();
    let (code, out, err) = t0(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--dtype",
        "bf16",
        "--json",
        "--choice",
        "a",
        "--choice",
        "b",
        "Hi",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"best\""), "{out}");
}

#[test]
fn score_takes_prompt_ids() {
    let dir = fixture();
    let d = dir.to_str().unwrap();
    let (code, out, err) = t0(&[
        "score",
        "--model",
        d,
        "--input-ids",
        "27,7,48,1",
        "--choice-ids",
        "2163,1",
        "--choice-ids",
        "465,1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["scores"].as_array().unwrap().len(), 2);
    let (code, _, err) =
        t0(&["score", "--model", d, "--input-ids", "27,1", "--input-ids", "48,1", "--choice-ids", "2163,1"]);
    assert_ne!(code, 0);
    assert!(err.contains("score one prompt at a time") && !err.contains("panicked"), "{err}");
}
