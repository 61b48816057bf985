//! Finding a model's tensors by their HF names across its safetensors file(s), with shape and
//! dtype checks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use std::sync::Arc;

use t0_kernels::{PackDType, PackedWeight, SharedPanels};
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

/// `__metadata__["format"]` of a file written by `t0 convert` (see [`crate::convert`]).
pub const PACKED_FORMAT: &str = "t0-packed";
/// `__metadata__` key holding the packed dtype (`f32`, `bf16` or `int8`).
pub const PACKED_DTYPE_KEY: &str = "t0.packed_dtype";
/// `__metadata__` key holding the packed layout's version.
pub const PACKED_VERSION_KEY: &str = "t0.packed_version";
/// The packed layout version this build writes and reads.
pub const PACKED_VERSION: &str = "1";

/// Name of the tensor holding the panels of the packed linear `key` (e.g.
/// `encoder.block.0.layer.0.SelfAttention.qkv`).
pub fn panels_name(key: &str) -> String {
    format!("{key}.t0_panels")
}

/// Name of the tensor holding the int8 scales of the packed linear `key`.
pub fn scales_name(key: &str) -> String {
    format!("{key}.t0_scales")
}

/// The name `t0 convert` writes and `--dtype` takes for a packed dtype.
pub fn dtype_name(d: PackDType) -> &'static str {
    match d {
        PackDType::F32 => "f32",
        PackDType::Bf16 => "bf16",
        PackDType::Int8 => "int8",
    }
}

/// The safetensors element type a packed dtype's panels are stored as.
pub fn panel_tensor_dtype(d: PackDType) -> DType {
    match d {
        PackDType::F32 => DType::F32,
        PackDType::Bf16 => DType::BF16,
        PackDType::Int8 => DType::I8,
    }
}

/// A mapped tensor as the panels of a [`PackedWeight`]: read in place, kept alive by the map.
struct MappedPanels(Tensor);

impl SharedPanels for MappedPanels {
    fn panel_bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

impl WeightFiles {
    /// The dtype the linear weights were packed to by `t0 convert`, or `None` for an ordinary
    /// checkpoint. A file marked as packed with an unknown dtype or layout version is an error.
    pub fn packed_dtype(&self) -> Result<Option<PackDType>> {
        let Some(f) = self.files.first() else { return Ok(None) };
        let meta = f.metadata();
        if meta.get("format").map(String::as_str) != Some(PACKED_FORMAT) {
            return Ok(None);
        }
        let bad = |key: &str, reason: String| ModelError::Config {
            path: f.path().to_path_buf(),
            key: format!("__metadata__.{key}"),
            reason,
        };
        match meta.get(PACKED_VERSION_KEY).map(String::as_str) {
            Some(PACKED_VERSION) => {}
            v => {
                return Err(bad(
                    PACKED_VERSION_KEY,
                    format!("packed layout version {v:?}; this build reads version {PACKED_VERSION}: convert the original model again"),
                ))
            }
        }
        match meta.get(PACKED_DTYPE_KEY).map(String::as_str) {
            Some("f32") => Ok(Some(PackDType::F32)),
            Some("bf16") => Ok(Some(PackDType::Bf16)),
            Some("int8") => Ok(Some(PackDType::Int8)),
            v => Err(bad(PACKED_DTYPE_KEY, format!("{v:?} is not a packed dtype (f32, bf16 or int8)"))),
        }
    }

    /// The linear weight `key` (`[rows, cols]` before packing) as `t0 convert` stored it:
    /// panels used in place from the map (`in_place`) or copied into memory of their own (the
    /// mapped pages are then released), int8 scales copied. Shapes and dtypes are checked.
    pub fn packed(
        &self,
        key: &str,
        rows: usize,
        cols: usize,
        dtype: PackDType,
        in_place: bool,
    ) -> Result<PackedWeight> {
        let name = panels_name(key);
        let file = self.file_of(&name)?;
        let path = || file.path().to_path_buf();
        let (found, found_dtype) = file.info(&name)?;
        let expected = PackedWeight::layout(rows, cols, dtype).to_vec();
        if found != expected {
            return Err(ModelError::Shape { file: path(), name, expected, found });
        }
        let want_dtype = panel_tensor_dtype(dtype);
        if found_dtype != want_dtype {
            return Err(ModelError::InvalidArgument(format!(
                "{}: tensor `{name}` has dtype {found_dtype}; {} panels are {want_dtype}",
                path().display(),
                dtype_name(dtype)
            )));
        }
        let panels = file.tensor(&name)?;
        self.used.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone());
        let scales = if dtype == PackDType::Int8 {
            let sname = scales_name(key);
            let n = rows.div_ceil(t0_kernels::matmul::PANEL) * t0_kernels::matmul::PANEL;
            self.get_f32(&sname, &[n])?
        } else {
            Vec::new()
        };
        let w = PackedWeight::from_parts(dtype, rows, cols, Arc::new(MappedPanels(panels)), scales, Vec::new())
            .map_err(|e| ModelError::InvalidArgument(format!("{}: packed weight `{key}`: {e}", path().display())))?;
        if in_place {
            return Ok(w);
        }
        let owned = w.into_owned();
        file.release(&name);
        Ok(owned)
    }

    /// Names handed out so far (by [`WeightFiles::get`] and [`WeightFiles::packed`]), sorted.
    pub fn used(&self) -> Vec<String> {
        let mut v: Vec<String> = self.used.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        v.sort();
        v
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
