//! Converted models: `t0 convert --model DIR --dtype f32|bf16|int8 --out DIR2`.
//!
//! Converting at load ([`crate::LoadOptions::dtype`]) repacks every linear weight each time a
//! model is loaded. [`convert`] does it once and writes the result: a model directory whose
//! `model.safetensors` holds the linear weights already in the kernels' packed layout, so that
//! loading it does no conversion at all and uses the panels **in place from the memory map**
//! (load time is the time to map the file; pages are read on first use and shared between
//! processes).
//!
//! # File layout
//!
//! An ordinary safetensors file, marked in `__metadata__` with `format = "t0-packed"`,
//! `t0.packed_dtype` (`f32`, `bf16` or `int8`) and `t0.packed_version` (`1`):
//!
//! - `KEY.t0_panels`: one packed linear weight, shape [`PackedWeight::layout`] (`[panels,
//!   padded cols / g, 32·g]`), element type F32, BF16 or I8. `KEY` is the HF name without
//!   `.weight`, except for the weights that are packed together: `…SelfAttention.qkv` (q, k and v
//!   stacked by rows), `…DenseReluDense.wi` (`wi_0` and `wi_1` stacked for gated blocks), and
//!   `lm_head` (also for tied embeddings).
//! - `KEY.t0_scales`: int8 only, one f32 scale per row padded to whole panels.
//! - every other tensor the model reads (embedding, layer norms, relative-position tables),
//!   copied as the source stores it under its HF name.
//!
//! The panels come first and the header is padded so that every panel tensor starts on a
//! 64-byte boundary of the file. `config.json`, the tokenizer and generation files are copied
//! beside it. The output directory is written under a temporary name and renamed into place
//! when complete: an interrupted conversion leaves no half-written model.
//!
//! The converted model computes exactly what the source loaded with the same dtype computes
//! (the same packing code produced the bytes), which `tests/convert.rs` checks.
//!
//! ```
//! # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
//! use t0_model::{convert, GenerationConfig, LoadOptions, PackDType, T5Model};
//! let out = std::env::temp_dir().join(format!("t0-doc-convert-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&out);
//! let src = std::path::Path::new("tests/fixtures/models/t0-tiny");
//! let report = convert::convert(src, PackDType::Int8, &out, LoadOptions::default(), &|_, _, _| {})?;
//! assert!(report.bytes > 0);
//! let converted = T5Model::from_dir(&out)?; // int8, read in place
//! let direct = T5Model::load(src, LoadOptions::with_dtype(PackDType::Int8))?;
//! let ids = vec![vec![27, 7, 48, 1]];
//! let cfg = GenerationConfig::greedy(8);
//! assert_eq!(converted.generate(&ids, &cfg)?[0][0].token_ids, direct.generate(&ids, &cfg)?[0][0].token_ids);
//! # std::fs::remove_dir_all(&out).unwrap();
//! # Ok::<(), t0_model::ModelError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use t0_kernels::{PackDType, PackedWeight};
use t0_tensor::{SafeTensorsWriter, TensorSpec};

use crate::attention::{Qkv, SelfAttention};
use crate::feed_forward::{FeedForward, Wi};
use crate::linear::Linear;
use crate::weights::{
    dtype_name, panel_tensor_dtype, panels_name, scales_name, PACKED_DTYPE_KEY, PACKED_FORMAT, PACKED_VERSION,
    PACKED_VERSION_KEY,
};
use crate::{LoadOptions, ModelError, Result, T5Model};

/// What [`convert`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertReport {
    /// The converted model directory.
    pub out: PathBuf,
    /// The packed dtype.
    pub dtype: PackDType,
    /// Bytes of the written `model.safetensors`.
    pub bytes: u64,
    /// Packed linear weights written.
    pub packed: usize,
    /// Other tensors copied as stored.
    pub copied: usize,
    /// Side files copied (config, tokenizer, generation config).
    pub files: Vec<String>,
}

