//! `t0 convert`: the converted model generates what the source does with the same `--dtype`,
//! and refusals exit non-zero with a message.

mod common;

use common::{fixture, t0};

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
