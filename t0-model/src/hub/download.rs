//! The `hub-download` feature: fetch a model missing from the HF cache into it with the
//! [`hf_hub`] crate (blocking HTTP through `ureq` with rustls), in the same layout
//! `huggingface_hub` writes (`blobs/`, `snapshots/<commit>/` links, `refs/<revision>`), so
//! Python tools and this crate share one cache.
//!
//! Only the files inference needs are fetched: `config.json`, `generation_config.json`, the
//! tokenizer files and the safetensors weights (one file or the shards of an index). The hub
//! endpoint is `$HF_ENDPOINT` when set; a token is read from the cache's `token` file as
//! `huggingface-cli login` writes it.
//!
//! The project's machines cannot reach the hub: `tests/hub_download.rs` (run with
//! `cargo test -p t0-model --features hub-download`) downloads from a local stand-in that
//! serves the hub's endpoints for the tiny fixture model.

use std::io::IsTerminal;
use std::path::PathBuf;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use super::HubCache;
use crate::{ModelError, Result};

/// Optional files fetched when the repository has them.
const OPTIONAL: [&str; 5] =
    ["generation_config.json", "spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

/// Download what inference needs of `repo_id` at `revision` into `cache` from the hub
/// (`$HF_ENDPOINT` when set); returns the snapshot directory.
pub fn download(cache: &HubCache, repo_id: &str, revision: &str) -> Result<PathBuf> {
    let endpoint = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty());
    download_from(cache, endpoint.as_deref(), repo_id, revision)
}

/// As [`download`], from `endpoint` (`None`: `https://huggingface.co`).
pub fn download_from(cache: &HubCache, endpoint: Option<&str>, repo_id: &str, revision: &str) -> Result<PathBuf> {
    let err = |reason: String| ModelError::Hub { spec: repo_id.to_string(), reason };
    let mut builder =
        ApiBuilder::from_cache(Cache::new(cache.root().to_path_buf())).with_progress(std::io::stderr().is_terminal());
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint.to_string());
    }
    let api = builder.build().map_err(|e| err(format!("cannot start the hub client: {e}")))?;
    let repo = api.repo(Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string()));
    let info = repo.info().map_err(|e| {
        err(format!("is not in the HF cache ({}), and asking the hub for it failed: {e}", cache.root().display()))
    })?;
    let on_hub: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let get = |name: &str| repo.get(name).map_err(|e| err(format!("downloading {name} at {revision}: {e}")));

    let config = get("config.json")?;
    for name in OPTIONAL.iter().filter(|n| on_hub.contains(n)) {
        get(name)?;
    }
    if on_hub.contains(&"model.safetensors") {
        get("model.safetensors")?;
    } else if on_hub.contains(&"model.safetensors.index.json") {
        let index = get("model.safetensors.index.json")?;
        let text = std::fs::read_to_string(&index).map_err(|source| ModelError::Io { path: index.clone(), source })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(format!("{}: not valid JSON: {e}", index.display())))?;
        let mut shards: Vec<&str> =
            v["weight_map"].as_object().map(|m| m.values().filter_map(|f| f.as_str()).collect()).unwrap_or_default();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            get(shard)?;
        }
    } else {
        return Err(err(format!(
            "has no safetensors weights on the hub at {revision} (files: {}); t0 reads safetensors only",
            on_hub.join(", ")
        )));
    }
    config.parent().map(|p| p.to_path_buf()).ok_or_else(|| err(format!("{} has no parent", config.display())))
}