/// Suffixes of the HF names of linear weights (replaced by packed tensors).
const LINEAR_SUFFIXES: [&str; 8] =
    [".q.weight", ".k.weight", ".v.weight", ".o.weight", ".wi.weight", ".wi_0.weight", ".wi_1.weight", ".wo.weight"];

/// True for a tensor [`convert`] replaces by a packed one (or that is packed already).
fn is_linear_source(name: &str) -> bool {
    name == "lm_head.weight"
        || LINEAR_SUFFIXES.iter().any(|s| name.ends_with(s))
        || name.ends_with(".t0_panels")
        || name.ends_with(".t0_scales")
}

/// Files of a model directory that are weights in some format (not copied).
fn is_weight_file(name: &str) -> bool {
    [".safetensors", ".bin", ".h5", ".msgpack", ".ckpt", ".pt", ".pth", ".onnx", ".index.json"]
        .iter()
        .any(|s| name.ends_with(s))
}

impl T5Model {
    /// Every linear layer, under the key a converted file stores it at, in forward order.
    pub(crate) fn linears(&self) -> Vec<(String, &Linear)> {
        fn self_attn<'a>(out: &mut Vec<(String, &'a Linear)>, p: String, a: &'a SelfAttention) {
            match &a.qkv {
                Qkv::Fused(l) => out.push((format!("{p}.qkv"), l)),
                Qkv::Separate([q, k, v]) => {
                    out.extend([(format!("{p}.q"), q), (format!("{p}.k"), k), (format!("{p}.v"), v)]);
                }
            }
            out.push((format!("{p}.o"), &a.o));
        }
        fn ff<'a>(out: &mut Vec<(String, &'a Linear)>, p: String, f: &'a FeedForward) {
            match &f.wi {
                Wi::Plain(l) | Wi::GatedFused(l) => out.push((format!("{p}.wi"), l)),
                Wi::Gated { gate, up } => out.extend([(format!("{p}.wi_0"), gate), (format!("{p}.wi_1"), up)]),
            }
            out.push((format!("{p}.wo"), &f.wo));
        }
        let mut out = Vec::new();
        for (i, l) in self.encoder.layers.iter().enumerate() {
            self_attn(&mut out, format!("encoder.block.{i}.layer.0.SelfAttention"), &l.attn);
            ff(&mut out, format!("encoder.block.{i}.layer.1.DenseReluDense"), &l.ff);
        }
        for (i, l) in self.decoder.layers.iter().enumerate() {
            self_attn(&mut out, format!("decoder.block.{i}.layer.0.SelfAttention"), &l.self_attn);
            let p = format!("decoder.block.{i}.layer.1.EncDecAttention");
            let a = &l.cross_attn;
            out.extend([
                (format!("{p}.q"), &a.q),
                (format!("{p}.k"), &a.k),
                (format!("{p}.v"), &a.v),
                (format!("{p}.o"), &a.o),
            ]);
            ff(&mut out, format!("decoder.block.{i}.layer.2.DenseReluDense"), &l.ff);
        }
        out.push(("lm_head".to_string(), &self.lm_head));
        out
    }
}

