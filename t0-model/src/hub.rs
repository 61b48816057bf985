//! Finding a model given as a directory **or** a Hugging Face hub id (`bigscience/T0_3B`) in the
//! local HF cache, laid out exactly as `huggingface_hub` writes it:
//!
//! ```text
//! $HF_HUB_CACHE/                          (else $HF_HOME/hub, else ~/.cache/huggingface/hub)
//! └── models--bigscience--T0_3B/
//!     ├── refs/main                       a commit hash, e.g. 3f5c…
//!     ├── snapshots/3f5c…/config.json     → ../../blobs/<sha256>  (symlinks)
//!     └── blobs/<sha256>
//! ```
//!
//! A revision is a ref under `refs/` (default `main`; also a branch or tag name that was
//! downloaded) or a commit hash naming a `snapshots/` folder. Nothing here touches the network:
//! the cache is filled by `huggingface-cli download bigscience/T0_3B` (or by `transformers`, or
//! by this crate's `hub-download` feature: with it, [`resolve_model`] downloads a hub id missing
//! from the cache into it).
//!
//! ```
//! use t0_model::hub::{resolve_model, HubCache};
//! # let tmp = std::env::temp_dir().join(format!("t0-hub-doc-{}", std::process::id()));
//! # let repo = tmp.join("models--acme--tiny-t5");
//! # std::fs::create_dir_all(repo.join("refs")).unwrap();
//! # std::fs::create_dir_all(repo.join("snapshots/0123abcd")).unwrap();
//! # std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
//! # std::fs::write(repo.join("snapshots/0123abcd/config.json"), "{}").unwrap();
//! // A cache at an explicit root (`HubCache::from_env()` reads HF_HUB_CACHE / HF_HOME).
//! let cache = HubCache::new(&tmp);
//! let dir = cache.snapshot("acme/tiny-t5", "main")?;
//! assert!(dir.ends_with("models--acme--tiny-t5/snapshots/0123abcd"));
//!
//! // A directory that exists is used as it is, whatever it is called.
//! assert_eq!(resolve_model(tmp.to_str().unwrap(), None)?, tmp);
//! # std::fs::remove_dir_all(&tmp).unwrap();
//! # Ok::<(), t0_model::ModelError>(())
//! ```

use std::path::{Path, PathBuf};

use crate::{ModelError, Result};

/// The revision used when none is given.
pub const DEFAULT_REVISION: &str = "main";

/// Where the cache root came from (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheSource {
    /// An explicit root ([`HubCache::new`]).
    Explicit,
    /// The environment variable of this name (`HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`,
    /// `HF_HOME` or `XDG_CACHE_HOME`).
    Env(&'static str),
    /// The default, `~/.cache/huggingface/hub`.
    Default,
}

impl std::fmt::Display for CacheSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheSource::Explicit => write!(f, "given explicitly"),
            CacheSource::Env(v) => write!(f, "from ${v}"),
            CacheSource::Default => write!(f, "the default; set HF_HUB_CACHE or HF_HOME to use another"),
        }
    }
}

/// A Hugging Face hub cache directory (the folder holding `models--org--name/` folders).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
    source: CacheSource,
}

