//! [`ModelInfo`]: what a model directory holds, read from `config.json` and the safetensors
//! headers only (no weight is loaded): the architecture, parameter count, stored dtypes, memory
//! the weights need at each load dtype, and the tokenizer. `t0 inspect` prints it.
//!
//! ```
//! use t0_model::inspect::ModelInfo;
//! # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
//! let info = ModelInfo::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
//! assert_eq!(info.config.d_model, 32);
//! assert_eq!(info.tokenizer.as_deref(), Some("spiece.model"));
//! let int8 = info.memory.iter().find(|m| m.dtype == "int8").unwrap();
//! let f32 = info.memory.iter().find(|m| m.dtype == "f32").unwrap();
//! assert!(int8.total_bytes < f32.total_bytes);
//! assert!(info.problems.is_empty());
//! # Ok::<(), t0_model::ModelError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use t0_kernels::PackDType;
use t0_tensor::DType;

use crate::random_init::tensor_specs;
use crate::weights::WeightFiles;
use crate::{ModelError, Result, T5Config};

/// The hyper-parameters that decide a T5 model's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigSummary {
    /// Encoder layers.
    pub num_layers: usize,
    /// Decoder layers.
    pub num_decoder_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Width of one head.
    pub d_kv: usize,
    /// Width of the feed-forward hidden layer.
    pub d_ff: usize,
    /// `feed_forward_proj` (`relu`, `gated-gelu`, ...).
    pub feed_forward_proj: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// LM head tied to the embedding.
    pub tie_word_embeddings: bool,
    /// Decoder output scaled by `d_model^-0.5` before the head (see
    /// [`T5Config::scale_decoder_outputs`](crate::T5Config::scale_decoder_outputs)).
    pub scale_decoder_outputs: bool,
    /// Relative-position buckets.
    pub relative_attention_num_buckets: usize,
    /// Relative-position maximum distance.
    pub relative_attention_max_distance: usize,
}

/// One safetensors file of the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// File name inside the model directory.
    pub name: String,
    /// Size on disk.
    pub bytes: u64,
    /// Tensors it holds.
    pub tensors: usize,
}

/// Tensors stored in one dtype.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DTypeInfo {
    /// `f32`, `bf16`, `f16`, ...
    pub dtype: String,
    /// Tensors in this dtype.
    pub tensors: usize,
    /// Their elements.
    pub parameters: usize,
    /// Their bytes.
    pub bytes: usize,
}

/// Weight memory of the loaded model for one choice of [`crate::LoadOptions::dtype`].
///
/// Linear weights are used as stored (`"as stored"`, read from the memory map) or converted to
/// the kernels' packed layout (`f32`, `bf16`, or `int8` with one f32 scale and one i32 sum per
/// output channel, rows padded to panels of 32; a self-attention's q/k/v and a gated
/// feed-forward's two input projections are packed as one stacked matrix each, as the loader
/// does). The token embedding always stays as stored;
/// a tied LM head is a packed copy of it when converting; norms and relative-position tables
/// are f32. Activations and KV caches come on top (see [`ModelInfo::cache_bytes_per_token`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// `as stored`, `f32`, `bf16` or `int8`.
    pub dtype: String,
    /// Attention and feed-forward weights.
    pub linear_bytes: usize,
    /// The shared token embedding.
    pub embedding_bytes: usize,
    /// The LM head (0 when it is the embedding itself).
    pub lm_head_bytes: usize,
    /// Layer norms and relative-position bias tables (f32).
    pub small_bytes: usize,
    /// The sum.
    pub total_bytes: usize,
}

/// What a model directory holds; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The directory.
    pub dir: PathBuf,
    /// `architectures[0]` of `config.json`, if present.
    pub architecture: Option<String>,
    /// `model_type` of `config.json` (`t5` when absent).
    pub model_type: String,
    /// A readable name for the variant (e.g. "T5 v1.1 / T0 / FLAN-T5 (gated-gelu, untied head)").
    pub variant: String,
    /// Shape hyper-parameters.
    pub config: ConfigSummary,
    /// Parameters (a tied embedding counted once).
    pub parameters: usize,
    /// Weight files.
    pub files: Vec<FileInfo>,
    /// True when the weights are split into shards by `model.safetensors.index.json`.
    pub sharded: bool,
    /// Tensors by stored dtype.
    pub stored_dtypes: Vec<DTypeInfo>,
    /// Weight memory as stored and at each load dtype.
    pub memory: Vec<MemoryEstimate>,
    /// Bytes of KV cache per token per sequence: the decoder's self-attention cache per
    /// generated token, and also the cross-attention cache per input token.
    pub cache_bytes_per_token: usize,
    /// The tokenizer file found (`spiece.model` or `tokenizer.json`), if any.
    pub tokenizer: Option<String>,
    /// True if the directory has a `generation_config.json`.
    pub generation_config: bool,
    /// Tensors missing or of the wrong shape: a model that would not load (empty if fine).
    pub problems: Vec<String>,
    /// The dtype (`f32`, `bf16`, `int8`) the linear weights were packed to by `t0 convert`
    /// ([`crate::convert`]), or `None` for an ordinary checkpoint. A converted model loads only
    /// as stored, so [`ModelInfo::memory`] then has the one entry.
    pub packed: Option<String>,
}

