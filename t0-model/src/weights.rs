//! Finding a model's tensors by their HF names across its safetensors file(s), with shape and
//! dtype checks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use t0_tensor::{DType, SafeTensorsFile, Tensor};

use crate::{ModelError, Result};

/// The safetensors files of one model directory (one file, or the shards of an index).
#[derive(Debug)]
pub struct WeightFiles {
    dir: PathBuf,
    files: Vec<SafeTensorsFile>,
    /// tensor name → index into `files`.
    index: HashMap<String, usize>,
    /// Names handed out by [`WeightFiles::get`] (to report the tensors nothing used).
    used: Mutex<HashSet<String>>,
}

/// The safetensors files of a model directory: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json`. An error names what is missing (and what to do when the
/// directory has only `pytorch_model.bin`).
pub fn weight_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    let index_path = dir.join("model.safetensors.index.json");
    if single.is_file() {
        Ok(vec![single])
    } else if index_path.is_file() {
        shard_files(dir, &index_path)
    } else {
        let what = if dir.join("pytorch_model.bin").is_file() {
            "has only pytorch_model.bin; t0 reads safetensors. Convert it once with Python: \
             `from transformers import T5ForConditionalGeneration as M; \
             M.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)`"
                .to_string()
        } else {
            "no model.safetensors or model.safetensors.index.json".to_string()
        };
        Err(ModelError::MissingFile { dir: dir.to_path_buf(), what })
    }
}

impl WeightFiles {
    /// Open `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let names = weight_paths(dir)?;
        tracing::debug!(dir = %dir.display(), files = names.len(), "opening safetensors");
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for path in names {
            let f = SafeTensorsFile::open(&path)?;
            for n in f.names() {
                index.insert(n.to_string(), files.len());
            }
            files.push(f);
        }
        Ok(Self { dir: dir.to_path_buf(), files, index, used: Mutex::new(HashSet::new()) })
    }

    /// Names of the tensors no [`WeightFiles::get`] has asked for, sorted, leaving out
    /// `ignore` (tensors a checkpoint may hold that the model does not need, such as the
    /// copies of a tied embedding).
    pub fn unused(&self, ignore: &[&str]) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> =
            self.names().filter(|n| !used.contains(*n) && !ignore.contains(n)).map(str::to_string).collect();
        out.sort();
        out
    }

    /// The files, in the order they were opened (shards sorted by name).
    pub fn files(&self) -> &[SafeTensorsFile] {
        &self.files
    }

    /// True when the weights come from the shards of `model.safetensors.index.json`.
    pub fn is_sharded(&self) -> bool {
        !self.dir.join("model.safetensors").is_file()
    }

    /// True when some file holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// All tensor names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The file holding `name`.
    pub fn file_of(&self, name: &str) -> Result<&SafeTensorsFile> {
        self.index
            .get(name)
            .map(|&i| &self.files[i])
            .ok_or_else(|| ModelError::MissingTensor { dir: self.dir.clone(), name: name.to_string() })
    }

    /// Tensor `name`, checked to have `shape` and a float dtype the kernels take.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let file = self.file_of(name)?;
        let (found, dtype) = file.info(name)?;
        if found != shape {
            let file = file.path().to_path_buf();
            return Err(ModelError::Shape { file, name: name.to_string(), expected: shape.to_vec(), found });
        }
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(ModelError::InvalidArgument(format!(
                "{}: tensor `{name}` has dtype {dtype}; weights must be f32, bf16 or f16",
                file.path().display()
            )));
        }
        self.used.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string());
        Ok(file.tensor(name)?)
    }

    /// Tensor `name` widened to an owned f32 vector (for small tensors: norms, bias tables).
    pub fn get_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.get(name, shape)?.to_f32_vec())
    }

    /// The first of `names` that exists.
    pub fn first_of(&self, names: &[&str], shape: &[usize]) -> Result<Tensor> {
        match names.iter().find(|n| self.contains(n)) {
            Some(n) => self.get(n, shape),
            None => Err(ModelError::MissingTensor { dir: self.dir.clone(), name: names.join("` or `") }),
        }
    }
}

fn shard_files(dir: &Path, index_path: &Path) -> Result<Vec<PathBuf>> {
    let bad = |reason: String| ModelError::Config { path: index_path.to_path_buf(), key: "weight_map".into(), reason };
    let text = std::fs::read_to_string(index_path)
        .map_err(|source| ModelError::Io { path: index_path.to_path_buf(), source })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("missing or not an object".into()))?;
    let mut shards: Vec<PathBuf> = Vec::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| bad(format!("`{name}` maps to {file}, not a file name")))?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(bad(format!("`{name}` maps to {file:?}, which is not a file in the model directory")));
        }
        let p = dir.join(file);
        if !shards.contains(&p) {
            shards.push(p);
        }
    }
    shards.sort();
    Ok(shards)
}
