//! T5 on a [`Backend`]: weights uploaded once, the encoder, cross-attention keys/values computed
//! once per input, and generation and rank classification over decode steps (the steps and
//! their state: `state.rs`).

use std::sync::Arc;

use t0_kernels::{Activation, WeightView};

use super::{rows_f32, Backend, DeviceAttention, DeviceDType};
use crate::attention::Qkv;
use crate::feed_forward::Wi;
use crate::generate::Generated;
use crate::linear::Linear;
use crate::position_bias::{BiasVectors, StackBias};
use crate::{Classification, GenerationConfig, ModelError, Result, T5Config, T5Model};

/// A weight on the device and its shape.
pub(super) struct DevLinear<B: Backend> {
    pub(super) w: B::Weight,
    pub(super) rows: usize,
    /// Bytes of the weight on the device.
    pub(super) bytes: usize,
}

/// The rows of `parts` stacked and narrowed to f16, or an error naming the tensor (`name`) at
/// the first value f16 cannot hold (rather than storing it as infinity).
fn f16_rows(name: &str, parts: &[WeightView<'_>]) -> Result<Vec<half::f16>> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.rows() * p.cols()).sum());
    for p in parts {
        let mut row = vec![0.0f32; p.cols()];
        for r in 0..p.rows() {
            p.row_to_f32(r, &mut row);
            for (c, &v) in row.iter().enumerate() {
                let h = half::f16::from_f32(v);
                if h.is_infinite() && v.is_finite() {
                    return Err(ModelError::InvalidArgument(format!(
                        "{name}: value {v} at [{r}, {c}] is outside f16's range (±65504); load it as bf16 or f32"
                    )));
                }
                out.push(h);
            }
        }
    }
    Ok(out)
}

impl<B: Backend> DevLinear<B> {
    /// Uploads the rows of `parts`, stacked in order, as one weight (`name`, the HF name of the
    /// first part, for errors).
    fn new(backend: &B, name: &str, parts: &[WeightView<'_>], dtype: DeviceDType) -> Result<Self> {
        let rows: usize = parts.iter().map(|p| p.rows()).sum();
        let cols = parts.first().map_or(0, |p| p.cols());
        let w = if dtype == DeviceDType::F16 {
            // Narrowed here, in one pass, so that a value f16 cannot hold names its tensor.
            backend.upload_weight(&WeightView::f16(&f16_rows(name, parts)?, rows, cols), dtype)?
        } else if let [one] = parts {
            backend.upload_weight(one, dtype)?
        } else {
            let data: Vec<f32> = parts.iter().flat_map(rows_f32).collect();
            backend.upload_weight(&WeightView::f32(&data, rows, cols), dtype)?
        };
        Ok(Self { w, rows, bytes: rows * cols * dtype.bytes_per_weight() })
    }

    fn of(backend: &B, name: &str, l: &Linear, dtype: DeviceDType) -> Result<Self> {
        Self::new(backend, name, &[l.view()], dtype)
    }
}

pub(super) struct DevFeedForward<B: Backend> {
    /// `wi`, or `[wi_0; wi_1]` stacked when gated.
    pub(super) wi: DevLinear<B>,
    pub(super) wo: DevLinear<B>,
    pub(super) gated: bool,
    pub(super) act: Activation,
}

impl<B: Backend> DevFeedForward<B> {
    /// `prefix`: the block's HF name (`encoder.block.0.layer.1.DenseReluDense`).
    fn of(backend: &B, prefix: &str, ff: &crate::feed_forward::FeedForward, dtype: DeviceDType) -> Result<Self> {
        let (wi, gated) = match &ff.wi {
            Wi::Plain(l) => (DevLinear::of(backend, &format!("{prefix}.wi.weight"), l, dtype)?, false),
            Wi::Gated { gate, up } => {
                (DevLinear::new(backend, &format!("{prefix}.wi_0.weight"), &[gate.view(), up.view()], dtype)?, true)
            }
            Wi::GatedFused(l) => (DevLinear::of(backend, &format!("{prefix}.wi_0.weight"), l, dtype)?, true),
        };
        let wo = DevLinear::of(backend, &format!("{prefix}.wo.weight"), &ff.wo, dtype)?;
        Ok(Self { wi, wo, gated, act: ff.kind.activation })
    }
}

/// `[q; k; v]` stacked, for a self-attention block (`prefix`: its HF name).
fn qkv_of<B: Backend>(backend: &B, prefix: &str, qkv: &Qkv, dtype: DeviceDType) -> Result<DevLinear<B>> {
    let name = format!("{prefix}.q.weight");
    match qkv {
        Qkv::Fused(l) => DevLinear::of(backend, &name, l, dtype),
        Qkv::Separate([q, k, v]) => DevLinear::new(backend, &name, &[q.view(), k.view(), v.view()], dtype),
    }
}

pub(super) struct EncLayer<B: Backend> {
    pub(super) attn_norm: B::Buf,
    pub(super) qkv: DevLinear<B>,
    pub(super) o: DevLinear<B>,
    pub(super) ff_norm: B::Buf,
    pub(super) ff: DevFeedForward<B>,
}

pub(super) struct DecLayer<B: Backend> {
    pub(super) self_norm: B::Buf,
    pub(super) qkv: DevLinear<B>,
    pub(super) self_o: DevLinear<B>,
    pub(super) cross_norm: B::Buf,
    pub(super) cross_q: DevLinear<B>,
    pub(super) cross_k: DevLinear<B>,
    pub(super) cross_v: DevLinear<B>,
    pub(super) cross_o: DevLinear<B>,
    pub(super) ff_norm: B::Buf,
    pub(super) ff: DevFeedForward<B>,
}

/// A T5 model whose weights live on a [`Backend`]'s device. `Send + Sync`: one model serves
/// any number of threads, each with its own [`DeviceState`](super::DeviceState).
pub struct DeviceModel<B: Backend> {
    pub(super) backend: B,
    pub(super) config: T5Config,
    pub(super) dtype: DeviceDType,
    pub(super) embed: B::Buf,
    pub(super) lm_head: DevLinear<B>,
    pub(super) enc: Vec<EncLayer<B>>,
    pub(super) enc_final: B::Buf,
    pub(super) enc_bias: StackBias,
    pub(super) dec: Vec<DecLayer<B>>,
    pub(super) dec_final: B::Buf,
    pub(super) dec_bias: StackBias,
    /// Weight bytes one decode step reads (every decoder matrix but the cross keys/values, and
    /// the head).
    pub(super) step_bytes: usize,
}

impl<B: Backend> std::fmt::Debug for DeviceModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceModel").field("backend", &self.backend.name()).field("dtype", &self.dtype).finish()
    }
}