/// Bytes of a `[rows, cols]` weight packed as `dtype` (the layout of [`t0_kernels::PackedWeight`]).
///
/// ```
/// use t0_model::inspect::packed_bytes;
/// use t0_model::PackDType;
/// assert_eq!(packed_bytes(64, 32, PackDType::F32), 64 * 32 * 4);
/// assert_eq!(packed_bytes(64, 32, PackDType::Int8), 64 * 32 + 64 * 8); // + scale and sum per row
/// assert_eq!(packed_bytes(33, 32, PackDType::Bf16), 64 * 32 * 2);      // rows padded to 32
/// ```
pub fn packed_bytes(rows: usize, cols: usize, dtype: PackDType) -> usize {
    t0_kernels::PackedWeight::bytes_for(rows, cols, dtype)
}

/// How a tensor is held once loaded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Embedding,
    LmHead,
    Linear,
    Small,
}

/// A tensor the loader reads.
struct Held {
    role: Role,
    group: String,
    shape: Vec<usize>,
    stored: DType,
}

/// The weights the loader packs together when converting (see `T5Model::load`): a
/// self-attention's q/k/v, and a gated feed-forward's `wi_0`/`wi_1`, are stacked by rows into
/// one packed matrix; every other linear weight is packed alone.
fn pack_group(name: &str) -> String {
    for (suffix, group) in [
        ("SelfAttention.q.weight", "SelfAttention.qkv"),
        ("SelfAttention.k.weight", "SelfAttention.qkv"),
        ("SelfAttention.v.weight", "SelfAttention.qkv"),
        ("DenseReluDense.wi_0.weight", "DenseReluDense.wi"),
        ("DenseReluDense.wi_1.weight", "DenseReluDense.wi"),
    ] {
        if let Some(prefix) = name.strip_suffix(suffix) {
            return format!("{prefix}{group}");
        }
    }
    name.to_string()
}

fn role(name: &str, shape: &[usize]) -> Role {
    if name == "shared.weight" {
        Role::Embedding
    } else if name == "lm_head.weight" {
        Role::LmHead
    } else if shape.len() == 1 || name.ends_with("relative_attention_bias.weight") {
        Role::Small
    } else {
        Role::Linear
    }
}

