//! Running the model on a compute device other than through the CPU model's own path: a
//! [`Backend`] is a small set of operations on buffers that live on the device (upload, matmul,
//! RMS norm, activations, residual add, attention with T5's relative bias, a KV-cache append,
//! argmax, row summaries), and [`DeviceModel`] is T5 written once against it: weights uploaded
//! once, encoder, cross-attention keys/values computed once per input, and decode steps whose
//! caches stay on the device (the host sends token ids and reads back argmaxes, each row's
//! summary — log-sum-exp and top entries, [`Backend::row_summaries`] — or the logits, once per
//! step, never per layer).
//!
//! Two backends: [`HostBackend`] (host memory, this crate's CPU kernels; it checks the
//! orchestration against the CPU model wherever the tests run) and, with feature `cuda`,
//! `CudaBackend` (device memory, the NVRTC-compiled kernels of `t0_kernels::cuda`).
//!
//! ```
//! use t0_model::device::{DeviceModel, HostBackend, DeviceDType};
//! # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/gated-gelu-inner");
//! let model = t0_model::T5Model::from_dir(&dir)?;
//! let dev = DeviceModel::new(&model, HostBackend::new(), DeviceDType::F32)?;
//! let ids = dev.generate_greedy(&[&[37, 8, 5, 1]], 5)?;
//! let cpu = model.generate(&[vec![37, 8, 5, 1]], &t0_model::GenerationConfig::greedy(5))?;
//! assert_eq!(ids[0], cpu[0][0].token_ids);
//! # Ok::<(), t0_model::ModelError>(())
//! ```

#[cfg(feature = "cuda")]
mod cuda;
mod host;
mod model;
mod state;

#[cfg(feature = "cuda")]
pub use cuda::{CudaBackend, CudaStep, CudaWeight};
pub use host::{HostBackend, HostWeight};
pub use model::{DeviceEncoded, DeviceModel};
pub use state::DeviceState;

use t0_kernels::logit_edit::{apply_edits, check_edits, Edit};
use t0_kernels::row_summary::{row_summary, RowSummary};
use t0_kernels::{Activation, WeightView};

use crate::{ModelError, Result};

/// How weights are stored on the device (sums are f32 either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceDType {
    /// 4 bytes per weight: results within rounding of the CPU model.
    F32,
    /// bfloat16 weights (T0 was trained in bf16): half the bytes a decode step reads. CUDA's
    /// decode GEMV multiplies them by f32 activations, its tensor-core GEMM (inputs of more than
    /// 8 rows) by activations rounded to bf16; the host backend runs the CPU's packed bf16
    /// matmul, which rounds the activations to bf16 throughout ([`crate::PackDType::Bf16`]).
    Bf16,
    /// IEEE half (f16) weights: the bytes of bf16 with three more bits of mantissa. T5's
    /// activations overflow f16 (its feed-forward outputs and residual stream pass 65504 in T5
    /// v1.1 models, which is why T0 runs in f32 or bf16), so only the weights are f16: the
    /// activations, the residual stream, the feed-forward output and every sum stay f32, and
    /// each product is an exactly widened f16 weight times an f32 activation. A weight matrix
    /// with a value outside f16's range is refused at upload, naming the tensor, rather than
    /// stored as infinity.
    F16,
}

impl DeviceDType {
    /// Bytes per weight on the device.
    pub fn bytes_per_weight(self) -> usize {
        match self {
            DeviceDType::F32 => 4,
            DeviceDType::Bf16 | DeviceDType::F16 => 2,
        }
    }
}

/// A buffer region: the buffer and the element offset where the operand starts.
pub type At<'a, Buf> = (&'a Buf, usize);