/// One input's encoder output on the device, with the cross-attention keys and values of every
/// decoder layer (`[position, heads·d_kv]` each).
pub struct DeviceEncoded<B: Backend> {
    /// Input length.
    pub seq: usize,
    pub(super) hidden: B::Buf,
    pub(super) k: Vec<B::Buf>,
    pub(super) v: Vec<B::Buf>,
}

impl<B: Backend> DeviceEncoded<B> {
    /// The encoder's final hidden states, `[seq, d_model]`, on the host.
    pub fn hidden(&self, backend: &B, d_model: usize) -> Result<Vec<f32>> {
        backend.download(&self.hidden, self.seq * d_model)
    }
}

/// Per-layer workspaces of a forward pass (sized for the largest `m` seen).
pub(super) struct Work<B: Backend> {
    pub(super) h: B::Buf,
    pub(super) normed: B::Buf,
    pub(super) tmp: B::Buf,
    pub(super) qkv: B::Buf,
    pub(super) q: B::Buf,
    pub(super) ctx: B::Buf,
    pub(super) ff: B::Buf,
    pub(super) act: B::Buf,
}

/// Positions and token ids travel to the device as f32 (exact below 2²⁴).
pub(super) const INDEX_LIMIT: usize = 1 << 24;

/// The T5 scale of the tied head's input, `d_model^-0.5` (as the CPU model computes it).
pub(super) fn tied_scale(d: usize) -> f32 {
    (d as f64).powf(-0.5) as f32
}

impl<B: Backend> DeviceModel<B> {
    /// Uploads `model`'s weights to `backend`'s device, stored as `dtype` (norms, biases and
    /// the embedding table stay f32), one tensor at a time.
    pub fn new(model: &T5Model, backend: B, dtype: DeviceDType) -> Result<Self> {
        Self::new_with_progress(model, backend, dtype, &|_, _| {})
    }