impl ModelInfo {
    /// Inspect the model directory `dir` (its `config.json` and safetensors headers).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(ModelError::MissingFile { dir: dir.to_path_buf(), what: "no config.json".into() });
        }
        let text = std::fs::read_to_string(&config_path)
            .map_err(|source| ModelError::Io { path: config_path.clone(), source })?;
        let c = T5Config::from_json_str(&text, &config_path)?;
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let architecture = raw["architectures"].get(0).and_then(|a| a.as_str()).map(str::to_string);
        let model_type = raw["model_type"].as_str().unwrap_or("t5").to_string();
        let w = WeightFiles::open(dir)?;

        let mut files = Vec::new();
        let mut by_dtype: BTreeMap<String, DTypeInfo> = BTreeMap::new();
        for f in w.files() {
            let bytes = std::fs::metadata(f.path()).map(|m| m.len()).unwrap_or(0);
            let name = f.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut tensors = 0;
            for t in f.names() {
                let (shape, dtype) = f.info(t)?;
                let n: usize = shape.iter().product();
                let e = by_dtype.entry(dtype.to_string()).or_insert_with(|| DTypeInfo {
                    dtype: dtype.to_string(),
                    tensors: 0,
                    parameters: 0,
                    bytes: 0,
                });
                e.tensors += 1;
                e.parameters += n;
                e.bytes += n * dtype.size();
                tensors += 1;
            }
            files.push(FileInfo { name, bytes, tensors });
        }

        // Each tensor the loader reads, with its role, stored dtype and packing group.
        let packed = w.packed_dtype()?;
        let mut problems = Vec::new();
        let mut held: Vec<Held> = Vec::new();
        // Converted files: the packed groups' (rows, cols), checked after the loop.
        let mut packed_groups: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for spec in tensor_specs(&c, DType::F32) {
            let name = spec.spec.name.as_str();
            let shape = &spec.spec.shape;
            if let (Some(_), Role::Linear | Role::LmHead) = (packed, role(name, shape)) {
                let key = pack_group(name);
                let key = key.strip_suffix(".weight").unwrap_or(&key).to_string();
                packed_groups.entry(key).or_insert((0, shape[1])).0 += shape[0];
                continue;
            }
            let candidates: &[&str] = if name == "shared.weight" {
                &["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]
            } else {
                &[name]
            };
            let Some(found) = candidates.iter().find(|n| w.contains(n)) else {
                problems.push(format!("missing tensor `{}`", candidates.join("` or `")));
                continue;
            };
            let (shape, dtype) = w.file_of(found)?.info(found)?;
            if shape != spec.spec.shape {
                problems.push(format!("tensor `{found}` has shape {shape:?}, the config needs {:?}", spec.spec.shape));
                continue;
            }
            held.push(Held { role: role(name, &shape), group: pack_group(name), shape, stored: dtype });
        }
        if let Some(pd) = packed {
            if c.tie_word_embeddings {
                packed_groups.insert("lm_head".into(), (c.vocab_size, c.d_model));
            }
            for (key, &(rows, cols)) in &packed_groups {
                let name = crate::weights::panels_name(key);
                let want = t0_kernels::PackedWeight::layout(rows, cols, pd).to_vec();
                match w.file_of(&name).and_then(|f| Ok(f.info(&name)?)) {
                    Err(_) => problems.push(format!("missing tensor `{name}`")),
                    Ok((shape, _)) if shape != want => {
                        problems.push(format!("tensor `{name}` has shape {shape:?}, the config needs {want:?}"))
                    }
                    Ok(_) => {}
                }
            }
        }

        let mut memory = Vec::new();
        let dtypes: &[Option<PackDType>] = match packed {
            Some(_) => &[None],
            None => &[None, Some(PackDType::F32), Some(PackDType::Bf16), Some(PackDType::Int8)],
        };
        for &dt in dtypes {
            let mut m = MemoryEstimate {
                dtype: dt.map_or("as stored".to_string(), |d| format!("{d:?}").to_lowercase()),
                linear_bytes: 0,
                embedding_bytes: 0,
                lm_head_bytes: 0,
                small_bytes: 0,
                total_bytes: 0,
            };
            // Packed weights of one group are stacked by rows into one panel matrix.
            let mut groups: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for h in &held {
                let n: usize = h.shape.iter().product();
                let stored = n * h.stored.size();
                match h.role {
                    Role::Embedding => {
                        m.embedding_bytes += stored;
                        if let (true, Some(d)) = (c.tie_word_embeddings, dt) {
                            m.lm_head_bytes += packed_bytes(h.shape[0], h.shape[1], d);
                        }
                    }
                    Role::LmHead => {
                        m.lm_head_bytes += dt.map_or(stored, |d| packed_bytes(h.shape[0], h.shape[1], d));
                    }
                    Role::Linear => match dt {
                        None => m.linear_bytes += stored,
                        Some(_) => groups.entry(h.group.clone()).or_insert((0, h.shape[1])).0 += h.shape[0],
                    },
                    Role::Small => m.small_bytes += n * 4,
                }
            }
            if let Some(d) = dt {
                m.linear_bytes = groups.values().map(|&(rows, cols)| packed_bytes(rows, cols, d)).sum();
            }
            if let Some(pd) = packed {
                for (key, &(rows, cols)) in &packed_groups {
                    let bytes = packed_bytes(rows, cols, pd);
                    if key == "lm_head" {
                        m.lm_head_bytes += bytes;
                    } else {
                        m.linear_bytes += bytes;
                    }
                }
            }
            m.total_bytes = m.linear_bytes + m.embedding_bytes + m.lm_head_bytes + m.small_bytes;
            memory.push(m);
        }

        let tokenizer =
            ["spiece.model", "tokenizer.json"].into_iter().find(|f| dir.join(f).is_file()).map(String::from);
        let variant = variant(&model_type, &c);
        Ok(Self {
            dir: dir.to_path_buf(),
            architecture,
            model_type,
            variant,
            config: ConfigSummary {
                num_layers: c.num_layers,
                num_decoder_layers: c.num_decoder_layers,
                d_model: c.d_model,
                num_heads: c.num_heads,
                d_kv: c.d_kv,
                d_ff: c.d_ff,
                feed_forward_proj: c.feed_forward_proj.clone(),
                vocab_size: c.vocab_size,
                tie_word_embeddings: c.tie_word_embeddings,
                scale_decoder_outputs: c.scale_decoder_outputs,
                relative_attention_num_buckets: c.relative_attention_num_buckets,
                relative_attention_max_distance: c.relative_attention_max_distance,
            },
            parameters: c.num_parameters(),
            files,
            sharded: w.is_sharded(),
            stored_dtypes: by_dtype.into_values().collect(),
            memory,
            cache_bytes_per_token: c.num_decoder_layers * 2 * c.inner_dim() * 4,
            tokenizer,
            generation_config: dir.join("generation_config.json").is_file(),
            problems,
            packed: packed.map(|d| crate::weights::dtype_name(d).to_string()),
        })
    }
}

fn variant(model_type: &str, c: &T5Config) -> String {
    let head = if c.tie_word_embeddings { "tied head" } else { "untied head" };
    let family = match (model_type, c.feed_forward_proj.as_str(), c.tie_word_embeddings) {
        ("mt5", _, _) => "mT5",
        ("umt5", _, _) => "umT5 (a relative-position table per layer)",
        (_, "relu", true) => "original T5",
        (_, "gated-gelu", false) => "T5 v1.1 / T0 / FLAN-T5",
        _ => "T5 variant",
    };
    format!("{family} ({} FFN, {head})", c.feed_forward_proj)
}
