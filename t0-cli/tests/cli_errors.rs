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
    t0_env(args, &[])
}

fn t0_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_t0"));
    cmd.args(args).env_remove("T0_KERNELS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A clean failure: exit code 1 (2 for a usage error found by the argument parser), one
/// `error: ` line naming `needle`, no panic.
fn assert_fails(code: i32, err: &str, needle: &str) {
    assert!(code == 1 || code == 2, "expected exit code 1 or 2, got {code}, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "expected one error line: {err:?}");
    assert!(lines[0].contains(needle), "stderr {err:?} does not mention {needle:?}");
}

/// Run `t0 generate` on `dir` and check it fails cleanly with a message containing `needle`.
fn generate_fails(dir: &Path, ids: &str, needle: &str) {
    let (code, _, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", ids]);
    assert_fails(code, &err, needle);
}

/// Rewrite the header of `dir`'s model.safetensors with `f`, keeping the data bytes.
fn edit_header(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    f(v.as_object_mut().unwrap());
    let mut h = v.to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&p, out).unwrap();
}

fn offsets(v: &serde_json::Value) -> (u64, u64) {
    let o = v["data_offsets"].as_array().unwrap();
    (o[0].as_u64().unwrap(), o[1].as_u64().unwrap())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
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
    while !h.len().is_multiple_of(8) {
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

// ---- Model directory -------------------------------------------------------------------------

#[test]
fn model_path_is_a_file() {
    let (_t, dir) = model_dir();
    generate_fails(&dir.join("config.json"), "5,1", "is not a directory");
}

#[test]
fn empty_model_dir() {
    let tmp = tempfile::tempdir().unwrap();
    generate_fails(tmp.path(), "5,1", "no config.json");
}

// ---- config.json -----------------------------------------------------------------------------

#[test]
fn config_empty_file() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("config.json"), "").unwrap();
    generate_fails(&dir, "5,1", "config.json: `(file)`: not valid JSON");
}

#[test]
fn config_not_an_object() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("config.json"), "[1, 2]").unwrap();
    generate_fails(&dir, "5,1", "not a JSON object");
}

#[test]
fn config_d_model_zero() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("d_model".into(), 0.into());
    });
    generate_fails(&dir, "5,1", "`d_model`: must be at least 1, found 0");
}

#[test]
fn config_vocab_zero() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("vocab_size".into(), 0.into());
    });
    generate_fails(&dir, "5,1", "`vocab_size`: must be at least 1, found 0");
}

#[test]
fn config_absurd_size() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("d_model".into(), 1_000_000_000.into());
    });
    generate_fails(&dir, "5,1", "`d_model`: 1000000000 is absurdly large");
}

#[test]
fn config_negative_size() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("num_layers".into(), (-2).into());
    });
    generate_fails(&dir, "5,1", "`num_layers`: expected a non-negative integer, found -2");
}

#[test]
fn config_fractional_size() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("d_kv".into(), 4.5.into());
    });
    generate_fails(&dir, "5,1", "`d_kv`: expected a non-negative integer, found 4.5");
}

#[test]
fn config_not_t5() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("model_type".into(), "bert".into());
    });
    generate_fails(&dir, "5,1", "`model_type`: \"bert\" is not a T5 model");
}

#[test]
fn config_eos_outside_vocab() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("eos_token_id".into(), 64.into());
    });
    generate_fails(&dir, "5,1", "`eos_token_id`: 64 is not below vocab_size 64");
}

#[test]
fn config_bad_epsilon() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("layer_norm_epsilon".into(), (-1.0).into());
    });
    generate_fails(&dir, "5,1", "`layer_norm_epsilon`: expected a small positive number");
}

/// HF's bucket formula fails (negative buckets, or a division by zero) on these: refused at load,
/// where running them panicked on an out-of-range bucket before.
#[test]
fn config_bad_relative_attention() {
    for (buckets, distance, msg) in [
        (8, 4, "`relative_attention_max_distance`: must be larger than relative_attention_num_buckets / 2 = 4"),
        (32, 2, "`relative_attention_max_distance`: must be larger than relative_attention_num_buckets / 2 = 16"),
        (3, 128, "`relative_attention_num_buckets`: must be between 4 and 65536, found 3"),
    ] {
        let (_t, dir) = model_dir();
        edit_config(&dir, |m| {
            m.insert("relative_attention_num_buckets".into(), buckets.into());
            m.insert("relative_attention_max_distance".into(), distance.into());
        });
        generate_fails(&dir, "5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,1", msg);
    }
}