impl HubCache {
    /// The cache at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), source: CacheSource::Explicit }
    }

    /// The cache `huggingface_hub` would use in this environment: `$HF_HUB_CACHE`, else
    /// `$HUGGINGFACE_HUB_CACHE` (its older name), else `$HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. A leading `~` is
    /// expanded; empty variables count as unset.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var_os(k).map(PathBuf::from)).ok_or_else(|| ModelError::Hub {
            spec: "(cache)".into(),
            reason: "cannot find the HF cache: HF_HUB_CACHE, HF_HOME and HOME are all unset".into(),
        })
    }

    /// As [`HubCache::from_env`], reading variables through `var` (for tests and embedding).
    ///
    /// ```
    /// use t0_model::hub::HubCache;
    /// let c = HubCache::from_vars(|k| (k == "HF_HOME").then(|| "/data/hf".into())).unwrap();
    /// assert_eq!(c.root(), std::path::Path::new("/data/hf/hub"));
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<PathBuf>) -> Option<Self> {
        let get = |k: &str| var(k).filter(|v| !v.as_os_str().is_empty());
        let home = get("HOME").or_else(|| get("USERPROFILE"));
        let expand = |p: PathBuf| -> PathBuf {
            match (p.strip_prefix("~"), &home) {
                (Ok(rest), Some(h)) => h.join(rest),
                _ => p,
            }
        };
        for key in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"] {
            if let Some(p) = get(key) {
                return Some(Self { root: expand(p), source: CacheSource::Env(key) });
            }
        }
        if let Some(p) = get("HF_HOME") {
            return Some(Self { root: expand(p).join("hub"), source: CacheSource::Env("HF_HOME") });
        }
        if let Some(p) = get("XDG_CACHE_HOME") {
            return Some(Self {
                root: expand(p).join("huggingface").join("hub"),
                source: CacheSource::Env("XDG_CACHE_HOME"),
            });
        }
        home.map(|h| Self { root: h.join(".cache").join("huggingface").join("hub"), source: CacheSource::Default })
    }

    /// The cache's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the root came from.
    pub fn source(&self) -> &CacheSource {
        &self.source
    }

    /// The folder of a model repository: `models--org--name` (`/` becomes `--`, as in
    /// `huggingface_hub`'s `repo_folder_name`).
    pub fn repo_dir(&self, repo_id: &str) -> PathBuf {
        self.root.join(format!("models--{}", repo_id.replace('/', "--")))
    }

    /// The snapshot folder of `repo_id` at `revision` (a ref such as `main`, or a commit hash),
    /// checked to hold a `config.json` that is not a dangling link.
    pub fn snapshot(&self, repo_id: &str, revision: &str) -> Result<PathBuf> {
        let err = |reason: String| ModelError::Hub { spec: repo_id.to_string(), reason };
        if !is_repo_id(repo_id) {
            return Err(err("is not a hub model id (expected `name` or `org/name`)".into()));
        }
        check_revision(revision).map_err(|r| err(format!("has an invalid revision {revision:?}: it {r}")))?;
        let repo = self.repo_dir(repo_id);
        tracing::debug!(repo = %repo.display(), revision, "looking up the HF cache");
        if !repo.is_dir() {
            return Err(err(format!(
                "is not in the HF cache: {} does not exist (cache {}, {}). Download it with \
                 `huggingface-cli download {repo_id}`",
                repo.display(),
                self.root.display(),
                self.source
            )));
        }
        let ref_file = repo.join("refs").join(revision);
        let snapshots = repo.join("snapshots");
        let snap = if ref_file.is_file() {
            let text = std::fs::read_to_string(&ref_file)
                .map_err(|source| ModelError::Io { path: ref_file.clone(), source })?;
            let hash = text.trim();
            if hash.is_empty() || hash.contains(['/', '\\']) || hash == ".." || hash == "." {
                return Err(err(format!(
                    "has a broken HF cache entry: {} holds {hash:?}, not a commit hash",
                    ref_file.display()
                )));
            }
            let snap = snapshots.join(hash);
            if !snap.is_dir() {
                return Err(err(format!(
                    "is incomplete in the HF cache: {} points to commit {hash}, but {} does not exist (an interrupted download?). \
                     Download it again with `huggingface-cli download {repo_id}{}`",
                    ref_file.display(),
                    snap.display(),
                    revision_flag(revision)
                )));
            }
            snap
        } else if snapshots.join(revision).is_dir() {
            snapshots.join(revision)
        } else {
            return Err(err(format!(
                "has no revision `{revision}` in the HF cache: neither {} nor {} exists (the cache has refs [{}] \
                 and snapshots [{}]). Download it with `huggingface-cli download {repo_id}{}`",
                ref_file.display(),
                snapshots.join(revision).display(),
                list_dir(&repo.join("refs")).join(", "),
                list_dir(&snapshots).join(", "),
                revision_flag(revision)
            )));
        };
        check_snapshot(repo_id, revision, &snap)?;
        tracing::info!(snapshot = %snap.display(), "{repo_id}@{revision} found in the HF cache");
        Ok(snap)
    }
}

fn revision_flag(revision: &str) -> String {
    if revision == DEFAULT_REVISION {
        String::new()
    } else {
        format!(" --revision {revision}")
    }
}

/// Names in `dir` (files and folders, recursively one level for `refs/pr/…`), sorted.
fn list_dir(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && dir.ends_with("refs") {
                for sub in list_dir(&e.path()) {
                    out.push(format!("{name}/{sub}"));
                }
            } else {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

/// A snapshot must have `config.json`, and none of its entries may be a link to a missing blob.
fn check_snapshot(repo_id: &str, revision: &str, snap: &Path) -> Result<()> {
    let err = |reason: String| ModelError::Hub { spec: repo_id.to_string(), reason };
    let entries = std::fs::read_dir(snap).map_err(|source| ModelError::Io { path: snap.to_path_buf(), source })?;
    for e in entries.flatten() {
        let p = e.path();
        let is_link = std::fs::symlink_metadata(&p).map(|m| m.file_type().is_symlink()).unwrap_or(false);
        if is_link && !p.exists() {
            let target = std::fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(err(format!(
                "is incomplete in the HF cache: {} is a link to {target}, which does not exist (a blob is missing: an interrupted download?). \
                 Download it again with `huggingface-cli download {repo_id}{}`",
                p.display(),
                revision_flag(revision)
            )));
        }
    }
    if !snap.join("config.json").is_file() {
        return Err(err(format!(
            "is incomplete in the HF cache: {} has no config.json (only part of the repository was downloaded?). Download it with \
             `huggingface-cli download {repo_id}{}`",
            snap.display(),
            revision_flag(revision)
        )));
    }
    Ok(())
}

fn check_revision(revision: &str) -> std::result::Result<(), &'static str> {
    if revision.is_empty() {
        return Err("is empty");
    }
    if revision.starts_with('/') || revision.contains('\\') || revision.contains('\0') {
        return Err("is not a ref name or commit hash");
    }
    if revision.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("is not a ref name or commit hash");
    }
    Ok(())
}

