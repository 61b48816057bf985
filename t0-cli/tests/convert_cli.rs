//! `t0 convert`: the converted model generates what the source does with the same `--dtype`,
//! and refusals exit non-zero with a message.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/t0-tiny")
}

fn t0(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_t0")).args(args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn convert_then_generate() {
    let src = fixture();
    let src = src.to_str().unwrap();
    let out = std::env::temp_dir().join(format!("t0-cli-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = out.to_str().unwrap();
    let (code, _, err) = t0(&["convert", "--model", src, "--dtype", "bf16", "--out", o]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("bf16") && err.contains("packed weights"), "{err}");
    let prompt = "Is this review positive or negative? Review: great skillet";
    let (code, converted, err) = t0(&["generate", "--model", o, "--max-new-tokens", "8", prompt]);
    assert_eq!(code, 0, "{err}");
    let (code, direct, err) = t0(&["generate", "--model", src, "--dtype", "bf16", "--max-new-tokens", "8", prompt]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(converted, direct);

    // Refusals: an existing output, and another dtype than the converted one.
    let (code, _, err) = t0(&["convert", "--model", src, "--dtype", "int8", "--out", o]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = t0(&["generate", "--model", o, "--dtype", "int8", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("converted to bf16"), "{err}");
    let (code, _, err) = t0(&["convert", "--model", src, "--dtype", "int4", "--out", "/nonexistent/x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("int4"), "{err}");
    std::fs::remove_dir_all(&out).unwrap();
}