/// One attention call (as [`t0_kernels::AttentionArgs`], with buffer offsets): for query row `i`
/// and head `h`, `softmax_j(q·k_j + bias + mask_j) · v_j`, no `1/√d` scaling (T5). `batch`
/// problems of the same shape go in one call (a decode step's rows, one launch on a GPU):
/// problem `t` reads its queries `t·q_batch_stride` and its keys and values `t·kv_batch_stride`
/// further on (0: shared, as by the beams of one input), shares the bias and the mask, and
/// writes `[q_len, heads·d_kv]` after problem `t − 1`'s output.
///
/// `Buf` is the backend's buffer type, so a backend that wraps another (to time or trace its
/// calls) passes the call on as it is.
pub struct DeviceAttention<'a, Buf> {
    /// Query `i`, head `h` at `q.1 + i·q_row_stride + h·d_kv`.
    pub q: At<'a, Buf>,
    /// Key `j`, head `h` at `k.1 + h·kv_head_stride + j·kv_row_stride`.
    pub k: At<'a, Buf>,
    /// Values, laid out as the keys.
    pub v: At<'a, Buf>,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub d_kv: usize,
    /// Query rows.
    pub q_len: usize,
    /// Keys.
    pub kv_len: usize,
    /// Distance between query rows.
    pub q_row_stride: usize,
    /// Distance between heads of the keys/values.
    pub kv_head_stride: usize,
    /// Distance between keys.
    pub kv_row_stride: usize,
    /// Position of query row 0 (for causality and the bias).
    pub q_pos0: usize,
    /// Keys after a query's own position are not seen.
    pub causal: bool,
    /// `q_pos0` read from this buffer's element (an f32-coded integer written by
    /// [`Backend::write`] before a decode step, so that a recorded step replays at later positions) instead of
    /// the field. Causal only; `kv_len` is then the cache's capacity (causality hides the keys
    /// after the position).
    pub q_pos_at: Option<At<'a, Buf>>,
    /// Relative bias `values[h·head_stride + offset + j − (q_pos0 + i)]`: (values, head stride,
    /// offset), as [`t0_kernels::BiasView`].
    pub bias: Option<(&'a Buf, usize, usize)>,
    /// Additive mask per key.
    pub mask: Option<At<'a, Buf>>,
    /// Problems in the call (1: one).
    pub batch: usize,
    /// Distance between the problems' queries.
    pub q_batch_stride: usize,
    /// Distance between the problems' keys (and values); 0 when they share them.
    pub kv_batch_stride: usize,
}

/// The operations [`DeviceModel`] runs. Buffers are f32 and may be longer than an operation
/// needs (workspaces are reused); every operation says which prefix it reads and writes.
/// Implementations return errors (never panic) on sizes that do not fit.
pub trait Backend: Send + Sync {
    /// An f32 buffer in the device's memory.
    type Buf: Send + Sync;
    /// A weight matrix `[rows, cols]` in the device's memory.
    type Weight: Send + Sync;
    /// A recorded decode step ([`Backend::record`]); [`NoRecording`] for a backend that
    /// records none.
    type Recording: Send;