    /// As [`DeviceModel::new`], calling `progress(done, total)` after each layer.
    pub fn new_with_progress(
        model: &T5Model,
        backend: B,
        dtype: DeviceDType,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Self> {
        let config = model.config().clone();
        if config.vocab_size > INDEX_LIMIT {
            return Err(ModelError::InvalidArgument(format!(
                "a vocabulary of {} is more than a device step can address ({INDEX_LIMIT})",
                config.vocab_size
            )));
        }
        let b = &backend;
        let total = model.encoder.layers.len() + model.decoder.layers.len() + 1;
        let embed = b.upload(&rows_f32(&model.shared.view()))?;
        let lm_head = DevLinear::of(b, "lm_head.weight", &model.lm_head, dtype)?;
        progress(1, total);
        let mut enc = Vec::with_capacity(model.encoder.layers.len());
        for (i, l) in model.encoder.layers.iter().enumerate() {
            let at = |sub: &str| format!("encoder.block.{i}.layer.{sub}");
            enc.push(EncLayer {
                attn_norm: b.upload(&l.attn_norm)?,
                qkv: qkv_of(b, &at("0.SelfAttention"), &l.attn.qkv, dtype)?,
                o: DevLinear::of(b, &at("0.SelfAttention.o.weight"), &l.attn.o, dtype)?,
                ff_norm: b.upload(&l.ff_norm)?,
                ff: DevFeedForward::of(b, &at("1.DenseReluDense"), &l.ff, dtype)?,
            });
            progress(1 + enc.len(), total);
        }
        let mut dec = Vec::with_capacity(model.decoder.layers.len());
        for (i, l) in model.decoder.layers.iter().enumerate() {
            let c = &l.cross_attn;
            let at = |sub: &str| format!("decoder.block.{i}.layer.{sub}");
            dec.push(DecLayer {
                self_norm: b.upload(&l.self_norm)?,
                qkv: qkv_of(b, &at("0.SelfAttention"), &l.self_attn.qkv, dtype)?,
                self_o: DevLinear::of(b, &at("0.SelfAttention.o.weight"), &l.self_attn.o, dtype)?,
                cross_norm: b.upload(&l.cross_norm)?,
                cross_q: DevLinear::of(b, &at("1.EncDecAttention.q.weight"), &c.q, dtype)?,
                cross_k: DevLinear::of(b, &at("1.EncDecAttention.k.weight"), &c.k, dtype)?,
                cross_v: DevLinear::of(b, &at("1.EncDecAttention.v.weight"), &c.v, dtype)?,
                cross_o: DevLinear::of(b, &at("1.EncDecAttention.o.weight"), &c.o, dtype)?,
                ff_norm: b.upload(&l.ff_norm)?,
                ff: DevFeedForward::of(b, &at("2.DenseReluDense"), &l.ff, dtype)?,
            });
            progress(1 + enc.len() + dec.len(), total);
        }
        let step_bytes = lm_head.bytes
            + dec
                .iter()
                .map(|l| {
                    let ff = l.ff.wi.bytes + l.ff.wo.bytes;
                    l.qkv.bytes + l.self_o.bytes + l.cross_q.bytes + l.cross_o.bytes + ff
                })
                .sum::<usize>();
        Ok(Self {
            step_bytes,
            enc_final: b.upload(&model.encoder.final_norm)?,
            enc_bias: model.encoder.bias.clone(),
            dec_final: b.upload(&model.decoder.final_norm)?,
            dec_bias: model.decoder.bias.clone(),
            backend,
            config,
            dtype,
            embed,
            lm_head,
            enc,
            dec,
        })
    }

    /// The backend the weights live on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The model's configuration.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// How the weights are stored.
    pub fn dtype(&self) -> DeviceDType {
        self.dtype
    }

    /// Weight bytes one decode step reads from device memory (the decoder's matrices but the
    /// cross-attention keys and values, which run once per input, and the head): divided by a
    /// step's time, the bandwidth the step reached.
    pub fn step_weight_bytes(&self) -> usize {
        self.step_bytes
    }

    pub(super) fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&i| i as usize >= self.config.vocab_size) {
            Some(&id) => Err(ModelError::TokenOutOfRange { id, vocab_size: self.config.vocab_size }),
            None => Ok(()),
        }
    }

    pub(super) fn work(&self, m: usize) -> Result<Work<B>> {
        let c = &self.config;
        let (d, inner, ff) = (c.d_model, c.inner_dim(), c.d_ff);
        let b = &self.backend;
        Ok(Work {
            h: b.zeros(m * d)?,
            normed: b.zeros(m * d)?,
            tmp: b.zeros(m * d)?,
            qkv: b.zeros(m * 3 * inner)?,
            q: b.zeros(m * inner)?,
            ctx: b.zeros(m * inner)?,
            ff: b.zeros(m * 2 * ff)?,
            act: b.zeros(m * ff)?,
        })
    }

    /// `out = ff(x)` for `m` rows (`work.ff` and `work.act` as scratch).
    pub(super) fn feed_forward(&self, ff: &DevFeedForward<B>, m: usize, w: &mut Work<B>) -> Result<()> {
        let b = &self.backend;
        let d_ff = self.config.d_ff;
        b.linear(&w.normed, m, &ff.wi.w, &mut w.ff)?;
        let hidden = if ff.gated {
            b.gated(ff.act, &w.ff, m, d_ff, &mut w.act)?;
            &w.act
        } else {
            b.activation(ff.act, &mut w.ff, m * d_ff)?;
            &w.ff
        };
        b.linear(hidden, m, &ff.wo.w, &mut w.tmp)
    }

    /// Runs the encoder over one input (no padding) and computes every decoder layer's
    /// cross-attention keys and values from its output.
    pub fn encode(&self, ids: &[u32]) -> Result<DeviceEncoded<B>> {
        if ids.is_empty() {
            return Err(ModelError::InvalidArgument("encode: the input is empty".into()));
        }
        self.check_ids(ids)?;
        let c = &self.config;
        let (b, seq, d, inner) = (&self.backend, ids.len(), c.d_model, c.inner_dim());
        let (heads, d_kv, eps) = (c.num_heads, c.d_kv, c.layer_norm_epsilon);
        let mut w = self.work(seq)?;
        b.embedding(&self.embed, d, ids, &mut w.h)?;
        let (lo, hi) = (-(seq as i64 - 1), seq as i64 - 1);
        let (mut bias, mut bias_buf) = (BiasVectors::default(), b.zeros(0)?);
        let mut hidden = b.zeros(seq * d)?;
        // Each residual add runs with the norm after it (`add_rms_norm`): `normed` holds the
        // next block's input.
        if let Some(first) = self.enc.first() {
            b.rms_norm(&w.h, &first.attn_norm, eps, seq, d, &mut w.normed)?;
        }
        for (i, l) in self.enc.iter().enumerate() {
            if self.enc_bias.layer_vectors_into(i, lo, hi, &mut bias) {
                bias_buf = b.upload(bias.view().values)?;
            }
            let bias_view = bias.view();
            b.linear(&w.normed, seq, &l.qkv.w, &mut w.qkv)?;
            let a = DeviceAttention {
                q: (&w.qkv, 0),
                k: (&w.qkv, inner),
                v: (&w.qkv, 2 * inner),
                heads,
                d_kv,
                q_len: seq,
                kv_len: seq,
                q_row_stride: 3 * inner,
                kv_head_stride: d_kv,
                kv_row_stride: 3 * inner,
                q_pos0: 0,
                causal: false,
                q_pos_at: None,
                bias: Some((&bias_buf, bias_view.head_stride, bias_view.offset)),
                mask: None,
                batch: 1,
                q_batch_stride: 0,
                kv_batch_stride: 0,
            };
            b.attention(&a, &mut w.ctx, 0)?;
            b.linear(&w.ctx, seq, &l.o.w, &mut w.tmp)?;
            b.add_rms_norm(&mut w.h, &w.tmp, &l.ff_norm, eps, seq, d, &mut w.normed)?;
            self.feed_forward(&l.ff, seq, &mut w)?;
            match self.enc.get(i + 1) {
                Some(next) => b.add_rms_norm(&mut w.h, &w.tmp, &next.attn_norm, eps, seq, d, &mut w.normed)?,
                None => b.add_rms_norm(&mut w.h, &w.tmp, &self.enc_final, eps, seq, d, &mut hidden)?,
            }
        }
        let (mut k, mut v) = (Vec::with_capacity(self.dec.len()), Vec::with_capacity(self.dec.len()));
        for l in &self.dec {
            let (mut kl, mut vl) = (b.zeros(seq * inner)?, b.zeros(seq * inner)?);
            b.linear(&hidden, seq, &l.cross_k.w, &mut kl)?;
            b.linear(&hidden, seq, &l.cross_v.w, &mut vl)?;
            k.push(kl);
            v.push(vl);
        }
        Ok(DeviceEncoded { seq, hidden, k, v })
    }

    /// Generation as [`T5Model::generate`] does it (greedy search, sampling or beam search, with
    /// the same logits processors, the same `Generated` results), the model running on the
    /// device: each step's logits come back to the host (`rows × vocab` floats) for the search,
    /// and beam search reorders its rows' caches on the device ([`DeviceModel::select_rows`]).
    /// Plain greedy decoding can instead bring back only the argmaxes:
    /// [`DeviceModel::generate_greedy`].
    ///
    /// ```
    /// use t0_model::device::{DeviceModel, HostBackend, DeviceDType};
    /// use t0_model::GenerationConfig;
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/gated-gelu-inner");
    /// let model = t0_model::T5Model::from_dir(&dir)?;
    /// let dev = DeviceModel::new(&model, HostBackend::new(), DeviceDType::F32)?;
    /// let cfg = GenerationConfig { num_beams: 3, num_return_sequences: 2, ..GenerationConfig::greedy(6) };
    /// let out = dev.generate(&[vec![37, 8, 5, 1]], &cfg)?;
    /// assert_eq!(out[0].len(), 2);
    /// assert_eq!(out[0][0].token_ids, model.generate(&[vec![37, 8, 5, 1]], &cfg)?[0][0].token_ids);
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn generate(&self, inputs: &[Vec<u32>], cfg: &GenerationConfig) -> Result<Vec<Vec<Generated>>> {
        self.generate_streaming(inputs, cfg, |_, _| {})
    }

    /// As [`DeviceModel::generate`], calling `on_token(input, token)` as each token is chosen
    /// (greedy and sampling; beam search reports its final sequences only).
    pub fn generate_streaming(
        &self,
        inputs: &[Vec<u32>],
        cfg: &GenerationConfig,
        on_token: impl FnMut(usize, u32),
    ) -> Result<Vec<Vec<Generated>>> {
        let check = |i: usize, x: &[u32]| crate::model::check_not_empty(i, x).and_then(|()| self.check_ids(x));
        crate::generate::generate_with(self, inputs, cfg, check, on_token)
    }

    /// Rank classification on the device, as [`T5Model::classify`]: `prompt` encoded once, a
    /// decoder row per choice reading its cross-attention K/V, the choices' tokens fed one
    /// position per step; only each step's logits come back to the host.
    ///
    /// ```
    /// use t0_model::device::{DeviceDType, DeviceModel, HostBackend};
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/t0-tiny");
    /// let model = t0_model::T5Model::from_dir(&dir)?;
    /// let dev = DeviceModel::new(&model, HostBackend::new(), DeviceDType::F32)?;
    /// let choices = [vec![1465, 1], vec![2841, 1]];
    /// let r = dev.classify(&[27, 7, 48, 1], &choices, false)?;
    /// assert_eq!(r.best, model.classify(&[27, 7, 48, 1], &choices, false)?.best);
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn classify(&self, prompt: &[u32], choices: &[Vec<u32>], length_normalize: bool) -> Result<Classification> {
        crate::score::classify_stepwise(self, prompt, choices, length_normalize, |x| self.check_ids(x))
    }

    /// Greedy decoding of each input (one row each, decoded together) for up to `max_new`
    /// tokens; a row stops after `</s>`. Returns the ids after the decoder start token, as
    /// [`crate::Generated::token_ids`].
    pub fn generate_greedy(&self, inputs: &[&[u32]], max_new: usize) -> Result<Vec<Vec<u32>>> {
        let sources = inputs.iter().map(|x| self.encode(x).map(Arc::new)).collect::<Result<Vec<_>>>()?;
        let mut state = self.start(sources, max_new.max(1))?;
        let eos = self.config.eos_token_id;
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); inputs.len()];
        let mut tokens = vec![self.config.decoder_start_token_id; inputs.len()];
        for _ in 0..max_new {
            self.step(&mut state, &tokens)?;
            tokens = self.argmax(&state)?;
            for (o, &t) in out.iter_mut().zip(&tokens) {
                if o.last() != Some(&eos) {
                    o.push(t);
                }
            }
            if out.iter().all(|o| o.last() == Some(&eos)) {
                break;
            }
        }
        Ok(out)
    }
}
