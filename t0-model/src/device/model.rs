//! T5 on a [`Backend`]: weights uploaded once, the encoder, cross-attention keys/values computed
//! once per input, and decode steps with device-resident caches.

use std::sync::Arc;

use t0_kernels::row_summary::RowSummary;
use t0_kernels::{Activation, WeightView};

use super::{encode_index, rows_f32, Backend, DeviceAttention, DeviceDType};
use crate::attention::Qkv;
use crate::decoding::Decoding;
use crate::feed_forward::Wi;
use crate::generate::Generated;
use crate::linear::Linear;
use crate::position_bias::{BiasVectors, StackBias};
use crate::{Classification, GenerationConfig, ModelError, Result, T5Config, T5Model};

/// A weight on the device and its shape.
struct DevLinear<B: Backend> {
    w: B::Weight,
    rows: usize,
    /// Bytes of the weight on the device.
    bytes: usize,
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

struct DevFeedForward<B: Backend> {
    /// `wi`, or `[wi_0; wi_1]` stacked when gated.
    wi: DevLinear<B>,
    wo: DevLinear<B>,
    gated: bool,
    act: Activation,
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

struct EncLayer<B: Backend> {
    attn_norm: B::Buf,
    qkv: DevLinear<B>,
    o: DevLinear<B>,
    ff_norm: B::Buf,
    ff: DevFeedForward<B>,
}

struct DecLayer<B: Backend> {
    self_norm: B::Buf,
    qkv: DevLinear<B>,
    self_o: DevLinear<B>,
    cross_norm: B::Buf,
    cross_q: DevLinear<B>,
    cross_k: DevLinear<B>,
    cross_v: DevLinear<B>,
    cross_o: DevLinear<B>,
    ff_norm: B::Buf,
    ff: DevFeedForward<B>,
}

/// A T5 model whose weights live on a [`Backend`]'s device. `Send + Sync`: one model serves
/// any number of threads, each with its own [`DeviceState`].
pub struct DeviceModel<B: Backend> {
    backend: B,
    config: T5Config,
    dtype: DeviceDType,
    embed: B::Buf,
    lm_head: DevLinear<B>,
    enc: Vec<EncLayer<B>>,
    enc_final: B::Buf,
    enc_bias: StackBias,
    dec: Vec<DecLayer<B>>,
    dec_final: B::Buf,
    dec_bias: StackBias,
    /// Weight bytes one decode step reads (every decoder matrix but the cross keys/values, and
    /// the head).
    step_bytes: usize,
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
    hidden: B::Buf,
    k: Vec<B::Buf>,
    v: Vec<B::Buf>,
}

impl<B: Backend> DeviceEncoded<B> {
    /// The encoder's final hidden states, `[seq, d_model]`, on the host.
    pub fn hidden(&self, backend: &B, d_model: usize) -> Result<Vec<f32>> {
        backend.download(&self.hidden, self.seq * d_model)
    }
}

/// Per-layer workspaces of a forward pass (sized for the largest `m` seen).
struct Work<B: Backend> {
    h: B::Buf,
    normed: B::Buf,
    tmp: B::Buf,
    qkv: B::Buf,
    q: B::Buf,
    ctx: B::Buf,
    ff: B::Buf,
    act: B::Buf,
}

/// The decoder state of `rows` rows decoded in step: self-attention caches
/// (`[rows, heads, capacity, d_kv]` per layer), each row's encoded input, workspaces, and the
/// last step's logits, all on the device.
pub struct DeviceState<B: Backend> {
    rows: usize,
    /// Rows the caches, workspaces and logits have room for.
    room: usize,
    len: usize,
    cap: usize,
    k: Vec<B::Buf>,
    v: Vec<B::Buf>,
    /// Per layer, the buffers the keys and values are gathered into when rows are selected
    /// (then swapped with `k`/`v`); allocated by the first [`DeviceModel::select_rows`].
    spare: Vec<(B::Buf, B::Buf)>,
    /// Rows selected but not gathered yet: the next step gathers row `order[i]` of the caches
    /// into row `i` first, inside its launches (so that beam search's steps replay too).
    pending: Option<Vec<u32>>,
    /// Whether `k`/`v` and `spare` have traded places an odd number of times (which buffers a
    /// recording read).
    swapped: bool,
    sources: Vec<Arc<DeviceEncoded<B>>>,
    work: Work<B>,
    logits: B::Buf,
    /// The last step's logits on the host, for generation ([`DeviceModel::generate`]).
    host_logits: Vec<f32>,
    /// What changes from one step to the next, written before each step: the position, one
    /// token per row, and the rows' order when they were selected (f32-coded), so that a
    /// recorded step replays as it is.
    inputs: B::Buf,
    inputs_host: Vec<f32>,
    /// The self-attention bias for every distance a query can see, `−(cap − 1)..=0` (one
    /// table for the stack, or one per layer for umT5), computed once: the step's position
    /// moves the read, not the values.
    bias: Vec<B::Buf>,
    bias_head_stride: usize,
    /// Steps recorded for replay ([`Backend::record`]) while the rows keep their inputs and
    /// the buffers stay, by [`step_kind`]: which cache buffers the step reads, and whether it
    /// gathers selected rows first.
    recordings: [Option<B::Recording>; 4],
    /// Steps that ran as a replay of a recorded one.
    replays: usize,
    /// Steps run since the rows last changed (a step is recorded only after one has run as it
    /// is, so that it allocates nothing while it is recorded).
    steps_since_change: usize,
}

impl<B: Backend> DeviceState<B> {
    /// Tokens decoded so far per row.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows decoded together.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Steps that ran as one replay of a recorded step (a CUDA graph), not launch by launch.
    pub fn replayed_steps(&self) -> usize {
        self.replays
    }
}

/// Positions and token ids travel to the device as f32 (exact below 2²⁴).
const INDEX_LIMIT: usize = 1 << 24;

/// Which recorded step (of [`DeviceState::recordings`]) a step is: the cache buffers it reads
/// (`swapped`) and whether it gathers selected rows first.
fn step_kind(swapped: bool, gathers: bool) -> usize {
    2 * usize::from(swapped) + usize::from(gathers)
}

/// The T5 scale of the tied head's input, `d_model^-0.5` (as the CPU model computes it).
fn tied_scale(d: usize) -> f32 {
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

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&i| i as usize >= self.config.vocab_size) {
            Some(&id) => Err(ModelError::TokenOutOfRange { id, vocab_size: self.config.vocab_size }),
            None => Ok(()),
        }
    }