/// T5 allows `num_heads · d_kv ≠ d_model`, so only the weights can disagree with the heads.
#[test]
fn config_heads_do_not_match_weights() {
    let (_t, dir) = model_dir();
    edit_config(&dir, |m| {
        m.insert("num_heads".into(), 4.into());
    });
    generate_fails(&dir, "5,1", "has shape [8, 8], but the config needs [16, 8]");
}

// ---- Safetensors -----------------------------------------------------------------------------

#[test]
fn safetensors_empty_file() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("model.safetensors"), b"").unwrap();
    generate_fails(&dir, "5,1", "model.safetensors: not a valid safetensors file: file is 0 bytes");
}

#[test]
fn safetensors_header_not_utf8() {
    let (_t, dir) = model_dir();
    let p = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[9] = 0xff;
    std::fs::write(&p, &bytes).unwrap();
    generate_fails(&dir, "5,1", "the header is not valid UTF-8");
}

#[test]
fn safetensors_overlapping_offsets() {
    let (_t, dir) = model_dir();
    edit_header(&dir, |h| {
        let (s, _) = offsets(&h["encoder.final_layer_norm.weight"]);
        let (s2, e2) = offsets(&h["decoder.final_layer_norm.weight"]);
        let len = e2 - s2;
        // Point the decoder's norm into the middle of the encoder's.
        h["decoder.final_layer_norm.weight"]["data_offsets"] = serde_json::json!([s + 4, s + 4 + len]);
    });
    generate_fails(&dir, "5,1", "overlap");
}

#[test]
fn safetensors_offsets_past_eof() {
    let (_t, dir) = model_dir();
    edit_header(&dir, |h| {
        let (s, e) = offsets(&h["shared.weight"]);
        h["shared.weight"]["data_offsets"] = serde_json::json!([s + (1 << 30), e + (1 << 30)]);
    });
    generate_fails(&dir, "5,1", "truncated: tensor `shared.weight` needs bytes");
}

#[test]
fn safetensors_offsets_do_not_match_shape() {
    let (_t, dir) = model_dir();
    edit_header(&dir, |h| {
        h["shared.weight"]["shape"] = serde_json::json!([64, 9]);
    });
    generate_fails(&dir, "5,1", "tensor `shared.weight` has offsets");
}

#[test]
fn safetensors_int8_weight() {
    let (_t, dir) = model_dir();
    edit_header(&dir, |h| {
        let t = &mut h["encoder.final_layer_norm.weight"];
        let (s, _) = offsets(t);
        t["dtype"] = "I8".into();
        t["data_offsets"] = serde_json::json!([s, s + 8]); // the shape stays [8]
    });
    generate_fails(&dir, "5,1", "tensor `encoder.final_layer_norm.weight` has dtype int8; weights must be f32");
}

#[test]
fn safetensors_unknown_dtype() {
    let (_t, dir) = model_dir();
    edit_header(&dir, |h| {
        h["shared.weight"]["dtype"] = "Q4_K".into();
    });
    generate_fails(&dir, "5,1", "tensor `shared.weight` has unknown dtype \"Q4_K\"");
}

#[test]
fn extra_tensor_is_a_warning() {
    let (_t, dir) = model_dir();
    // Append an extra tensor at the end of the data.
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_len = (bytes.len() - 8 - n) as u64;
    edit_header(&dir, |h| {
        h.insert(
            "encoder.block.0.layer.0.SelfAttention.extra_gate.weight".into(),
            serde_json::json!({"dtype": "F32", "shape": [2], "data_offsets": [data_len, data_len + 8]}),
        );
    });
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&p, bytes).unwrap();
    let (code, out, err) =
        t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,1", "--max-new-tokens", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("token_ids"), "{out}");
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    assert!(err.contains("warning: ") && err.contains("1 tensor(s) in the weights are not used"), "{err}");
    assert!(err.contains("extra_gate.weight"), "{err}");
}

