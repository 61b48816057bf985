//! [`T5Model`]: a loaded T5 / T0 model and its forward passes.

use crate::workspace::{sized, Workspace};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use t0_kernels::{Kernels, PackDType};

use crate::attention::{Attention, Qkv, SelfAttention};
use crate::cache::{CrossCache, DecoderState};
use crate::config::T5Config;
use crate::decoder::{Decoder, DecoderLayer};
use crate::encoder::{Encoder, EncoderLayer};
use crate::feed_forward::{FeedForward, Wi};
use crate::generation_config::GenerationConfig;
use crate::linear::Linear;
use crate::position_bias::{RelativeBias, StackBias};
use crate::weights::WeightFiles;
use crate::{ModelError, Result};

/// How to load a model.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// The kernels the model calls (default: [`t0_kernels::select`], the fastest for this CPU).
    pub kernels: &'static dyn Kernels,
    /// `None` (default): use the linear weights as the file stores them, straight from the
    /// memory map (zero-copy). `Some(dtype)`: convert every linear weight at load, tensor by
    /// tensor, into the kernels' packed layout in that dtype (f32, bf16 or int8 with
    /// per-channel scales), releasing each source tensor's pages once converted so peak memory
    /// stays near the converted size. Embeddings and norms stay as stored.
    pub dtype: Option<PackDType>,
    /// Refuse to load when the machine obviously lacks the memory the weights need (default
    /// `true`; see [`crate::memory`]). The estimate comes from `config.json` and the weight
    /// files' sizes, before any weight is read.
    pub check_memory: bool,
    /// Longest input (in tokens) the encoder accepts; longer ones are a
    /// [`ModelError::InputTooLong`] rather than a run that exhausts time or memory (attention
    /// is quadratic in the length). Default [`DEFAULT_MAX_INPUT_TOKENS`].
    pub max_input_tokens: usize,
    /// For a model written by `t0 convert` ([`crate::convert`]): `true` (default) reads the
    /// packed weights in place from the memory map (no copy: the load takes seconds and the
    /// pages are shared with other processes and the page cache); `false` copies them into
    /// memory of the model's own, on 2 MiB pages where the OS gives them, releasing the mapped
    /// pages as it goes (a slower load, then fewer TLB misses per decode step). Ignored for
    /// other models.
    pub map_packed: bool,
}

/// The default [`LoadOptions::max_input_tokens`]: 4096 tokens. T5's relative positions do not
/// limit the input length (T0 was trained on inputs of up to 1024 tokens), so this is a guard
/// against runaway inputs, not a property of the model.
pub const DEFAULT_MAX_INPUT_TOKENS: usize = 4096;

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            kernels: t0_kernels::select(),
            dtype: None,
            check_memory: true,
            max_input_tokens: DEFAULT_MAX_INPUT_TOKENS,
            map_packed: true,
        }
    }
}

impl LoadOptions {
    /// Default kernels, weights converted to `dtype` at load.
    pub fn with_dtype(dtype: PackDType) -> Self {
        Self { dtype: Some(dtype), ..Self::default() }
    }
}

/// A loaded T5 encoder-decoder (T0, T5 v1.1, original T5, FLAN-T5 ...).
///
/// Weights stay in the dtype of the file (f32, bf16 or f16) and are read straight from the
/// memory map; compute is f32. The model is `Send + Sync`: share it between threads, each with
/// its own [`DecoderState`].
///
/// ```
/// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
/// use t0_model::{GenerationConfig, T5Model};
/// let model = T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
/// let out = model.generate(&[vec![27, 7, 48, 1]], &GenerationConfig::default())?;
/// println!("{:?}", out[0][0].token_ids);
/// # Ok::<(), t0_model::ModelError>(())
/// ```
#[derive(Debug)]
pub struct T5Model {
    config: T5Config,
    dir: PathBuf,
    kernels: &'static dyn Kernels,
    pub(crate) shared: Linear,
    pub(crate) lm_head: Linear,
    pub(crate) encoder: Encoder,
    pub(crate) decoder: Decoder,
    encoder_passes: AtomicUsize,
    max_input_tokens: usize,
    unused_tensors: Vec<String>,
    generation_config: GenerationConfig,
}

