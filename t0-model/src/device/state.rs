//! A decoder state on the device ([`DeviceState`]) and what runs on it: starting one, keeping
//! some of its rows, and the decode step — its inputs written to the device first, its launches
//! recorded and replayed where the backend can ([`Backend::record`]).

use std::sync::Arc;

use t0_kernels::logit_edit::Edit;
use t0_kernels::row_summary::RowSummary;

use super::model::{tied_scale, Work, INDEX_LIMIT};
use super::{encode_index, Backend, DeviceAttention, DeviceEncoded, DeviceModel};
use crate::decoding::Decoding;
use crate::position_bias::BiasVectors;
use crate::{ModelError, Result, T5Config};

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

/// Which recorded step (of [`DeviceState::recordings`]) a step is: the cache buffers it reads
/// (`swapped`) and whether it gathers selected rows first.
fn step_kind(swapped: bool, gathers: bool) -> usize {
    2 * usize::from(swapped) + usize::from(gathers)
}

impl<B: Backend> DeviceModel<B> {
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

    fn edit_logits(&self, state: &mut DeviceState<B>, edits: &[(u32, Edit)]) -> Result<bool> {
        let len = state.rows * self.lm_head.rows;
        self.backend.edit_logits(&mut state.logits, len, edits).map(|()| true)
    }

    fn select_rows(&self, state: &mut DeviceState<B>, keep: &[usize]) -> Result<()> {
        DeviceModel::select_rows(self, state, keep)
    }

    fn log_softmax(&self, x: &mut [f32]) {
        t0_kernels::select().log_softmax(x)
    }
}