#[test]
fn sharded_index_not_json() {
    let (_t, dir) = model_dir();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors.index.json"), "{").unwrap();
    generate_fails(&dir, "5,1", "model.safetensors.index.json: `weight_map`: not valid JSON");
}

#[test]
fn sharded_index_missing_shard() {
    let (_t, dir) = model_dir();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let index = r#"{"weight_map": {"shared.weight": "model-00001-of-00002.safetensors"}}"#;
    std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
    generate_fails(&dir, "5,1", "model-00001-of-00002.safetensors: No such file");
}

#[test]
fn sharded_index_escapes_the_directory() {
    let (_t, dir) = model_dir();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let index = r#"{"weight_map": {"shared.weight": "../../etc/passwd"}}"#;
    std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
    generate_fails(&dir, "5,1", "which is not a file in the model directory");
}

// ---- Tokenizer -------------------------------------------------------------------------------

fn text_fails(dir: &Path, needle: &str) {
    let (code, _, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "Hello"]);
    assert_fails(code, &err, needle);
    let (code, _, err) = t0(&["tokenize", "--model", dir.to_str().unwrap(), "Hello"]);
    assert_fails(code, &err, needle);
}

#[test]
fn spiece_truncated() {
    let (_t, dir) = model_dir();
    let bytes = std::fs::read(fixture("t5-tokenizer/spiece.model")).unwrap();
    std::fs::write(dir.join("spiece.model"), &bytes[..bytes.len() / 2]).unwrap();
    text_fails(&dir, "spiece.model: malformed protobuf at byte");
}

#[test]
fn spiece_garbage() {
    let (_t, dir) = model_dir();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(dir.join("spiece.model"), garbage).unwrap();
    text_fails(&dir, "spiece.model: malformed protobuf");
}

#[test]
fn spiece_empty() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("spiece.model"), b"").unwrap();
    text_fails(&dir, "spiece.model: field `pieces` = []: the model has no pieces");
}

#[test]
fn tokenizer_config_not_json() {
    let (_t, dir) = model_dir();
    std::fs::copy(fixture("t5-tokenizer/spiece.model"), dir.join("spiece.model")).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), "{\"extra_ids\": ").unwrap();
    text_fails(&dir, "tokenizer_config.json: invalid JSON");
}

#[test]
fn text_prompt_without_tokenizer() {
    let (_t, dir) = model_dir();
    let (code, _, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "Hello"]);
    assert_fails(code, &err, "no spiece.model or tokenizer.json");
}

#[test]
fn empty_prompt_is_eos() {
    let m = fixture("models/t0-tiny");
    let (code, out, err) = t0(&["generate", "--model", m.to_str().unwrap(), "", "--max-new-tokens", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("token_ids"), "{out}");
    let (code, out, err) = t0(&["tokenize", "--model", m.to_str().unwrap(), "", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), r#"{"ids":[1],"tokens":["</s>"]}"#);
    let (code, out, err) = t0(&["score", "--model", m.to_str().unwrap(), "", "--choice", "yes", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"best\":0"), "{out}");
}

// ---- Inputs and options ----------------------------------------------------------------------

#[test]
fn input_longer_than_limit() {
    let (_t, dir) = model_dir();
    let (code, _, err) =
        t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,6,7,8,1", "--max-input-tokens", "4"]);
    assert_fails(code, &err, "input 0 has 5 tokens, more than the limit of 4");
    // The default limit.
    let long = vec!["5"; t0_model::DEFAULT_MAX_INPUT_TOKENS + 1].join(",");
    let (code, _, err) =
        t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,1", "--input-ids", &long]);
    assert_fails(code, &err, &format!("input 1 has 4097 tokens, more than the limit of {}", 4096));
    let (code, _, err) = t0(&["score", "--model", dir.to_str().unwrap(), "--input-ids", &long, "--choice-ids", "5,1"]);
    assert_fails(code, &err, "more than the limit of 4096");
}

#[test]
fn zero_input_limit_is_a_usage_error() {
    let (_t, dir) = model_dir();
    let (code, _, err) =
        t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,1", "--max-input-tokens", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--max-input-tokens") && err.contains("must be at least 1"), "{err}");
}

