//! Bad input to the `t0` binary: a clear one-line error naming the file/key/value, a non-zero
//! exit, and never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use t0_model::random_init::write_random_model;
use t0_model::T5Config;
use t0_tensor::DType;

const CONFIG: &str = r#"{"vocab_size": 64, "d_model": 8, "d_kv": 4, "d_ff": 12, "num_layers": 2,
  "num_heads": 2, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false,
  "decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "model_type": "t5"}"#;

fn tiny_model(dir: &Path) {
    let c = T5Config::from_json_str(CONFIG, "config.json".as_ref()).unwrap();
    write_random_model(&c, CONFIG, dir, 7, DType::F32, |_, _, _| {}).unwrap();
}

fn t0(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_t0")).args(args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Run `t0 generate` on `dir` and check it fails cleanly with a message containing `needle`.
fn generate_fails(dir: &Path, ids: &str, needle: &str) {
    let (code, _, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", ids]);
    assert_ne!(code, 0, "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "stderr {err:?} does not mention {needle:?}");
}

fn model_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    tiny_model(&dir);
    (tmp, dir)
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(p, v.to_string()).unwrap();
}

#[test]
fn a_good_model_generates() {
    let (_t, dir) = model_dir();
    let (code, out, err) =
        t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,6,1", "--max-new-tokens", "3", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["token_ids"].as_array().unwrap().len() <= 3);
}

#[test]
fn missing_model_dir() {
    generate_fails(Path::new("/nonexistent/t0-model"), "5,1", "does not exist");
}

#[test]
fn dir_without_config() {
    let (_t, dir) = model_dir();
    std::fs::remove_file(dir.join("config.json")).unwrap();
    generate_fails(&dir, "5,1", "no config.json");
}

#[test]
fn config_not_json() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    generate_fails(&dir, "5,1", "not valid JSON");
}

#[test]
fn config_missing_key() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.remove("d_model");
    });
    generate_fails(&dir, "5,1", "`d_model`: missing");
}

#[test]
fn config_zero_size() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("num_heads".into(), 0.into());
    });
    generate_fails(&dir, "5,1", "`num_heads`: must be at least 1");
}

#[test]
fn config_wrong_type() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("d_ff".into(), "12".into());
    });
    generate_fails(&dir, "5,1", "`d_ff`: expected a non-negative integer");
}

#[test]
fn config_unknown_activation() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("feed_forward_proj".into(), "gated-mish".into());
    });
    generate_fails(&dir, "5,1", "feed_forward_proj");
}

#[test]
fn no_weights() {
    let (_t, dir) = model_dir();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    generate_fails(&dir, "5,1", "no model.safetensors");
}

#[test]
fn only_pytorch_bin() {
    let (_t, dir) = model_dir();
    std::fs::rename(dir.join("model.safetensors"), dir.join("pytorch_model.bin")).unwrap();
    generate_fails(&dir, "5,1", "safe_serialization=True");
}

#[test]
fn truncated_safetensors() {
    let (_t, dir) = model_dir();
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    generate_fails(&dir, "5,1", "truncated");
}

#[test]
fn header_length_past_eof() {
    let (_t, dir) = model_dir();
    let p = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    generate_fails(&dir, "5,1", "header length");
}

#[test]
fn header_not_json() {
    let (_t, dir) = model_dir();
    let p = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[8] = b'[';
    std::fs::write(&p, &bytes).unwrap();
    generate_fails(&dir, "5,1", "not a valid safetensors file");
}

#[test]
fn tiny_file() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("model.safetensors"), b"abc").unwrap();
    generate_fails(&dir, "5,1", "shorter than the 8-byte header");
}

/// Rewrite the weights with one tensor's dtype label changed to `I64` (same byte count).
#[test]
fn unsupported_dtype() {
    let (_t, dir) = model_dir();
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(header).unwrap();
    let t = &mut v["encoder.final_layer_norm.weight"];
    t["dtype"] = "I64".into();
    t["shape"] = serde_json::json!([4]); // 8 f32 = 32 bytes = 4 i64
    let mut h = v.to_string().into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&p, out).unwrap();
    generate_fails(&dir, "5,1", "dtype I64");
}

#[test]
fn shape_mismatch() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("d_ff".into(), 16.into());
    });
    generate_fails(&dir, "5,1", "has shape [12, 8], but the config needs [16, 8]");
}

#[test]
fn missing_tensor() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("num_layers".into(), 3.into());
        m.insert("num_decoder_layers".into(), 2.into());
    });
    generate_fails(&dir, "5,1", "encoder.block.2.layer.0.layer_norm.weight");
}

#[test]
fn token_id_out_of_vocab() {
    let (_t, dir) = model_dir();
    generate_fails(&dir, "5,64,1", "token id 64 is out of range");
}

#[test]
fn bad_id_list() {
    let (_t, dir) = model_dir();
    generate_fails(&dir, "5,x,1", "`x` is not a token id");
}

#[test]
fn zero_max_new_tokens() {
    let (_t, dir) = model_dir();
    let (code, _, err) =
        t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,1", "--max-new-tokens", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("--max-new-tokens must be at least 1"), "{err}");
}

#[test]
fn random_init_unwritable_out_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(&cfg, CONFIG).unwrap();
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let out = ro.join("file-not-dir");
    std::fs::write(&out, "x").unwrap();
    let (code, _, err) = t0(&["random-init", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("file-not-dir"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&ro).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "left behind: {left:?}");
}

#[test]
fn random_init_then_generate_bf16() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = tmp.path().join("m");
    let (code, _, err) =
        t0(&["random-init", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--dtype", "bf16"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = t0(&["generate", "--model", out.to_str().unwrap(), "--input-ids", "3,4,1", "--json"]);
    assert_eq!(code, 0, "{err}");
}