    /// A name for messages (`cpu (avx2)`, `cuda:0 (sm_90)`).
    fn name(&self) -> String;
    /// A new buffer holding `x`.
    fn upload(&self, x: &[f32]) -> Result<Self::Buf>;
    /// A new zeroed buffer of `len` values.
    fn zeros(&self, len: usize) -> Result<Self::Buf>;
    /// Copies `values` into the start of `dst` (no allocation: what a decode step writes before
    /// it runs, its position and tokens, so that a recorded step can replay).
    fn write(&self, dst: &mut Self::Buf, values: &[f32]) -> Result<()>;
    /// The first `len` values of `x`, on the host (waits for the device).
    fn download(&self, x: &Self::Buf, len: usize) -> Result<Vec<f32>>;
    /// A weight on the device, stored as `dtype`.
    fn upload_weight(&self, w: &WeightView<'_>, dtype: DeviceDType) -> Result<Self::Weight>;
    /// `out[m, rows] = x[m, cols] · wᵀ`.
    fn linear(&self, x: &Self::Buf, m: usize, w: &Self::Weight, out: &mut Self::Buf) -> Result<()>;
    /// `out[t, :] = table[ids[t], :]` for a `[vocab, cols]` table (ids already checked).
    fn embedding(&self, table: &Self::Buf, cols: usize, ids: &[u32], out: &mut Self::Buf) -> Result<()>;
    /// As [`Backend::embedding`] for `n` ids read from `ids` as f32-coded integers (a decode
    /// step's tokens, written by [`Backend::write`] before the step; checked by the caller). Default:
    /// downloads the ids.
    fn embedding_coded(
        &self,
        table: &Self::Buf,
        cols: usize,
        ids: At<'_, Self::Buf>,
        n: usize,
        out: &mut Self::Buf,
    ) -> Result<()> {
        let host = self.download(ids.0, ids.1 + n)?;
        let ids = host[ids.1..].iter().map(|&f| decode_index("embedding id", f)).collect::<Result<Vec<u32>>>()?;
        self.embedding(table, cols, &ids, out)
    }
    /// T5's RMS norm of `rows` rows of `cols` values.
    fn rms_norm(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        eps: f32,
        rows: usize,
        cols: usize,
        out: &mut Self::Buf,
    ) -> Result<()>;
    /// `acc += x` over `rows · cols` values, then `out` = T5's RMS norm of each row of `acc`:
    /// a residual add and the next block's norm (one launch on a GPU). Default: the two calls.
    #[allow(clippy::too_many_arguments)]
    fn add_rms_norm(
        &self,
        acc: &mut Self::Buf,
        x: &Self::Buf,
        w: &Self::Buf,
        eps: f32,
        rows: usize,
        cols: usize,
        out: &mut Self::Buf,
    ) -> Result<()> {
        self.add_assign(acc, x, rows * cols)?;
        self.rms_norm(acc, w, eps, rows, cols, out)
    }
    /// `x = act(x)` over the first `len` values.
    fn activation(&self, act: Activation, x: &mut Self::Buf, len: usize) -> Result<()>;
    /// `out[r, c] = act(both[r, c]) · both[r, ff + c]` for rows of `[gate | up]`.
    fn gated(&self, act: Activation, both: &Self::Buf, rows: usize, ff: usize, out: &mut Self::Buf) -> Result<()>;
    /// `acc += x` over the first `len` values.
    fn add_assign(&self, acc: &mut Self::Buf, x: &Self::Buf, len: usize) -> Result<()>;
    /// `x *= s` over the first `len` values.
    fn scale(&self, x: &mut Self::Buf, len: usize, s: f32) -> Result<()>;
    /// Writes the keys and values of `rows` rows of `qkv` (`[rows, q | k | v]`, each part
    /// `heads·d_kv` wide) at the position `pos` holds (an f32-coded integer written
    /// by [`Backend::write`] before a decode step, so that a recorded step replays at later
    /// positions) of caches laid out `[rows, heads, cap, d_kv]`. A position outside the cache
    /// is an error where the backend can see it (the host) and writes nothing where it cannot
    /// (a GPU kernel); the model checks positions before it writes them.
    #[allow(clippy::too_many_arguments)]
    fn kv_append(
        &self,
        qkv: &Self::Buf,
        rows: usize,
        heads: usize,
        d_kv: usize,
        k: &mut Self::Buf,
        v: &mut Self::Buf,
        cap: usize,
        pos: At<'_, Self::Buf>,
    ) -> Result<()>;
    /// Attention into `out` from offset `out_off`, `[batch, q_len, heads·d_kv]` densely.
    fn attention(&self, a: &DeviceAttention<'_, Self::Buf>, out: &mut Self::Buf, out_off: usize) -> Result<()>;
    /// The index of the largest value of each of `rows` rows (the first on ties).
    fn argmax(&self, x: &Self::Buf, rows: usize, cols: usize) -> Result<Vec<u32>>;
    /// Each of `rows` rows' [`RowSummary`] (its log-sum-exp, its `k` largest entries, the value
    /// at `targets[r]`; `targets` empty: none): what greedy search, sampling, beam search and
    /// rank classification need from a step's logits, so that a device sends back `2k + 2`
    /// numbers a row instead of the vocabulary. Default: downloads the rows and summarises
    /// them on the host.
    fn row_summaries(
        &self,
        x: &Self::Buf,
        rows: usize,
        cols: usize,
        k: usize,
        targets: &[u32],
    ) -> Result<Vec<RowSummary>> {
        summarise(&self.download(x, rows * cols)?, rows, cols, k, targets)
    }
    /// Applies the logits processors' `edits` (index into `x`'s first `len` values,
    /// [`Edit`]; each index once) to `x` in place, so that a step's rows can be summarised
    /// after processing without coming back ([`Backend::row_summaries`]). Every value as
    /// [`t0_kernels::logit_edit::apply_edits`] makes it. Default: downloads the `len` values,
    /// edits them on the host and writes them back.
    fn edit_logits(&self, x: &mut Self::Buf, len: usize, edits: &[(u32, Edit)]) -> Result<()> {
        check_edits(len, edits).map_err(ModelError::InvalidArgument)?;
        let mut host = self.download(x, len)?;
        apply_edits(&mut host, edits);
        self.write(x, &host)
    }
    /// Runs `launches` (a decode step's, reading everything that changes from one step to the
    /// next from device memory) and, when the device can replay them as they are (a CUDA graph),
    /// returns them recorded, for [`Backend::replay`] at later steps. Default: runs them and
    /// records nothing.
    fn record(&self, launches: &mut dyn FnMut() -> Result<()>) -> Result<Option<Self::Recording>> {
        launches().map(|()| None)
    }
    /// Runs a recording of [`Backend::record`] again; false (nothing ran) when it can no
    /// longer run (a buffer it used has been replaced): the caller records anew.
    fn replay(&self, recording: &Self::Recording) -> Result<bool> {
        let _ = recording;
        Err(ModelError::InvalidArgument(format!("{} replays no recordings", self.name())))
    }
    /// Waits until everything launched so far has finished (for timing).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// The memory's peak bandwidth in GB/s, when the device reports it.
    fn peak_bandwidth_gbs(&self) -> Option<f64> {
        None
    }
}

/// The recording of a backend that records nothing ([`Backend::Recording`]): no value exists.
#[derive(Debug)]
pub enum NoRecording {}

/// An index (a token id, a position) stored as an f32 in a device buffer: exact below 2²⁴.
pub(crate) fn encode_index(i: usize) -> f32 {
    i as f32
}

/// The index an f32 of a device buffer holds, or an error naming `what`.
pub(crate) fn decode_index(what: &str, f: f32) -> Result<u32> {
    if f >= 0.0 && f < (1u32 << 24) as f32 && f.fract() == 0.0 {
        Ok(f as u32)
    } else {
        Err(ModelError::InvalidArgument(format!("{what}: {f} is not an index")))
    }
}

/// The [`RowSummary`] of each of `rows` rows of `x` (`targets`: one per row, or none).
pub(crate) fn summarise(x: &[f32], rows: usize, cols: usize, k: usize, targets: &[u32]) -> Result<Vec<RowSummary>> {
    if !targets.is_empty() && targets.len() != rows {
        return Err(ModelError::InvalidArgument(format!("row summaries: {} targets for {rows} rows", targets.len())));
    }
    let x = x.get(..rows * cols).ok_or_else(|| {
        ModelError::InvalidArgument(format!("row summaries: {} values for {rows} rows of {cols}", x.len()))
    })?;
    Ok((0..rows).map(|r| row_summary(&x[r * cols..(r + 1) * cols], k, targets.get(r).copied())).collect())
}

/// The rows of a weight view (any storage) as row-major f32 values, `[rows, cols]`.
pub(crate) fn rows_f32(w: &WeightView<'_>) -> Vec<f32> {
    let (rows, cols) = (w.rows(), w.cols());
    let mut out = vec![0.0f32; rows * cols];
    if cols > 0 {
        for (r, row) in out.chunks_exact_mut(cols).enumerate() {
            w.row_to_f32(r, row);
        }
    }
    out
}