/// One tensor of the output file: its spec and where its bytes come from.
enum Source<'a> {
    Panels(&'a PackedWeight),
    Scales(&'a PackedWeight),
    Copied(t0_tensor::Tensor),
}

/// Convert the model in `src` to `dtype` and write it to the new directory `out` (see the module
/// docs). `options` are the load options for reading `src` (its `dtype` is replaced by `dtype`);
/// `progress(what, done, total)` is called while loading (per linear weight) and then while
/// writing (per tensor). `out` must not exist yet.
pub fn convert(
    src: &Path,
    dtype: PackDType,
    out: &Path,
    options: LoadOptions,
    progress: &dyn Fn(&str, usize, usize),
) -> Result<ConvertReport> {
    if out.exists() {
        return Err(ModelError::InvalidArgument(format!(
            "{}: already exists; t0 convert writes a new directory and never overwrites one",
            out.display()
        )));
    }
    let (model, files) = T5Model::load_with_files(src, LoadOptions { dtype: Some(dtype), ..options }, progress)?;

    let linears = model.linears();
    let mut specs = Vec::new();
    let mut sources = Vec::new();
    for (key, l) in &linears {
        let Some(p) = l.packed_weight() else {
            return Err(ModelError::InvalidArgument(format!("{key}: not packed after loading with a dtype")));
        };
        let shape = PackedWeight::layout(p.rows(), p.cols(), dtype).to_vec();
        specs.push(TensorSpec::new(panels_name(key), panel_tensor_dtype(dtype), shape));
        sources.push(Source::Panels(p));
    }
    for (key, l) in &linears {
        if let Some(p) = l.packed_weight().filter(|p| !p.scales().is_empty()) {
            specs.push(TensorSpec::new(scales_name(key), t0_tensor::DType::F32, vec![p.scales().len()]));
            sources.push(Source::Scales(p));
        }
    }
    let mut copied = 0;
    for name in files.used() {
        if is_linear_source(&name) {
            continue;
        }
        let t = files.file_of(&name)?.tensor(&name)?;
        specs.push(TensorSpec::new(name, t.dtype(), t.shape().to_vec()));
        sources.push(Source::Copied(t));
        copied += 1;
    }
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), PACKED_FORMAT.to_string());
    meta.insert(PACKED_DTYPE_KEY.to_string(), dtype_name(dtype).to_string());
    meta.insert(PACKED_VERSION_KEY.to_string(), PACKED_VERSION.to_string());

    let tmp = temp_dir(out);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let written = (|| -> Result<Vec<String>> {
        let mut w = SafeTensorsWriter::create(&tmp.join("model.safetensors"), &specs, meta)?;
        let total = specs.len();
        for (i, (spec, source)) in specs.iter().zip(&sources).enumerate() {
            let bytes: &[u8] = match source {
                Source::Panels(p) => p.panel_data(),
                Source::Scales(p) => bytemuck::cast_slice(p.scales()),
                Source::Copied(t) => t.bytes(),
            };
            w.write_tensor(&spec.name, bytes)?;
            progress(&spec.name, i + 1, total);
        }
        w.finish()?;
        copy_side_files(src, &tmp)
    })();
    let result = written.and_then(|files| {
        std::fs::rename(&tmp, out).map_err(io(out))?;
        Ok(files)
    });
    let side_files = match result {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let weights = out.join("model.safetensors");
    let bytes = std::fs::metadata(&weights).map_err(io(&weights))?.len();
    Ok(ConvertReport { out: out.to_path_buf(), dtype, bytes, packed: linears.len(), copied, files: side_files })
}

/// The directory [`convert`] writes into before renaming it to `out` (`.NAME.PID.tmp` beside
/// it): for a signal handler that must remove what an interrupted run left.
pub fn temp_dir(out: &Path) -> PathBuf {
    let name = out.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    out.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Copy `src`'s regular files other than weights (config, tokenizer, generation config, …)
/// into `dst`; returns their names, sorted.
fn copy_side_files(src: &Path, dst: &Path) -> Result<Vec<String>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || is_weight_file(&name) || !path.is_file() {
            continue;
        }
        std::fs::copy(&path, dst.join(&name)).map_err(io(&path))?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_sources_and_weight_files() {
        assert!(is_linear_source("encoder.block.3.layer.0.SelfAttention.q.weight"));
        assert!(is_linear_source("decoder.block.0.layer.2.DenseReluDense.wi_1.weight"));
        assert!(is_linear_source("lm_head.weight"));
        assert!(is_linear_source("lm_head.t0_panels"));
        assert!(!is_linear_source("shared.weight"));
        assert!(!is_linear_source("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"));
        assert!(!is_linear_source("decoder.block.1.layer.1.layer_norm.weight"));
        assert!(is_weight_file("model.safetensors") && is_weight_file("pytorch_model.bin"));
        assert!(!is_weight_file("spiece.model") && !is_weight_file("config.json"));
    }
}