    fn work(&self, m: usize) -> Result<Work<B>> {
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
    fn feed_forward(&self, ff: &DevFeedForward<B>, m: usize, w: &mut Work<B>) -> Result<()> {
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

    /// A decoder state for one row per source (rows may share a source), with room for
    /// `capacity` tokens per row (the decoder start token included).
    pub fn start(&self, sources: Vec<Arc<DeviceEncoded<B>>>, capacity: usize) -> Result<DeviceState<B>> {
        if sources.is_empty() || capacity == 0 {
            return Err(ModelError::InvalidArgument("start: no rows, or no room for a token".into()));
        }
        if capacity > INDEX_LIMIT {
            return Err(ModelError::InvalidArgument(format!(
                "start: room for {capacity} tokens is more than a device step can address ({INDEX_LIMIT})"
            )));
        }
        let c = &self.config;
        let rows = sources.len();
        let cache = rows * c.num_heads * capacity * c.d_kv;
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for _ in &self.dec {
            k.push(self.backend.zeros(cache)?);
            v.push(self.backend.zeros(cache)?);
        }
        let (mut vectors, mut bias) = (BiasVectors::default(), Vec::new());
        for l in 0..self.dec.len() {
            if self.dec_bias.layer_vectors_into(l, 1 - capacity as i64, 0, &mut vectors) {
                bias.push(self.backend.upload(vectors.view().values)?);
            }
        }
        Ok(DeviceState {
            rows,
            room: rows,
            len: 0,
            cap: capacity,
            k,
            v,
            spare: Vec::new(),
            sources,
            work: self.work(rows)?,
            logits: self.backend.zeros(rows * c.vocab_size)?,
            host_logits: Vec::new(),
            pending: None,
            swapped: false,
            inputs: self.backend.zeros(1 + 2 * rows)?,
            inputs_host: Vec::with_capacity(1 + 2 * rows),
            bias,
            bias_head_stride: vectors.view().head_stride,
            recordings: Default::default(),
            replays: 0,
            steps_since_change: 0,
        })
    }

    /// Keeps rows `keep` of the state, in that order (a row may appear more than once, as beam
    /// search's parents do). The keys and values are gathered on the device by the next step,
    /// before it runs (or now, when the rows outgrow the state's room).
    pub fn select_rows(&self, state: &mut DeviceState<B>, keep: &[usize]) -> Result<()> {
        if let Some(&bad) = keep.iter().find(|&&r| r >= state.rows) {
            return Err(ModelError::InvalidArgument(format!(
                "select_rows: row {bad} does not exist (the state has {} rows)",
                state.rows
            )));
        }
        let c = &self.config;
        let block = c.num_heads * state.cap * c.d_kv;
        let b = &self.backend;
        let sources: Vec<_> = keep.iter().map(|&r| state.sources[r].clone()).collect();
        let same_inputs =
            keep.len() == state.rows && sources.iter().zip(&state.sources).all(|(a, b)| Arc::ptr_eq(a, b));
        // Row i of the caches to be: a row of the caches as they are (after any order not
        // gathered yet).
        let order: Vec<u32> = match &state.pending {
            Some(p) => keep.iter().map(|&r| p[r]).collect(),
            None => keep.iter().map(|&r| r as u32).collect(),
        };
        if keep.len() > state.room {
            // More rows than the buffers hold: gather into larger ones now.
            let room = keep.len();
            let fresh = || -> Result<Vec<(B::Buf, B::Buf)>> {
                (0..self.dec.len()).map(|_| Ok((b.zeros(room * block)?, b.zeros(room * block)?))).collect()
            };
            let mut caches = fresh()?;
            state.inputs = b.zeros(1 + 2 * room)?;
            b.write(&mut state.inputs, &order.iter().map(|&r| encode_index(r as usize)).collect::<Vec<_>>())?;
            for ((k, v), (k2, v2)) in state.k.iter().zip(&state.v).zip(&mut caches) {
                b.embedding_coded(k, block, (&state.inputs, 0), order.len(), k2)?;
                b.embedding_coded(v, block, (&state.inputs, 0), order.len(), v2)?;
            }
            (state.k, state.v) = caches.into_iter().unzip();
            state.spare = fresh()?;
            state.work = self.work(room)?;
            state.logits = b.zeros(room * c.vocab_size)?;
            state.room = room;
            state.pending = None;
        } else {
            if state.spare.is_empty() {
                state.spare = (0..self.dec.len())
                    .map(|_| Ok((b.zeros(state.room * block)?, b.zeros(state.room * block)?)))
                    .collect::<Result<_>>()?;
            }
            state.pending = Some(order);
        }
        if !same_inputs || state.pending.is_none() {
            // Other rows, or other buffers: the recorded steps no longer fit.
            state.recordings = Default::default();
            state.steps_since_change = 0;
        }
        state.sources = sources;
        state.rows = keep.len();
        Ok(())
    }

    /// One decode step: `tokens` holds one token per row; afterwards the state holds each row's
    /// next-token logits ([`DeviceModel::logits`], [`DeviceModel::argmax`]).
    ///
    /// The position and the tokens are written to the device first, and the step's launches
    /// read them there: a backend that records launches (CUDA graphs) records the second step
    /// after the rows last changed and replays it from then on, one launch per step.
    pub fn step(&self, state: &mut DeviceState<B>, tokens: &[u32]) -> Result<()> {
        if tokens.len() != state.rows {
            return Err(ModelError::InvalidArgument(format!("step: {} tokens for {} rows", tokens.len(), state.rows)));
        }
        if state.len >= state.cap {
            return Err(ModelError::InvalidArgument(format!("step: the state has room for {} tokens", state.cap)));
        }
        self.check_ids(tokens)?;
        let gather = state.pending.take();
        state.inputs_host.clear();
        state.inputs_host.push(encode_index(state.len));
        state.inputs_host.extend(tokens.iter().map(|&t| encode_index(t as usize)));
        state.inputs_host.extend(gather.iter().flatten().map(|&r| encode_index(r as usize)));
        self.backend.write(&mut state.inputs, &state.inputs_host)?;
        let (gathers, kind) = (gather.is_some(), step_kind(state.swapped, gather.is_some()));
        let replayed = match &state.recordings[kind] {
            Some(r) => self.backend.replay(r)?,
            None => false,
        };
        state.replays += usize::from(replayed);
        if !replayed {
            if state.steps_since_change > 0 {
                let recording = self.backend.record(&mut || self.step_launches(state, gathers))?;
                state.recordings[kind] = recording;
            } else {
                self.step_launches(state, gathers)?;
            }
        }
        if gathers {
            // The gathered caches (in `spare`) are the caches from now on.
            for ((k, v), (k2, v2)) in state.k.iter_mut().zip(&mut state.v).zip(&mut state.spare) {
                std::mem::swap(k, k2);
                std::mem::swap(v, v2);
            }
            state.swapped = !state.swapped;
        }
        state.steps_since_change += 1;
        state.len += 1;
        Ok(())
    }

    /// A decode step's launches, reading the position and the tokens from `state.inputs`;
    /// with `gathers`, first the selected rows' keys and values into `state.spare` (their order
    /// after the tokens in `state.inputs`), which the step then reads and appends to.
    fn step_launches(&self, state: &mut DeviceState<B>, gathers: bool) -> Result<()> {
        let c = &self.config;
        let (b, rows, d, inner) = (&self.backend, state.rows, c.d_model, c.inner_dim());
        let (heads, d_kv, eps, cap) = (c.num_heads, c.d_kv, c.layer_norm_epsilon, state.cap);
        let w = &mut state.work;
        let pos = (&state.inputs, 0);
        if gathers {
            let (block, order) = (heads * cap * d_kv, (&state.inputs, 1 + rows));
            for ((k, v), (k2, v2)) in state.k.iter().zip(&state.v).zip(&mut state.spare) {
                b.embedding_coded(k, block, order, rows, k2)?;
                b.embedding_coded(v, block, order, rows, v2)?;
            }
        }
        b.embedding_coded(&self.embed, d, (&state.inputs, 1), rows, &mut w.h)?;
        // Each residual add runs with the norm after it (`add_rms_norm`): `normed` holds the
        // next block's input.
        let first_norm = self.dec.first().map_or(&self.dec_final, |l| &l.self_norm);
        b.rms_norm(&w.h, first_norm, eps, rows, d, &mut w.normed)?;
        for (l, layer) in self.dec.iter().enumerate() {
            let bias = &state.bias[if state.bias.len() == 1 { 0 } else { l }];
            let (kc, vc) = match gathers {
                true => {
                    let (k2, v2) = &mut state.spare[l];
                    (k2, v2)
                }
                false => (&mut state.k[l], &mut state.v[l]),
            };
            b.linear(&w.normed, rows, &layer.qkv.w, &mut w.qkv)?;
            b.kv_append(&w.qkv, rows, heads, d_kv, kc, vc, cap, pos)?;
            // Every row's query against its own cache, in one call; the position on the device
            // (the keys after it are hidden by causality).
            let a = DeviceAttention {
                q: (&w.qkv, 0),
                k: (kc, 0),
                v: (vc, 0),
                heads,
                d_kv,
                q_len: 1,
                kv_len: cap,
                q_row_stride: 3 * inner,
                kv_head_stride: cap * d_kv,
                kv_row_stride: d_kv,
                q_pos0: 0,
                causal: true,
                q_pos_at: Some(pos),
                bias: Some((bias, state.bias_head_stride, cap - 1)),
                mask: None,
                batch: rows,
                q_batch_stride: 3 * inner,
                kv_batch_stride: heads * cap * d_kv,
            };
            b.attention(&a, &mut w.ctx, 0)?;
            b.linear(&w.ctx, rows, &layer.self_o.w, &mut w.tmp)?;
            b.add_rms_norm(&mut w.h, &w.tmp, &layer.cross_norm, eps, rows, d, &mut w.normed)?;
            b.linear(&w.normed, rows, &layer.cross_q.w, &mut w.q)?;
            // One call per run of rows with the same input (the beams of one prompt, the
            // choices of one rank classification), which share its keys and values.
            let mut r = 0;
            while r < rows {
                let src = &state.sources[r];
                let run = state.sources[r..].iter().take_while(|s| Arc::ptr_eq(s, src)).count();
                let a = DeviceAttention {
                    q: (&w.q, r * inner),
                    k: (&src.k[l], 0),
                    v: (&src.v[l], 0),
                    heads,
                    d_kv,
                    q_len: 1,
                    kv_len: src.seq,
                    q_row_stride: inner,
                    kv_head_stride: d_kv,
                    kv_row_stride: inner,
                    q_pos0: 0,
                    causal: false,
                    q_pos_at: None,
                    bias: None,
                    mask: None,
                    batch: run,
                    q_batch_stride: inner,
                    kv_batch_stride: 0,
                };
                b.attention(&a, &mut w.ctx, r * inner)?;
                r += run;
            }
            b.linear(&w.ctx, rows, &layer.cross_o.w, &mut w.tmp)?;
            b.add_rms_norm(&mut w.h, &w.tmp, &layer.ff_norm, eps, rows, d, &mut w.normed)?;
            self.feed_forward(&layer.ff, rows, w)?;
            let next_norm = self.dec.get(l + 1).map_or(&self.dec_final, |n| &n.self_norm);
            b.add_rms_norm(&mut w.h, &w.tmp, next_norm, eps, rows, d, &mut w.normed)?;
        }
        if c.scale_decoder_outputs {
            b.scale(&mut w.normed, rows * d, tied_scale(d))?;
        }
        b.linear(&w.normed, rows, &self.lm_head.w, &mut state.logits)
    }

    /// The last step's logits, `[rows, vocab]`, on the host.
    pub fn logits(&self, state: &DeviceState<B>) -> Result<Vec<f32>> {
        self.backend.download(&state.logits, state.rows * self.lm_head.rows)
    }

    /// The last step's most likely next token of each row (computed on the device).
    pub fn argmax(&self, state: &DeviceState<B>) -> Result<Vec<u32>> {
        self.backend.argmax(&state.logits, state.rows, self.lm_head.rows)
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

impl<B: Backend> Decoding for DeviceModel<B> {
    type State = DeviceState<B>;

    fn config(&self) -> &T5Config {
        &self.config
    }

    fn begin(&self, inputs: &[&[u32]], source_of_row: Vec<usize>, steps: usize) -> Result<DeviceState<B>> {
        let enc = inputs.iter().map(|x| self.encode(x).map(Arc::new)).collect::<Result<Vec<_>>>()?;
        let sources = source_of_row
            .iter()
            .map(|&s| {
                enc.get(s).cloned().ok_or_else(|| {
                    ModelError::InvalidArgument(format!("begin: source {s} does not exist ({} inputs)", enc.len()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.start(sources, steps.max(1))
    }

    fn step(&self, state: &mut DeviceState<B>, tokens: &[u32]) -> Result<()> {
        DeviceModel::step(self, state, tokens)
    }

    fn logits<'s>(&self, state: &'s mut DeviceState<B>) -> Result<&'s mut [f32]> {
        state.host_logits = DeviceModel::logits(self, state)?;
        Ok(&mut state.host_logits)
    }

    fn summaries(&self, state: &DeviceState<B>, k: usize, targets: &[u32]) -> Result<Option<Vec<RowSummary>>> {
        self.backend.row_summaries(&state.logits, state.rows, self.lm_head.rows, k, targets).map(Some)
    }

    fn select_rows(&self, state: &mut DeviceState<B>, keep: &[usize]) -> Result<()> {
        DeviceModel::select_rows(self, state, keep)
    }

    fn log_softmax(&self, x: &mut [f32]) {
        t0_kernels::select().log_softmax(x)
    }
}
