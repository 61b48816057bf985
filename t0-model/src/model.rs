//! [`T5Model`]: a loaded T5 / T0 model and its forward passes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use t0_kernels::Kernels;

use crate::attention::Attention;
use crate::cache::{CrossCache, DecoderState};
use crate::config::T5Config;
use crate::decoder::{Decoder, DecoderLayer};
use crate::encoder::{Encoder, EncoderLayer};
use crate::feed_forward::FeedForward;
use crate::linear::Linear;
use crate::position_bias::RelativeBias;
use crate::weights::WeightFiles;
use crate::{ModelError, Result};

/// How to load a model.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// The kernels the model calls (default: [`t0_kernels::select`], the fastest for this CPU).
    pub kernels: &'static dyn Kernels,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { kernels: t0_kernels::select() }
    }
}

/// A loaded T5 encoder-decoder (T0, T5 v1.1, original T5, FLAN-T5 ...).
///
/// Weights stay in the dtype of the file (f32, bf16 or f16) and are read straight from the
/// memory map; compute is f32. The model is `Send + Sync`: share it between threads, each with
/// its own [`DecoderState`].
///
/// ```no_run
/// use t0_model::{GenerateOptions, T5Model};
/// let model = T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
/// let out = model.generate(&[vec![27, 7, 48, 1]], &GenerateOptions::default())?;
/// println!("{:?}", out[0].token_ids);
/// # Ok::<(), t0_model::ModelError>(())
/// ```
#[derive(Debug)]
pub struct T5Model {
    config: T5Config,
    dir: PathBuf,
    kernels: &'static dyn Kernels,
    shared: Linear,
    lm_head: Linear,
    encoder: Encoder,
    decoder: Decoder,
}

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
        if !dir.is_dir() {
            let what = if dir.exists() { "is not a directory" } else { "does not exist" };
            return Err(ModelError::MissingFile {
                dir: dir.to_path_buf(),
                what: format!("the model directory {what}"),
            });
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(ModelError::MissingFile { dir: dir.to_path_buf(), what: "no config.json".into() });
        }
        let config = T5Config::from_file(&config_path)?;
        let files = WeightFiles::open(dir)?;
        Self::from_weights(config, &files, dir, options)
    }

    fn from_weights(config: T5Config, w: &WeightFiles, dir: &Path, options: LoadOptions) -> Result<Self> {
        let c = &config;
        let (d, inner, ff, vocab) = (c.d_model, c.inner_dim(), c.d_ff, c.vocab_size);
        let shared = Linear::new(
            w.first_of(&["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"], &[vocab, d])?,
        );
        let lm_head =
            if c.tie_word_embeddings { shared.clone() } else { Linear::new(w.get("lm_head.weight", &[vocab, d])?) };
        let linear = |name: String, rows: usize, cols: usize| -> Result<Linear> {
            Ok(Linear::new(w.get(&name, &[rows, cols])?))
        };
        let attention = |p: &str| -> Result<Attention> {
            Ok(Attention {
                q: linear(format!("{p}.q.weight"), inner, d)?,
                k: linear(format!("{p}.k.weight"), inner, d)?,
                v: linear(format!("{p}.v.weight"), inner, d)?,
                o: linear(format!("{p}.o.weight"), d, inner)?,
            })
        };
        let feed_forward = |p: &str| -> Result<FeedForward> {
            let (wi, wi_up) = if c.feed_forward.gated {
                (linear(format!("{p}.wi_0.weight"), ff, d)?, Some(linear(format!("{p}.wi_1.weight"), ff, d)?))
            } else {
                (linear(format!("{p}.wi.weight"), ff, d)?, None)
            };
            Ok(FeedForward { kind: c.feed_forward, wi, wi_up, wo: linear(format!("{p}.wo.weight"), d, ff)? })
        };
        let norm = |name: String| w.get_f32(&name, &[d]);
        let bias_table = |stack: &str| {
            w.get_f32(
                &format!("{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
                &[c.relative_attention_num_buckets, c.num_heads],
            )
        };

        let mut enc_layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("encoder.block.{i}.layer");
            enc_layers.push(EncoderLayer {
                attn_norm: norm(format!("{p}.0.layer_norm.weight"))?,
                attn: attention(&format!("{p}.0.SelfAttention"))?,
                ff_norm: norm(format!("{p}.1.layer_norm.weight"))?,
                ff: feed_forward(&format!("{p}.1.DenseReluDense"))?,
            });
        }
        let encoder = Encoder {
            layers: enc_layers,
            bias: RelativeBias::new(
                bias_table("encoder")?,
                c.num_heads,
                c.relative_attention_num_buckets,
                c.relative_attention_max_distance,
                true,
            ),
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
                self_attn: attention(&format!("{p}.0.SelfAttention"))?,
                cross_norm: norm(format!("{p}.1.layer_norm.weight"))?,
                cross_attn: attention(&format!("{p}.1.EncDecAttention"))?,
                ff_norm: norm(format!("{p}.2.layer_norm.weight"))?,
                ff: feed_forward(&format!("{p}.2.DenseReluDense"))?,
            });
        }
        let decoder = Decoder {
            layers: dec_layers,
            bias: RelativeBias::new(
                bias_table("decoder")?,
                c.num_heads,
                c.relative_attention_num_buckets,
                c.relative_attention_max_distance,
                false,
            ),
            final_norm: norm("decoder.final_layer_norm.weight".into())?,
            eps: c.layer_norm_epsilon,
            heads: c.num_heads,
            d_kv: c.d_kv,
        };
        Ok(Self { config, dir: dir.to_path_buf(), kernels: options.kernels, shared, lm_head, encoder, decoder })
    }

    /// The configuration.
    pub fn config(&self) -> &T5Config {
        &self.config
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
        let attn = |a: &Attention| a.q.nbytes() + a.k.nbytes() + a.v.nbytes() + a.o.nbytes();
        let ffn = |f: &FeedForward| f.wi.nbytes() + f.wi_up.as_ref().map_or(0, Linear::nbytes) + f.wo.nbytes();
        let enc: usize = self.encoder.layers.iter().map(|l| attn(&l.attn) + ffn(&l.ff)).sum();
        let dec: usize =
            self.decoder.layers.iter().map(|l| attn(&l.self_attn) + attn(&l.cross_attn) + ffn(&l.ff)).sum();
        let head = if self.config.tie_word_embeddings { 0 } else { self.lm_head.nbytes() };
        self.shared.nbytes() + head + enc + dec
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
        let mask_add: Vec<f32> = attention_mask.iter().map(|&m| if m == 0 { f32::MIN } else { 0.0 }).collect();
        let hidden = self.encoder.forward(self.kernels, &self.shared, ids, &mask_add, batch, seq);
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
        let m = enc.batch * enc.seq_len;
        let inner = self.config.inner_dim();
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for layer in &self.decoder.layers {
            let (mut kl, mut vl) = (vec![0.0f32; m * inner], vec![0.0f32; m * inner]);
            layer.cross_attn.k.forward(self.kernels, &enc.hidden, m, &mut kl);
            layer.cross_attn.v.forward(self.kernels, &enc.hidden, m, &mut vl);
            k.push(kl);
            v.push(vl);
        }
        let mask = enc.attention_mask.iter().map(|&m| if m == 0 { f32::MIN } else { 0.0 }).collect();
        Arc::new(CrossCache { k, v, mask, sources: enc.batch, seq: enc.seq_len })
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
        if t == 0 || tokens.len() != state.rows() * t {
            return Err(ModelError::InvalidArgument(format!(
                "decode: {} tokens for {} rows of {t}",
                tokens.len(),
                state.rows()
            )));
        }
        self.check_ids(tokens)?;
        let h = self.decoder.forward(self.kernels, &self.shared, state, tokens, t);
        Ok(self.logits(h, tokens.len()))
    }

    fn logits(&self, mut h: Vec<f32>, m: usize) -> Vec<f32> {
        if self.config.tie_word_embeddings {
            self.kernels.scale(&mut h, (self.config.d_model as f64).powf(-0.5) as f32);
        }
        let mut logits = vec![0.0f32; m * self.config.vocab_size];
        self.lm_head.forward(self.kernels, &h, m, &mut logits);
        logits
    }
}