#[test]
fn absurd_beam_width() {
    let (_t, dir) = model_dir();
    let (code, _, err) =
        t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,1", "--num-beams", "100000"]);
    assert_fails(code, &err, "num-beams must be at most 1024, found 100000");
}

#[test]
fn score_without_choices() {
    let (_t, dir) = model_dir();
    let (code, _, err) = t0(&["score", "--model", dir.to_str().unwrap(), "--input-ids", "5,1"]);
    assert_fails(code, &err, "no answer choices");
    let (code, _, err) = t0(&["score", "--model", dir.to_str().unwrap(), "--input-ids", "5,1", "--choice-ids", ""]);
    assert_fails(code, &err, "answer choice 0 has no tokens");
    let args = ["score", "--model", dir.to_str().unwrap(), "--input-ids", "5,1", "--choice-ids", "5,1", "--json"];
    let (code, out, err) = t0(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"best\":0"), "{out}");
}

/// One bad line of a JSONL file: an error object naming the line, every other line answered.
#[test]
fn jsonl_invalid_utf8_line() {
    let m = fixture("models/t0-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("in.jsonl");
    let mut text = b"{\"prompt\": \"Is this good?\", \"max_new_tokens\": 2}\n{\"prompt\": \"bad \xff\xfe\"}\n".to_vec();
    text.extend_from_slice(b"{\"prompt\": \"Is this bad?\", \"max_new_tokens\": 2}\n{\"prompt\": 7}\n");
    text.extend_from_slice(b"{\"prompt\": \"x\", \"num_beams\": \"many\"}\n");
    std::fs::write(&p, text).unwrap();
    let (code, out, err) = t0(&["generate", "--model", m.to_str().unwrap(), "--input", p.to_str().unwrap(), "-q"]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0]["token_ids"].is_array() && lines[2]["token_ids"].is_array(), "{out}");
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("not valid UTF-8"), "{out}");
    assert_eq!(lines[3]["line"], 4);
    assert_eq!(lines[4]["line"], 5);
    assert!(err.contains("line 2: not valid UTF-8"), "{err}");
    assert!(err.contains("error: 3 line(s) of"), "{err}");
}

#[test]
fn jsonl_line_too_long() {
    let m = fixture("models/t0-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("in.jsonl");
    let long = "word ".repeat(50);
    std::fs::write(&p, format!("{{\"prompt\": \"short\"}}\n{{\"prompt\": \"{long}\"}}\n")).unwrap();
    let args = ["generate", "--model", m.to_str().unwrap(), "--input", p.to_str().unwrap(), "--max-input-tokens", "20"];
    let (code, out, err) = t0(&args);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines[0]["token_ids"].is_array(), "{out}");
    assert!(
        lines[1]["error"].as_str().unwrap().contains("the prompt has 51 tokens, more than the limit of 20"),
        "{out}"
    );
}

#[test]
fn jsonl_input_missing_or_a_directory() {
    let (_t, dir) = model_dir();
    let (code, _, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "--input", "/nonexistent/in.jsonl"]);
    assert_fails(code, &err, "/nonexistent/in.jsonl");
    let (code, _, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "--input", dir.to_str().unwrap()]);
    assert_fails(code, &err, "Is a directory");
}

// ---- Kernels ---------------------------------------------------------------------------------

