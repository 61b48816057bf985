//! `--model org/name` resolved in a Hugging Face cache laid out as `huggingface_hub` writes it:
//! `models--org--name/{blobs/<hash>, snapshots/<commit>/<file> -> ../../blobs/<hash>, refs/<rev>}`.
//! The cache is built by the test from the tiny fixture model the repository ships.

use std::path::{Path, PathBuf};
use std::process::Command;

const COMMIT: &str = "7c6e2b1d0f3a4e5b8c9d0a1b2c3d4e5f60718293";
const OLD_COMMIT: &str = "0000000000000000000000000000000000000001";
const FILES: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "spiece.model",
    "tokenizer_config.json",
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/t0-tiny")
}

/// Add snapshot `commit` of `repo_id` to the cache at `root`: each file is stored once in
/// `blobs/` (named by a fake content hash) and linked from `snapshots/<commit>/`.
fn add_snapshot(root: &Path, repo_id: &str, commit: &str, files: &[&str]) -> PathBuf {
    let repo = root.join(format!("models--{}", repo_id.replace('/', "--")));
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    for (i, f) in files.iter().enumerate() {
        let blob = format!("{:064x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15);
        let blob_path = repo.join("blobs").join(&blob);
        if !blob_path.exists() {
            std::fs::copy(fixture().join(f), &blob_path).unwrap();
        }
        std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snap.join(f)).unwrap();
    }
    snap
}

fn set_ref(root: &Path, repo_id: &str, name: &str, commit: &str) {
    let refs = root.join(format!("models--{}", repo_id.replace('/', "--"))).join("refs");
    let path = refs.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // huggingface_hub writes the hash without a newline.
    std::fs::write(path, commit).unwrap();
}

/// A cache holding `acme/t0-tiny` at `main` = COMMIT, plus an older snapshot with no ref.
fn cache() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    add_snapshot(tmp.path(), "acme/t0-tiny", COMMIT, &FILES);
    add_snapshot(tmp.path(), "acme/t0-tiny", OLD_COMMIT, &FILES);
    set_ref(tmp.path(), "acme/t0-tiny", "main", COMMIT);
    tmp
}