/// True if `s` has the form of a hub model id: `name` or `org/name`, each part made of ASCII
/// letters, digits, `-`, `_` and `.`, not starting or ending with `-` or `.`, without `--` or
/// `..`, at most 96 characters (huggingface_hub's `validate_repo_id` rules).
///
/// ```
/// use t0_model::hub::is_repo_id;
/// assert!(is_repo_id("bigscience/T0_3B"));
/// assert!(is_repo_id("t5-small"));
/// assert!(!is_repo_id("/models/T0_3B"));
/// assert!(!is_repo_id("a/b/c"));
/// assert!(!is_repo_id("../T0"));
/// ```
pub fn is_repo_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    if s.len() > 96 || parts.len() > 2 || s.contains("--") || s.contains("..") {
        return false;
    }
    parts.iter().all(|p| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
    })
}

/// The model directory for `spec`: `spec` itself when it is an existing directory, else the
/// HF cache snapshot of the hub id `spec` at `revision` (default `main`), found through
/// [`HubCache::from_env`].
///
/// With the `hub-download` feature, a hub id missing from the cache is downloaded into it
/// (unless `HF_HUB_OFFLINE` is set).
///
/// A `spec` that is neither an existing directory nor a hub id is returned as it is, so the
/// loader reports the missing directory. A `revision` given with an existing directory is an
/// error (revisions only mean something for the hub).
pub fn resolve_model(spec: &str, revision: Option<&str>) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        if let Some(rev) = revision {
            return Err(ModelError::Hub {
                spec: spec.to_string(),
                reason: format!(
                    "is a local directory, so revision `{rev}` does not apply (revisions select a snapshot of a \
                     hub id such as bigscience/T0_3B)"
                ),
            });
        }
        tracing::debug!(dir = %path.display(), "model is a local directory");
        return Ok(path.to_path_buf());
    }
    if !is_repo_id(spec) || path.exists() {
        return Ok(path.to_path_buf());
    }
    let revision = revision.unwrap_or(DEFAULT_REVISION);
    let cache = HubCache::from_env()?;
    match cache.snapshot(spec, revision) {
        Ok(dir) => Ok(dir),
        Err(e) => {
            #[cfg(feature = "hub-download")]
            if std::env::var_os("HF_HUB_OFFLINE").is_none_or(|v| v.is_empty() || v == "0") {
                tracing::info!("{spec}@{revision} is not in the HF cache: downloading it");
                return download::download(&cache, spec, revision);
            }
            Err(match e {
                ModelError::Hub { spec, reason } => {
                    ModelError::Hub { spec, reason: format!("is not a local directory, and {reason}") }
                }
                other => other,
            })
        }
    }
}

#[cfg(feature = "hub-download")]
pub mod download;
#[cfg(feature = "hub-download")]
pub use download::{download, download_from};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_root_precedence() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| PathBuf::from(p.1))
        };
        let root = |pairs: &'static [(&'static str, &'static str)]| HubCache::from_vars(vars(pairs)).map(|c| c.root);
        assert_eq!(root(&[("HOME", "/h")]), Some("/h/.cache/huggingface/hub".into()));
        assert_eq!(root(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]), Some("/x/huggingface/hub".into()));
        assert_eq!(root(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x"), ("HF_HOME", "~/hf")]), Some("/h/hf/hub".into()));
        assert_eq!(root(&[("HF_HOME", "/hf"), ("HUGGINGFACE_HUB_CACHE", "/old")]), Some("/old".into()));
        assert_eq!(
            root(&[("HF_HOME", "/hf"), ("HUGGINGFACE_HUB_CACHE", "/old"), ("HF_HUB_CACHE", "/c")]),
            Some("/c".into())
        );
        assert_eq!(root(&[("HF_HUB_CACHE", ""), ("HF_HOME", "/hf")]), Some("/hf/hub".into()));
        assert_eq!(root(&[]), None);
    }

    #[test]
    fn repo_folder_names() {
        let c = HubCache::new("/c");
        assert_eq!(c.repo_dir("bigscience/T0_3B"), PathBuf::from("/c/models--bigscience--T0_3B"));
        assert_eq!(c.repo_dir("t5-small"), PathBuf::from("/c/models--t5-small"));
    }

    #[test]
    fn revisions_are_checked() {
        assert!(check_revision("main").is_ok());
        assert!(check_revision("refs/pr/1").is_ok());
        assert!(check_revision("0123456789abcdef0123456789abcdef01234567").is_ok());
        for bad in ["", "../x", "/etc", "a//b", "a/./b", "a\\b"] {
            assert!(check_revision(bad).is_err(), "{bad:?}");
        }
    }
}
