//! `t0 inspect`: text and JSON output on the tiny fixture model, and a broken model.

mod common;

use common::{fixture, t0};

#[test]
fn text_summary() {
    let dir = fixture();
    let (code, out, err) = t0(&["inspect", "--model", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "variant          T5 v1.1 / T0 / FLAN-T5 (gated-gelu FFN, untied head)",
        "layers           2 encoder, 2 decoder",
        "d_model          32",
        "heads            4 x d_kv 8 (inner 32)",
        "d_ff             64 (gated-gelu)",
        "vocab            32128",
        "tied embeddings  no",
        "parameters       2.11 M (2105984)",
        "stored f32",
        "--dtype bf16",
        "--dtype int8",
        "tokenizer        spiece.model",
        "every tensor present",
    ] {
        assert!(out.contains(needle), "output lacks {needle:?}:\n{out}");
    }
}

#[test]
fn json_summary() {
    let dir = fixture();
    let (code, out, err) = t0(&["inspect", "--model", dir.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["config"]["d_model"], 32);
    assert_eq!(v["config"]["feed_forward_proj"], "gated-gelu");
    assert_eq!(v["config"]["tie_word_embeddings"], false);
    assert_eq!(v["config"]["scale_decoder_outputs"], false);
    assert_eq!(v["parameters"], 2105984);
    assert_eq!(v["sharded"], false);
    assert_eq!(v["stored_dtypes"][0]["dtype"], "f32");
    assert_eq!(v["tokenizer"], "spiece.model");
    let memory = v["memory"].as_array().unwrap();
    let total = |d: &str| memory.iter().find(|m| m["dtype"] == d).unwrap()["total_bytes"].as_u64().unwrap();
    assert_eq!(total("as stored"), 2105984 * 4);
    assert!(total("int8") < total("bf16") && total("bf16") < total("f32"));
    assert!(v["problems"].as_array().unwrap().is_empty());
}

#[test]
fn missing_tensor_is_a_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture();
    std::fs::copy(src.join("model.safetensors"), tmp.path().join("model.safetensors")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["num_layers"] = 3.into(); // the file has two encoder layers
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let (code, out, err) = t0(&["inspect", "--model", tmp.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(out.contains("missing tensor `encoder.block.2.layer.0.SelfAttention.q.weight`"), "{out}");
    assert!(out.contains("tokenizer        none"), "{out}");
    assert!(err.starts_with("error: ") && err.contains("would not load"), "{err}");
}