// A loaded model is shared between threads: keep it so.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<T5Model>();
};

/// The encoder's output for a batch of inputs.
#[derive(Clone, Debug)]
pub struct EncoderOutput {
    /// Hidden states `[batch, seq, d_model]`, row-major.
    pub hidden: Vec<f32>,
    /// Number of inputs.
    pub batch: usize,
    /// Padded length.
    pub seq_len: usize,
    /// Width of a hidden state.
    pub d_model: usize,
    /// `[batch, seq]`: 1 for a token, 0 for padding.
    pub attention_mask: Vec<u8>,
}

impl EncoderOutput {
    /// Hidden states of input `b`, `[seq, d_model]` (padding positions included).
    pub fn hidden_of(&self, b: usize) -> &[f32] {
        let n = self.seq_len * self.d_model;
        &self.hidden[b * n..(b + 1) * n]
    }
}

impl T5Model {
    /// Load `config.json` and the safetensors weights of `dir` with default options.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::load(dir, LoadOptions::default())
    }

    /// Load `config.json` and the safetensors weights of `dir`.
    pub fn load(dir: &Path, options: LoadOptions) -> Result<Self> {
        Self::load_with_progress(dir, options, &|_, _, _| {})
    }

    /// As [`T5Model::load`], calling `progress(tensor, done, total)` after each linear weight is
    /// ready (mapped, or converted when [`LoadOptions::dtype`] is set): a progress bar for big
    /// models.
    ///
    /// ```
    /// use t0_model::{LoadOptions, T5Model};
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
    /// let dir = "tests/fixtures/models/t0-tiny";
    /// let seen = std::cell::Cell::new((0, 0));
    /// let model =
    ///     T5Model::load_with_progress(dir.as_ref(), LoadOptions::default(), &|_, done, total| seen.set((done, total)))?;
    /// let (done, total) = seen.get();
    /// assert!(total > 0 && done == total);
    /// assert_eq!(model.config().d_model, 32);
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn load_with_progress(dir: &Path, options: LoadOptions, progress: &dyn Fn(&str, usize, usize)) -> Result<Self> {
        Ok(Self::load_with_files(dir, options, progress)?.0)
    }

    /// As [`T5Model::load_with_progress`], also returning the opened weight files (for
    /// [`crate::convert`], which copies the tensors the model used).
    pub(crate) fn load_with_files(
        dir: &Path,
        options: LoadOptions,
        progress: &dyn Fn(&str, usize, usize),
    ) -> Result<(Self, WeightFiles)> {
        if !dir.is_dir() {
            let what = if dir.exists() {
                "is not a directory (a model is a directory holding config.json and model.safetensors)"
            } else {
                "the model directory does not exist"
            };
            return Err(ModelError::MissingFile { dir: dir.to_path_buf(), what: what.into() });
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(ModelError::MissingFile { dir: dir.to_path_buf(), what: "no config.json".into() });
        }
        let config = T5Config::from_file(&config_path)?;
        let generation_config = GenerationConfig::from_model_dir(dir)?;
        let paths = crate::weights::weight_paths(dir)?;
        let files = WeightFiles::open(dir)?;
        if options.check_memory {
            if let Some(mem) = crate::memory::MemInfo::current() {
                // Weights `t0 convert` packed are used in place from the map, like raw ones, or
                // copied: resident like weights converted at load.
                let dtype = match files.packed_dtype()? {
                    Some(_) if options.map_packed => None,
                    Some(stored) => Some(stored),
                    None => options.dtype,
                };
                let est = crate::memory::estimate(&config, dtype, crate::memory::file_bytes(&paths));
                crate::memory::check(&est, &mem, dir)?;
            }
        }
        let mut model = Self::from_weights(config, &files, dir, options, progress)?;
        model.generation_config = generation_config;
        // Checkpoints often hold copies of the tied embedding under these names.
        let mut ignore = vec!["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"];
        if model.config.tie_word_embeddings {
            ignore.push("lm_head.weight");
        }
        model.unused_tensors = files.unused(&ignore);
        if !model.unused_tensors.is_empty() {
            tracing::warn!(
                "{}: {} tensor(s) in the weights are not used by the model",
                dir.display(),
                model.unused_tensors.len()
            );
        }
        Ok((model, files))
    }

    fn from_weights(
        config: T5Config,
        w: &WeightFiles,
        dir: &Path,
        options: LoadOptions,
        progress: &dyn Fn(&str, usize, usize),
    ) -> Result<Self> {
        let c = &config;
        let (d, inner, ff, vocab) = (c.d_model, c.inner_dim(), c.d_ff, c.vocab_size);
        let ffn_tensors = if c.feed_forward.gated { 3 } else { 2 };
        let total = c.num_layers * (4 + ffn_tensors)
            + c.num_decoder_layers * (8 + ffn_tensors)
            + usize::from(!c.tie_word_embeddings);
        let done = std::cell::Cell::new(0usize);
        let tick = |name: &str| {
            done.set(done.get() + 1);
            progress(name, done.get(), total);
        };
        // A model written by `t0 convert`: its linear weights are packed already.
        let file_dtype = w.packed_dtype()?;
        if let (Some(stored), Some(wanted)) = (file_dtype, options.dtype) {
            if stored != wanted {
                return Err(ModelError::InvalidArgument(format!(
                    "{dir}: the weights were converted to {stored} by `t0 convert`; load them as {stored} (or \
                     with no dtype), or convert the original checkpoint to {wanted}",
                    dir = dir.display(),
                    stored = crate::weights::dtype_name(stored),
                    wanted = crate::weights::dtype_name(wanted)
                )));
            }
        }
        let dtype = file_dtype.or(options.dtype);
        // The packed weight `key` of a converted file, standing for the `parts` HF tensors.
        let from_file = |key: &str, rows: usize, cols: usize, parts: usize| -> Result<Option<Linear>> {
            let Some(fd) = file_dtype else { return Ok(None) };
            let linear = Linear::from_packed(w.packed(key, rows, cols, fd, options.map_packed)?);
            for _ in 0..parts {
                tick(key);
            }
            Ok(Some(linear))
        };
        let shared = Linear::new(
            w.first_of(&["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"], &[vocab, d])?,
        );
        let convert = |name: &str, raw: Linear| -> Result<Linear> {
            let out = match options.dtype {
                None => raw,
                Some(dt) => {
                    let packed = Linear::packed(&raw.view(), dt);
                    w.file_of(name)?.release(name);
                    packed
                }
            };
            tick(name);
            Ok(out)
        };
        let lm_head = if let Some(l) = from_file("lm_head", vocab, d, usize::from(!c.tie_word_embeddings))? {
            l
        } else if c.tie_word_embeddings {
            match options.dtype {
                None => shared.clone(),
                Some(dt) => Linear::packed(&shared.view(), dt),
            }
        } else {
            convert("lm_head.weight", Linear::new(w.get("lm_head.weight", &[vocab, d])?))?
        };
        let linear = |name: String, rows: usize, cols: usize| -> Result<Linear> {
            let key = name.strip_suffix(".weight").unwrap_or(&name);
            match from_file(key, rows, cols, 1)? {
                Some(l) => Ok(l),
                None => convert(&name, Linear::new(w.get(&name, &[rows, cols])?)),
            }
        };
        // Weights read by one matmul when packing (stored under `key` once converted): stacked
        // by rows, sources released after.
        let stacked = |key: &str, names: &[String], rows: usize, dt: PackDType| -> Result<Linear> {
            if let Some(l) = from_file(key, rows * names.len(), d, names.len())? {
                return Ok(l);
            }
            let raw: Vec<Linear> =
                names.iter().map(|n| Ok(Linear::new(w.get(n, &[rows, d])?))).collect::<Result<_>>()?;
            let views: Vec<_> = raw.iter().map(Linear::view).collect();
            let fused = Linear::packed_stacked(&views, dt);
            for n in names {
                w.file_of(n)?.release(n);
                tick(n);
            }
            Ok(fused)
        };
        let attention = |p: &str| -> Result<Attention> {
            Ok(Attention {
                q: linear(format!("{p}.q.weight"), inner, d)?,
                k: linear(format!("{p}.k.weight"), inner, d)?,
                v: linear(format!("{p}.v.weight"), inner, d)?,
                o: linear(format!("{p}.o.weight"), d, inner)?,
            })
        };
        let self_attention = |p: &str| -> Result<SelfAttention> {
            let names = ["q", "k", "v"].map(|x| format!("{p}.{x}.weight"));
            let qkv = match dtype {
                Some(dt) => Qkv::Fused(stacked(&format!("{p}.qkv"), &names, inner, dt)?),
                None => Qkv::Separate([
                    linear(names[0].clone(), inner, d)?,
                    linear(names[1].clone(), inner, d)?,
                    linear(names[2].clone(), inner, d)?,
                ]),
            };
            Ok(SelfAttention { qkv, o: linear(format!("{p}.o.weight"), d, inner)? })
        };
        let feed_forward = |p: &str| -> Result<FeedForward> {
            let wi = if c.feed_forward.gated {
                let names = [format!("{p}.wi_0.weight"), format!("{p}.wi_1.weight")];
                match dtype {
                    Some(dt) => Wi::GatedFused(stacked(&format!("{p}.wi"), &names, ff, dt)?),
                    None => Wi::Gated { gate: linear(names[0].clone(), ff, d)?, up: linear(names[1].clone(), ff, d)? },
                }
            } else {
                Wi::Plain(linear(format!("{p}.wi.weight"), ff, d)?)
            };
            Ok(FeedForward { kind: c.feed_forward, wi, wo: linear(format!("{p}.wo.weight"), d, ff)? })
        };
        let norm = |name: String| w.get_f32(&name, &[d]);
        // The first layer's table, or every layer's (umT5).
        let stack_bias = |stack: &str, layers: usize, bidirectional: bool| -> Result<StackBias> {
            let table = |i: usize| -> Result<RelativeBias> {
                let name = format!("{stack}.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight");
                let values = w.get_f32(&name, &[c.relative_attention_num_buckets, c.num_heads])?;
                Ok(RelativeBias::new(
                    values,
                    c.num_heads,
                    c.relative_attention_num_buckets,
                    c.relative_attention_max_distance,
                    bidirectional,
                ))
            };
            Ok(if c.bias_per_layer {
                StackBias::per_layer((0..layers).map(table).collect::<Result<_>>()?)
            } else {
                StackBias::shared(table(0)?)
            })
        };

        let mut enc_layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("encoder.block.{i}.layer");
            enc_layers.push(EncoderLayer {
                attn_norm: norm(format!("{p}.0.layer_norm.weight"))?,
                attn: self_attention(&format!("{p}.0.SelfAttention"))?,
                ff_norm: norm(format!("{p}.1.layer_norm.weight"))?,
                ff: feed_forward(&format!("{p}.1.DenseReluDense"))?,
            });
        }
        let encoder = Encoder {
            layers: enc_layers,
            bias: stack_bias("encoder", c.num_layers, true)?,
            final_norm: norm("encoder.final_layer_norm.weight".into())?,
            eps: c.layer_norm_epsilon,
            heads: c.num_heads,
            d_kv: c.d_kv,
        };
        let mut dec_layers = Vec::with_capacity(c.num_decoder_layers);
        for i in 0..c.num_decoder_layers {
            let p = format!("decoder.block.{i}.layer");
            dec_layers.push(DecoderLayer {
                self_norm: norm(format!("{p}.0.layer_norm.weight"))?,
                self_attn: self_attention(&format!("{p}.0.SelfAttention"))?,
                cross_norm: norm(format!("{p}.1.layer_norm.weight"))?,
                cross_attn: attention(&format!("{p}.1.EncDecAttention"))?,
                ff_norm: norm(format!("{p}.2.layer_norm.weight"))?,
                ff: feed_forward(&format!("{p}.2.DenseReluDense"))?,
            });
        }
        let decoder = Decoder {
            layers: dec_layers,
            bias: stack_bias("decoder", c.num_decoder_layers, false)?,
            final_norm: norm("decoder.final_layer_norm.weight".into())?,
            eps: c.layer_norm_epsilon,
            heads: c.num_heads,
            d_kv: c.d_kv,
        };
        Ok(Self {
            config,
            dir: dir.to_path_buf(),
            kernels: options.kernels,
            shared,
            lm_head,
            encoder,
            decoder,
            encoder_passes: AtomicUsize::new(0),
            max_input_tokens: options.max_input_tokens,
            unused_tensors: Vec::new(),
            generation_config: GenerationConfig::default(),
        })
    }

    /// Tensors of the weight files that the model does not use (sorted): a sign that the
    /// checkpoint is not quite the architecture `config.json` describes. Loading still
    /// succeeds; the CLI prints them as a warning.
    pub fn unused_tensors(&self) -> &[String] {
        &self.unused_tensors
    }

    /// The longest input the encoder accepts ([`LoadOptions::max_input_tokens`]).
    pub fn max_input_tokens(&self) -> usize {
        self.max_input_tokens
    }

    /// Change the longest input the encoder accepts.
    pub fn set_max_input_tokens(&mut self, limit: usize) {
        self.max_input_tokens = limit;
    }

    /// Check one input before it is queued: not empty, every id in the vocabulary, not longer
    /// than [`T5Model::max_input_tokens`]. `index` names it in the error.
    pub fn check_input(&self, index: usize, ids: &[u32]) -> Result<()> {
        check_not_empty(index, ids)?;
        if ids.len() > self.max_input_tokens {
            return Err(ModelError::InputTooLong { index, tokens: ids.len(), limit: self.max_input_tokens });
        }
        self.check_ids(ids)
    }

    /// The configuration.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// The model's default generation options: its `generation_config.json` as HF reads it
    /// (`max_length` counts the decoder start token), or [`GenerationConfig::default`] when
    /// the directory has none. What `t0 generate` and `t0 serve` start from before their
    /// options; [`T5Model::generate`] itself takes the options it is given.
    ///
    /// ```
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap();
    /// let model = t0_model::T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
    /// // Its generation_config.json sets only token ids: the defaults.
    /// assert_eq!(model.generation_config(), &t0_model::GenerationConfig::default());
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation_config
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kernels in use.
    pub fn kernels(&self) -> &'static dyn Kernels {
        self.kernels
    }

    /// Bytes of weight data (tied tables counted once).
    pub fn weight_bytes(&self) -> usize {
        let enc: usize = self.encoder.layers.iter().map(|l| l.attn.nbytes() + l.ff.nbytes()).sum();
        let dec: usize =
            self.decoder.layers.iter().map(|l| l.self_attn.nbytes() + l.cross_attn.nbytes() + l.ff.nbytes()).sum();
        let head = if self.config.tie_word_embeddings { 0 } else { self.lm_head.nbytes() };
        self.shared.nbytes() + head + enc + dec
    }

    /// How many encoder passes (calls of [`T5Model::encode_padded`]) this model has run.
    pub fn encoder_passes(&self) -> usize {
        self.encoder_passes.load(Ordering::Relaxed)
    }

    /// Check that every id is inside the vocabulary.
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            Some(&id) => Err(ModelError::TokenOutOfRange { id, vocab_size: self.config.vocab_size }),
            None => Ok(()),
        }
    }

    /// Encode a batch of inputs of possibly different lengths (right-padded internally).
    pub fn encode(&self, inputs: &[&[u32]]) -> Result<EncoderOutput> {
        if let Some((index, x)) = inputs.iter().enumerate().find(|(_, x)| x.len() > self.max_input_tokens) {
            return Err(ModelError::InputTooLong { index, tokens: x.len(), limit: self.max_input_tokens });
        }
        let seq = inputs.iter().map(|x| x.len()).max().unwrap_or(0);
        let mut ids = vec![self.config.pad_token_id; inputs.len() * seq];
        let mut mask = vec![0u8; inputs.len() * seq];
        for (b, x) in inputs.iter().enumerate() {
            ids[b * seq..b * seq + x.len()].copy_from_slice(x);
            mask[b * seq..b * seq + x.len()].fill(1);
        }
        self.encode_padded(&ids, &mask, inputs.len())
    }

    /// Encode `[batch, seq]` ids with an explicit attention mask (1 = token, 0 = padding), in
    /// any padding layout.
    pub fn encode_padded(&self, ids: &[u32], attention_mask: &[u8], batch: usize) -> Result<EncoderOutput> {
        if batch == 0 || ids.is_empty() {
            return Err(ModelError::InvalidArgument(
                "encode: the input is empty (an input needs at least one token)".into(),
            ));
        }
        if !ids.len().is_multiple_of(batch) || attention_mask.len() != ids.len() {
            return Err(ModelError::InvalidArgument(format!(
                "encode: {} ids and {} mask values do not form a batch of {batch}",
                ids.len(),
                attention_mask.len()
            )));
        }
        self.check_ids(ids)?;
        let seq = ids.len() / batch;
        if seq > self.max_input_tokens {
            return Err(ModelError::InvalidArgument(format!(
                "encode: the padded input length {seq} is more than the limit of {} tokens (max_input_tokens)",
                self.max_input_tokens
            )));
        }
        let mask_add: Vec<f32> = attention_mask.iter().map(|&m| if m == 0 { f32::MIN } else { 0.0 }).collect();
        self.encoder_passes.fetch_add(1, Ordering::Relaxed);
        let hidden = on_pool(|| self.encoder.forward(self.kernels, &self.shared, ids, &mask_add, batch, seq));
        Ok(EncoderOutput {
            hidden,
            batch,
            seq_len: seq,
            d_model: self.config.d_model,
            attention_mask: attention_mask.to_vec(),
        })
    }

    /// Cross-attention keys and values of every decoder layer for `enc`: computed once per
    /// input, then shared by any number of decoder rows.
    pub fn cross_cache(&self, enc: &EncoderOutput) -> Arc<CrossCache> {
        on_pool(|| self.cross_cache_here(enc))
    }

    /// [`Self::cross_cache`], on the calling thread.
    fn cross_cache_here(&self, enc: &EncoderOutput) -> Arc<CrossCache> {
        let (seq, m) = (enc.seq_len, enc.batch * enc.seq_len);
        let (heads, d_kv) = (self.config.num_heads, self.config.d_kv);
        let inner = heads * d_kv;
        let per = m * inner;
        let layers = &self.decoder.layers;
        let mut kv = t0_kernels::F32Buf::zeroed(2 * layers.len() * per);
        // The k and v weights of a group of layers run as one stacked matmul (the encoder
        // output quantised or packed once, one parallel pass over all of them), its output
        // rows `[k₀ | v₀ | k₁ | v₁ | …]` staged in `proj`; groups keep that under 8 MiB.
        let group = ((8 << 20) / (2 * per * 4).max(1)).clamp(1, layers.len().max(1));
        let mut proj = Vec::new();
        for (g, out) in layers.chunks(group).zip(kv.chunks_mut(group * 2 * per.max(1))) {
            let ws: Vec<_> = g.iter().flat_map(|l| [l.cross_attn.k.view(), l.cross_attn.v.view()]).collect();
            let proj = sized(&mut proj, m * ws.len() * inner);
            self.kernels.matmul_stacked(&enc.hidden, m, &ws, proj);
            // Each weight's `[source, position, head, d_kv]` stored head-major
            // (`[source, head, position, d_kv]`): each head's keys and values are then one
            // contiguous run that a decode step streams in order. One task per weight.
            let width = ws.len() * inner;
            out.par_chunks_mut(per.max(1)).enumerate().for_each(|(w, dst)| {
                for (r, row) in proj.chunks_exact(width).enumerate() {
                    let (src, pos) = (r / seq, r % seq);
                    for (h, x) in row[w * inner..(w + 1) * inner].chunks_exact(d_kv).enumerate() {
                        dst[((src * heads + h) * seq + pos) * d_kv..][..d_kv].copy_from_slice(x);
                    }
                }
            });
        }
        let mask = enc.attention_mask.iter().map(|&m| if m == 0 { f32::MIN } else { 0.0 }).collect();
        Arc::new(CrossCache { kv, per, mask, sources: enc.batch, seq: enc.seq_len })
    }

    /// A fresh decoder state whose row `r` attends to encoded input `source_of_row[r]`.
    pub fn decoder_state(&self, cross: Arc<CrossCache>, source_of_row: Vec<usize>) -> Result<DecoderState> {
        if let Some(&bad) = source_of_row.iter().find(|&&s| s >= cross.sources) {
            return Err(ModelError::InvalidArgument(format!(
                "decoder_state: source {bad} does not exist ({} inputs were encoded)",
                cross.sources
            )));
        }
        Ok(DecoderState::new(
            cross,
            source_of_row,
            self.config.num_decoder_layers,
            self.config.num_heads,
            self.config.d_kv,
        ))
    }

    /// Feed `t` tokens to every row of `state` (`tokens` is `[rows, t]`) and return the logits
    /// `[rows · t, vocab]` at those positions. Call with `t = 1` to generate, or with a whole
    /// sequence for teacher forcing.
    pub fn decode(&self, state: &mut DecoderState, tokens: &[u32], t: usize) -> Result<Vec<f32>> {
        Ok(self.decode_step(state, tokens, t)?.to_vec())
    }

    /// As [`Self::decode`], returning the logits in a buffer the state keeps and reuses: valid
    /// until the state's next call, and free to modify in place (logits processors, log-softmax).
    ///
    /// A step allocates nothing once the state's buffers have grown to its size (after its
    /// first call at this batch size) and its caches hold the new positions
    /// ([`DecoderState::reserve`]), apart from what the kernels' thread pool does when called
    /// from outside it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/t0-tiny");
    /// let model = t0_model::T5Model::from_dir(&dir)?;
    /// let enc = model.encode(&[&[100, 200, 1]])?;
    /// let mut state = model.decoder_state(model.cross_cache(&enc), vec![0])?;
    /// state.reserve(8);
    /// let mut token = model.config().decoder_start_token_id;
    /// for _ in 0..4 {
    ///     let logits = model.decode_step(&mut state, &[token], 1)?;
    ///     token = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0) as u32;
    /// }
    /// assert_eq!(state.lens(), &[4]);
    /// # Ok(()) }
    /// ```
    pub fn decode_step<'s>(&self, state: &'s mut DecoderState, tokens: &[u32], t: usize) -> Result<&'s mut [f32]> {
        if t == 0 || tokens.len() != state.rows() * t {
            return Err(ModelError::InvalidArgument(format!(
                "decode: {} tokens for {} rows of {t}",
                tokens.len(),
                state.rows()
            )));
        }
        self.check_ids(tokens)?;
        let mut work = std::mem::take(&mut state.work);
        on_pool(|| {
            self.decoder.forward(self.kernels, &self.shared, state, tokens, t, &mut work);
            self.logits_into(&mut work, tokens.len());
        });
        state.work = work;
        Ok(&mut state.work.logits[..tokens.len() * self.config.vocab_size])
    }

    /// `work.logits[..m·vocab]` from the decoder's output in `work.normed`.
    fn logits_into(&self, work: &mut Workspace, m: usize) {
        let h = &mut work.normed[..m * self.config.d_model];
        if self.config.scale_decoder_outputs {
            self.kernels.scale(h, (self.config.d_model as f64).powf(-0.5) as f32);
        }
        let logits = sized(&mut work.logits, m * self.config.vocab_size);
        self.lm_head.forward(self.kernels, h, m, logits);
    }
}

/// Runs `f` on a thread of the kernels' pool (rayon's global pool, or the pool the caller is
/// installed in), inline when the caller already is one. A forward pass makes a few hundred
/// parallel kernel calls; from outside the pool each one is handed to the pool and the caller
/// woken when it is done (measured 20-40 µs a call here), from inside it is a join (5-8 µs). So
/// an encoder pass, a cross cache or a decode step is handed over once, as a whole.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Input `index` must hold at least one token.
pub(crate) fn check_not_empty(index: usize, ids: &[u32]) -> Result<()> {
    if ids.is_empty() {
        return Err(ModelError::InvalidArgument(format!(
            "input {index} is empty: an input needs at least one token (an empty prompt is `</s>`)"
        )));
    }
    Ok(())
}