/// Run `t0` with the HF cache variables set as given (and every other one removed), offline:
/// `cargo test --workspace` builds `t0` with the `hub-download` feature (the root package turns
/// it on for its own test), and these tests are about what the cache alone resolves.
fn t0_env(env: &[(&str, &Path)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_t0"));
    for k in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"] {
        cmd.env_remove(k);
    }
    cmd.env("HF_HUB_OFFLINE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn t0(cache: &Path, args: &[&str]) -> (i32, String, String) {
    t0_env(&[("HF_HUB_CACHE", cache)], args)
}

const GEN: [&str; 6] = ["--input-ids", "27,7,48,1", "--max-new-tokens", "12", "--json", "--quiet"];

fn generate(cache: &Path, model: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["generate", "--model", model];
    args.extend_from_slice(extra);
    args.extend_from_slice(&GEN);
    t0(cache, &args)
}

#[test]
fn hub_id_generates_like_the_directory() {
    let c = cache();
    let dir = fixture();
    let (code, from_dir, err) = generate(c.path(), dir.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{err}");
    let (code, from_hub, err) = generate(c.path(), "acme/t0-tiny", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(from_hub, from_dir);
    let v: serde_json::Value = serde_json::from_str(from_hub.trim()).unwrap();
    assert!(!v["token_ids"].as_array().unwrap().is_empty());
}

#[test]
fn text_prompt_uses_the_snapshot_tokenizer() {
    let c = cache();
    let (code, out, err) = t0(
        c.path(),
        &["generate", "--model", "acme/t0-tiny", "Is this a question?", "--max-new-tokens", "4", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["text"].is_string(), "{out}");
}

#[test]
fn every_model_subcommand_takes_a_hub_id() {
    let c = cache();
    let (code, out, err) =
        t0(c.path(), &["score", "--model", "acme/t0-tiny", "--json", "--choice", "yes", "--choice", "no", "Is it?"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"best\""), "{out}");
    let (code, out, err) = t0(c.path(), &["tokenize", "--model", "acme/t0-tiny", "--json", "Hello"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"ids\""), "{out}");
    let (code, out, err) = t0(c.path(), &["inspect", "--model", "acme/t0-tiny", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["dir"].as_str().unwrap().ends_with(&format!("snapshots/{COMMIT}")), "{out}");
    let (code, _, err) = t0(
        c.path(),
        &["bench", "--model", "acme/t0-tiny", "--new-tokens", "2", "--input-tokens", "4", "--encoder-runs", "1"],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn hf_home_and_xdg_cache_home_are_honoured() {
    let home = tempfile::tempdir().unwrap();
    add_snapshot(&home.path().join("hub"), "acme/t0-tiny", COMMIT, &FILES);
    set_ref(&home.path().join("hub"), "acme/t0-tiny", "main", COMMIT);
    let mut args = vec!["generate", "--model", "acme/t0-tiny"];
    args.extend_from_slice(&GEN);
    let (code, _, err) = t0_env(&[("HF_HOME", home.path())], &args);
    assert_eq!(code, 0, "{err}");

    let xdg = tempfile::tempdir().unwrap();
    let root = xdg.path().join("huggingface").join("hub");
    add_snapshot(&root, "acme/t0-tiny", COMMIT, &FILES);
    set_ref(&root, "acme/t0-tiny", "main", COMMIT);
    let (code, _, err) = t0_env(&[("XDG_CACHE_HOME", xdg.path())], &args);
    assert_eq!(code, 0, "{err}");

    // HF_HUB_CACHE wins over HF_HOME.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = t0_env(&[("HF_HOME", home.path()), ("HF_HUB_CACHE", empty.path())], &args);
    assert_ne!(code, 0);
    assert!(err.contains(&empty.path().display().to_string()), "{err}");
}

#[test]
fn revision_as_commit_hash_or_ref() {
    let c = cache();
    let (code, main, err) = generate(c.path(), "acme/t0-tiny", &[]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = generate(c.path(), "acme/t0-tiny", &["--revision", OLD_COMMIT]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, main);
    set_ref(c.path(), "acme/t0-tiny", "v1.0", OLD_COMMIT);
    let (code, _, err) = generate(c.path(), "acme/t0-tiny", &["--revision", "v1.0"]);
    assert_eq!(code, 0, "{err}");
    set_ref(c.path(), "acme/t0-tiny", "refs/pr/1", COMMIT);
    let (code, _, err) = generate(c.path(), "acme/t0-tiny", &["--revision", "refs/pr/1"]);
    assert_eq!(code, 0, "{err}");
    // `-v` logs the snapshot that was found.
    let (code, _, err) = generate(c.path(), "acme/t0-tiny", &["-v", "--revision", OLD_COMMIT]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("snapshots/{OLD_COMMIT}")), "{err}");
}

fn fails_with(code: i32, err: &str, needles: &[&str]) {
    assert_ne!(code, 0, "expected a failure");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} does not mention {n:?}");
    }
}

#[test]
fn missing_revision_lists_what_the_cache_has() {
    let c = cache();
    let (code, _, err) = generate(c.path(), "acme/t0-tiny", &["--revision", "v9"]);
    fails_with(code, &err, &["has no revision `v9`", "refs/v9", "snapshots/v9", "refs [main]", OLD_COMMIT]);
    assert!(err.contains("huggingface-cli download acme/t0-tiny --revision v9"), "{err}");
}

#[test]
fn model_not_in_the_cache() {
    let c = cache();
    let (code, _, err) = generate(c.path(), "acme/absent", &[]);
    fails_with(
        code,
        &err,
        &["acme/absent", "not in the HF cache", "models--acme--absent", "huggingface-cli download acme/absent"],
    );
}

#[test]
fn ref_to_a_missing_snapshot() {
    let c = cache();
    set_ref(c.path(), "acme/t0-tiny", "main", "ffffffffffffffffffffffffffffffffffffffff");
    let (code, _, err) = generate(c.path(), "acme/t0-tiny", &[]);
    fails_with(code, &err, &["points to commit ffff", "interrupted download"]);
}

#[test]
fn missing_blob() {
    let c = cache();
    let snap = c.path().join("models--acme--t0-tiny/snapshots").join(COMMIT);
    let blob = std::fs::read_link(snap.join("model.safetensors")).unwrap();
    std::fs::remove_file(snap.join(&blob)).unwrap();
    let (code, _, err) = generate(c.path(), "acme/t0-tiny", &[]);
    fails_with(code, &err, &["model.safetensors is a link to", "does not exist", "interrupted download"]);
}

#[test]
fn revision_with_a_local_directory() {
    let c = cache();
    let dir = fixture();
    let (code, _, err) = generate(c.path(), dir.to_str().unwrap(), &["--revision", "main"]);
    fails_with(code, &err, &["local directory", "revision `main`"]);
}

#[test]
fn a_path_that_is_not_a_hub_id_is_a_missing_directory() {
    let c = cache();
    let (code, _, err) = generate(c.path(), "/nonexistent/model", &[]);
    fails_with(code, &err, &["/nonexistent/model", "does not exist"]);
}