#[test]
fn kernels_this_cpu_cannot_run() {
    let (_t, dir) = model_dir();
    let here: Vec<&str> = t0_kernels::available().iter().map(|k| k.name()).collect();
    let missing = ["avx512", "avx2", "neon"].into_iter().find(|k| !here.contains(k)).unwrap();
    let args = ["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,1"];
    let (code, _, err) = t0_env(&args, &[("T0_KERNELS", missing)]);
    assert_fails(code, &err, &format!("T0_KERNELS={missing}: this CPU cannot run the {missing} kernels"));
    let (code, _, err) = t0_env(&args, &[("T0_KERNELS", "cuda")]);
    assert_fails(code, &err, "T0_KERNELS=\"cuda\" is not a kernel set");
    let (code, _, err) = t0_env(&args, &[("T0_KERNELS", "scalar")]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn bench_unknown_dtype() {
    let (_t, dir) = model_dir();
    let (code, _, err) = t0(&["bench", "--model", dir.to_str().unwrap(), "--dtype", "f8"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`f8` is not a weight dtype (expected f32, bf16, int8, or f16 with --device)"), "{err}");
    // f16 is a device dtype: on the CPU model, an error that says so (exit 1).
    let (code, _, err) = t0(&["bench", "--model", dir.to_str().unwrap(), "--dtype", "f16"]);
    assert_fails(code, &err, "--dtype f16 runs on a device");
    // `convert` writes CPU dtypes only.
    let out = dir.with_file_name("f16-out");
    let (code, _, err) =
        t0(&["convert", "--model", dir.to_str().unwrap(), "--dtype", "f16", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`f16` is not a weight dtype (expected f32, bf16 or int8)"), "{err}");
    assert!(!out.exists());
}

#[test]
fn bench_devices() {
    let (_t, dir) = model_dir();
    let m = dir.to_str().unwrap();
    let (code, _, err) = t0(&["bench", "--model", m, "--device", "tpu"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`tpu` is not a device (expected cpu, host, cuda or cuda:N)"), "{err}");
    let (code, _, err) = t0(&["bench", "--model", m, "--device", "host", "--dtype", "int8"]);
    assert_fails(code, &err, "--dtype int8 is not available on a device (f32, bf16 or f16)");
    let (code, _, err) = t0(&["bench", "--model", m, "--device", "host", "--profile"]);
    assert_fails(code, &err, "--profile and --score-choices time the CPU model");
    // The device path on host memory runs anywhere.
    let (code, out, err) = t0(&["bench", "--model", m, "--device", "host", "--new-tokens", "3", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["decode_ms_per_step"].as_f64().unwrap() > 0.0 && v["step_weight_bytes"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(v["replayed_steps"].as_u64(), Some(0), "the host backend records no steps: {out}");
    // Without a GPU (or without the feature) `cuda` is an error that says why, not a crash.
    let (code, _, err) = t0(&["bench", "--model", m, "--device", "cuda:0", "--new-tokens", "2"]);
    assert!(code == 0 || (code == 1 && err.contains("CUDA")), "exit {code}: {err}");
}

/// `t0 generate --device host`: the device path's ids and text equal the CPU model's (greedy,
/// beam search, sampling), for a text prompt and two id inputs; options it cannot honour are
/// errors.
#[test]
fn generate_on_a_device() {
    let m = fixture("models/t0-tiny");
    let m = m.to_str().unwrap();
    let args = [
        "generate",
        "--model",
        m,
        "Is this review positive or negative? Review: the best skillet",
        "--input-ids",
        "27,7,48,1",
        "--input-ids",
        "5,1",
        "--max-new-tokens",
        "6",
        "--json",
    ];
    let (code, cpu, err) = t0(&args);
    assert_eq!(code, 0, "{err}");
    let (code, dev, err) = t0(&[&args[..], &["--device", "host"]].concat());
    assert_eq!(code, 0, "{err}");
    let pick = |out: &str| -> Vec<(serde_json::Value, serde_json::Value)> {
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["token_ids"].clone(), v["text"].clone()))
            .collect()
    };
    let (cpu, dev) = (pick(&cpu), pick(&dev));
    assert_eq!(cpu.len(), 3);
    assert!(cpu.iter().all(|(ids, _)| !ids.as_array().unwrap().is_empty()), "{cpu:?}");
    assert_eq!(cpu, dev);
    // Beam search and sampling run on a device as on the CPU.
    for extra in [&["--num-beams", "3", "--num-return-sequences", "2"][..], &["--top-k", "4", "--seed", "3"][..]] {
        let a = [&args[..], extra].concat();
        let (code, cpu, err) = t0(&a);
        assert_eq!(code, 0, "{err}");
        let (code, dev, err) = t0(&[&a[..], &["--device", "host"]].concat());
        assert_eq!(code, 0, "{err}");
        let (cpu, dev) = (pick(&cpu), pick(&dev));
        assert_eq!(cpu.len(), if extra[0] == "--num-beams" { 6 } else { 3 }, "{extra:?}");
        assert_eq!(cpu, dev, "{extra:?}");
    }
    let (code, _, err) = t0(&["generate", "--model", m, "--input-ids", "5,1", "--device", "host", "--dtype", "int8"]);
    assert_fails(code, &err, "--dtype int8 is not available on a device");
    // f16 weights (f32 activations) run on a device, and are refused on the CPU with the reason.
    let f16 =
        ["generate", "--model", m, "--input-ids", "27,7,48,1", "--max-new-tokens", "4", "--json", "--dtype", "f16"];
    let (code, out, err) = t0(&[&f16[..], &["--device", "host"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["token_logprobs"].as_array().unwrap().iter().all(|p| p.as_f64().unwrap().is_finite()), "{v}");
    let (code, _, err) = t0(&f16);
    assert_fails(code, &err, "--dtype f16 runs on a device (--device host or cuda[:N])");
    let (code, _, err) = t0(&["generate", "--model", m, "--input-ids", "5,1", "--dtype", "f8"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`f8` is not a weight dtype (expected f32, bf16, int8, or f16 with --device)"), "{err}");
    let (code, _, err) =
        t0(&["generate", "--model", m, "--input-ids", "5,1", "--device", "cuda", "--max-new-tokens", "2"]);
    assert!(code == 0 || (code == 1 && err.contains("CUDA")), "exit {code}: {err}");
}

/// A tokenizer t0 cannot read (here a BPE `tokenizer.json`, as CodeT5 ships) is a warning:
/// token ids still run; a text prompt is an error giving the reason.
#[test]
fn unsupported_tokenizer_leaves_token_ids_working() {
    let (_t, dir) = model_dir();
    let bpe = r#"{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}"#;
    std::fs::write(dir.join("tokenizer.json"), bpe).unwrap();
    let m = dir.to_str().unwrap();
    let (code, out, err) = t0(&["generate", "--model", m, "--input-ids", "5,6,1", "--max-new-tokens", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: the tokenizer of") && err.contains("BPE is not supported"), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v.get("text").is_none(), "{v}");
    let (code, _, err) = t0(&["generate", "--model", m, "Hello"]);
    assert_fails(code, &err, "the tokenizer did not load, so text needs token ids instead");
    assert!(err.contains("BPE is not supported"), "{err}");
}

/// `t0 score --device host` gives the CPU's scores and choice (text and id choices); options
/// the device path cannot honour are errors.
#[test]
fn score_on_a_device() {
    let m = fixture("models/t0-tiny");
    let m = m.to_str().unwrap();
    let args = [
        "score",
        "--model",
        m,
        "Is this review positive or negative? Review: the best skillet",
        "--choice",
        "Positive",
        "--choice",
        "Negative",
        "--choice-ids",
        "5,6,7,1",
        "--json",
    ];
    let parse = |out: &str| -> (Vec<f64>, u64) {
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        (v["scores"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect(), v["best"].as_u64().unwrap())
    };
    for extra in [&[][..], &["--length-normalize"][..]] {
        let (code, cpu, err) = t0(&[&args[..], extra].concat());
        assert_eq!(code, 0, "{err}");
        let (code, dev, err) = t0(&[&args[..], extra, &["--device", "host"]].concat());
        assert_eq!(code, 0, "{err}");
        let ((cpu, best_cpu), (dev, best_dev)) = (parse(&cpu), parse(&dev));
        assert_eq!(cpu.len(), 3);
        assert_eq!(best_cpu, best_dev, "{extra:?}");
        for (a, b) in cpu.iter().zip(&dev) {
            assert!((a - b).abs() < 1e-4, "{extra:?}: {cpu:?} vs {dev:?}");
        }
    }
    let (code, _, err) =
        t0(&["score", "--model", m, "--input-ids", "5,1", "--choice-ids", "1", "--device", "host", "--dtype", "int8"]);
    assert_fails(code, &err, "--dtype int8 is not available on a device");
    let (code, _, err) = t0(&["score", "--model", m, "--input", "x.jsonl", "--device", "host"]);
    assert_fails(code, &err, "--input FILE runs on the CPU model");
}

/// A model's generation_config.json sets the defaults, as HF's `generate()` takes them; flags
/// win. HF (transformers 4.57.6, `model.generate(input_ids)` with no options) on
/// relu-tied-deepdec with this file: `[139, 96, 193, 193, 96, 96, 222, 96]` at -4.93533 and
/// `[139, 96, 193, 193, 96, 96, 250, 96]` at -4.95682 (`max_length` 9 and `min_length` 4
/// count the decoder start token).
#[test]
fn model_generation_config_sets_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("models/relu-tied-deepdec");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let gen = r#"{"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "num_beams": 3,
      "num_return_sequences": 2, "max_length": 9, "min_length": 4, "no_repeat_ngram_size": 2,
      "length_penalty": 0.5, "transformers_version": "4.57.6"}"#;
    std::fs::write(tmp.path().join("generation_config.json"), gen).unwrap();
    let m = tmp.path().to_str().unwrap();
    let rows = |extra: &[&str]| -> Vec<serde_json::Value> {
        let (code, out, err) =
            t0(&[&["generate", "--model", m, "--input-ids", "5,6,7,1", "--json"][..], extra].concat());
        assert_eq!(code, 0, "{err}");
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let ids = |r: &serde_json::Value| -> Vec<u64> {
        r["token_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
    };
    let hf = rows(&[]);
    assert_eq!(
        hf.iter().map(ids).collect::<Vec<_>>(),
        [vec![139, 96, 193, 193, 96, 96, 222, 96], vec![139, 96, 193, 193, 96, 96, 250, 96]]
    );
    for (r, want) in hf.iter().zip([-4.935330867767334, -4.956821918487549]) {
        assert!((r["score"].as_f64().unwrap() - want).abs() < 1e-4, "{r} vs HF {want}");
    }
    // Flags over the file: greedy, 2 tokens.
    let greedy = rows(&["--num-beams", "1", "--num-return-sequences", "1", "--max-new-tokens", "2"]);
    assert_eq!(greedy.len(), 1);
    assert_eq!(ids(&greedy[0]).len(), 2);
    // A broken file is a clear error naming it.
    std::fs::write(tmp.path().join("generation_config.json"), r#"{"num_beams": "three"}"#).unwrap();
    let (code, _, err) = t0(&["generate", "--model", m, "--input-ids", "5,1"]);
    assert_fails(code, &err, "generation_config.json");
}

/// A negative `--length-penalty` (HF allows it: shorter hypotheses win) parses as a number,
/// and gives HF's beams: gated-gelu-inner, 4 beams, 2 returned, transformers 4.57.6
/// (`length_penalty=-1.0`: `[300, 435, 244, 94, 1]` at -9.73113, `[300, 435, 244, 94, 276, 240,
/// 300, 1]` at -28.02937; with 1.0 the second beam is another sequence altogether).
#[test]
fn negative_length_penalty() {
    let dir = fixture("models/gated-gelu-inner");
    let m = dir.to_str().unwrap();
    let args = ["generate", "--model", m, "--input-ids", "40,41,42,43,44,45,1", "--num-beams", "4"];
    let args = [&args[..], &["--num-return-sequences", "2", "--max-new-tokens", "12", "--json"]].concat();
    let (code, out, err) = t0(&[&args[..], &["--length-penalty", "-1"]].concat());
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<Vec<u64>> =
        rows.iter().map(|r| r["token_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()).collect();
    assert_eq!(ids, [vec![300, 435, 244, 94, 1], vec![300, 435, 244, 94, 276, 240, 300, 1]]);
    for (r, want) in rows.iter().zip([-9.731127738952637, -28.029373168945312]) {
        let got = r["score"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-3, "{got} vs HF {want}");
    }
}

// ---- Memory ----------------------------------------------------------------------------------

/// A config whose weights would take about 10 TB, with a tiny weights file: the estimate runs
/// from config.json before any weight is read.
const HUGE: &str = r#"{"vocab_size": 32128, "d_model": 16384, "d_kv": 128, "d_ff": 65536, "num_layers": 256,
  "num_heads": 128, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false, "model_type": "t5"}"#;

#[test]
fn not_enough_memory_for_converted_weights() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("config.json"), HUGE).unwrap();
    let args = ["bench", "--model", dir.to_str().unwrap(), "--dtype", "f32"];
    let (code, _, err) = t0(&args);
    assert_fails(code, &err, "not enough memory to load the model: the weights converted to f32 need about");
    assert!(err.contains("MemAvailable") && err.contains("--no-memory-check"), "{err}");
    // The override: loading goes on (and fails on the weights, which do not match).
    let (code, _, err) = t0(&[&args[..], &["--no-memory-check"]].concat());
    assert_fails(code, &err, "has shape");
}

#[test]
fn not_enough_memory_for_mapped_weights() {
    let (_t, dir) = model_dir();
    // A sparse 1 TB weights file: as stored, the weights are mapped and must fit in MemTotal.
    let f = std::fs::OpenOptions::new().write(true).open(dir.join("model.safetensors")).unwrap();
    if f.set_len(1 << 40).is_err() {
        eprintln!("skipped: this file system cannot hold a sparse 1 TB file");
        return;
    }
    drop(f);
    let (code, _, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,1"]);
    assert_fails(code, &err, "the weights as stored need about 1100 GB of memory");
    assert!(err.contains("MemTotal"), "{err}");
    // The override: the file is the model followed by a sparse tail of zeros, which loads.
    let (code, _, err) = t0(&["generate", "--model", dir.to_str().unwrap(), "--input-ids", "5,1", "--no-memory-check"]);
    assert_eq!(code, 0, "{err}");
}

// ---- Output ----------------------------------------------------------------------------------

#[test]
fn random_init_into_proc() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(&cfg, CONFIG).unwrap();
    let (code, _, err) = t0(&["random-init", "--config", cfg.to_str().unwrap(), "--out", "/proc/t0-model"]);
    assert_fails(code, &err, "/proc/t0-model");
    assert!(!Path::new("/proc/t0-model").exists());
}

#[test]
fn random_init_larger_than_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(&cfg, HUGE).unwrap();
    let out = tmp.path().join("m");
    let (code, _, err) = t0(&["random-init", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_fails(code, &err, "GB but the disk has only");
    assert!(!out.exists());
}

/// The disk fills up in the middle of the weights (a file size limit stands in for it): an
/// error, and neither the temporary file nor the directory is left behind.
#[cfg(unix)]
#[test]
fn random_init_disk_full_mid_write() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = tmp.path().join("m");
    // `ulimit -f 4`: files may not grow past 2 kB; SIGXFSZ ignored so the write fails with EFBIG.
    let script = format!(
        "ulimit -f 4; trap '' XFSZ; exec '{}' random-init --config '{}' --out '{}'",
        env!("CARGO_BIN_EXE_t0"),
        cfg.display(),
        out.display()
    );
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_fails(o.status.code().unwrap_or(-1), &err, "model.safetensors");
    assert!(!out.exists(), "left behind: {:?}", std::fs::read_dir(&out).map(|d| d.count()));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("config.json")]);
}

#[test]
fn random_init_unsupported_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = tmp.path().join("m");
    let args = ["random-init", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--dtype", "int8"];
    let (code, _, err) = t0(&args);
    assert_fails(code, &err, "random-init writes f32 or bf16, not int8");
    assert!(!out.exists());
}

/// `t0 … | head -1`: the reader closes the pipe early; t0 ends quietly (SIGPIPE), no panic.
#[cfg(unix)]
#[test]
fn stdout_closed_early() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let m = fixture("models/t0-tiny");
    let text = "word ".repeat(20000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_t0"))
        .args(["tokenize", "--model", m.to_str().unwrap(), &text])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe is dropped
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.success() || status.signal() == Some(libc_sigpipe()), "{status:?}: {err}");
}

#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13 // SIGPIPE on Linux and macOS
}
