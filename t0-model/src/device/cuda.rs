//! [`Backend`] on an NVIDIA GPU (feature `cuda`): buffers in device memory, the kernels of
//! [`t0_kernels::cuda`] (compiled by NVRTC at run time, loaded through cudarc).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use t0_kernels::cuda::cudarc::driver::{CudaSlice, CudaView, CudaViewMut};

use t0_kernels::cuda::{CudaAttention, CudaError, CudaKernels, CudaRecording, GEMV_MAX_M};
use t0_kernels::logit_edit::Edit;
use t0_kernels::{Activation, WeightView};

use super::{rows_f32, At, Backend, DeviceAttention, DeviceDType};
use crate::{ModelError, Result};

/// One CUDA device and the kernels compiled for it.
#[derive(Debug)]
pub struct CudaBackend {
    kernels: CudaKernels,
    ordinal: usize,
    /// Whether decode steps are recorded as CUDA graphs (`T0_CUDA_GRAPHS=0`: never; turned off
    /// for good when a recording fails).
    graphs: AtomicBool,
    /// Held by a thread while it enqueues work on the stream (or records a step): a recording
    /// captures everything enqueued on the stream, so other threads wait until it ends.
    enqueue_lock: Mutex<()>,
    /// The tensor-core GEMM's bf16 copy of its input, kept between calls (it only grows), and
    /// how many times it has grown: a recording that used it replays only while it has not.
    scratch: Mutex<Option<CudaSlice<u16>>>,
    scratch_epoch: AtomicU64,
}

/// A decode step recorded as a CUDA graph ([`Backend::record`]).
#[derive(Debug)]
pub struct CudaStep {
    graph: CudaRecording,
    scratch_epoch: u64,
}

/// A weight on the GPU, row-major `[rows, cols]` (HF's layout, which the GEMV streams).
#[derive(Debug)]
pub enum CudaWeight {
    /// f32 values.
    F32(CudaSlice<f32>, usize, usize),
    /// bf16 bits.
    Bf16(CudaSlice<u16>, usize, usize),
    /// IEEE half bits.
    F16(CudaSlice<u16>, usize, usize),
}

impl CudaBackend {
    /// The kernels on device `ordinal` (`cuda:N`), or why they cannot run there. Decode steps
    /// are recorded as CUDA graphs unless `T0_CUDA_GRAPHS=0`.
    pub fn new(ordinal: usize) -> Result<Self> {
        Self::with_graphs(ordinal, std::env::var("T0_CUDA_GRAPHS").map_or(true, |v| v != "0"))
    }

    /// As [`CudaBackend::new`], recording decode steps as CUDA graphs or not as `graphs` says.
    pub fn with_graphs(ordinal: usize, graphs: bool) -> Result<Self> {
        let kernels = CudaKernels::new(ordinal).map_err(|e| dev_err(ordinal, e))?;
        Ok(Self {
            kernels,
            ordinal,
            graphs: AtomicBool::new(graphs),
            enqueue_lock: Mutex::new(()),
            scratch: Mutex::new(None),
            scratch_epoch: AtomicU64::new(0),
        })
    }

    fn err(&self, e: CudaError) -> ModelError {
        dev_err(self.ordinal, e)
    }

    /// The right to enqueue work on the stream until the guard drops (nested calls on this
    /// thread pass through).
    fn enqueue(&self) -> Enqueue<'_> {
        enqueue_on(&self.enqueue_lock)
    }
}

/// Takes `lock` for this thread unless it holds it already (see [`CudaBackend::enqueue`]).
fn enqueue_on(lock: &Mutex<()>) -> Enqueue<'_> {
    if INSIDE.get() {
        return Enqueue { _lock: None, outer: false };
    }
    let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    INSIDE.set(true);
    Enqueue { _lock: Some(guard), outer: true }
}

thread_local! {
    /// Whether this thread holds a backend's enqueue lock (its nested calls take it no more).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// [`CudaBackend::enqueue`]'s guard.
struct Enqueue<'a> {
    _lock: Option<MutexGuard<'a, ()>>,
    outer: bool,
}

impl Drop for Enqueue<'_> {
    fn drop(&mut self) {
        if self.outer {
            INSIDE.set(false);
        }
    }
}

fn dev_err(ordinal: usize, e: CudaError) -> ModelError {
    ModelError::Device { device: format!("cuda:{ordinal}"), reason: e.to_string() }
}

/// `&buf[off..]` as a view, or an error.
fn view_from<'a>(what: &str, buf: &'a CudaSlice<f32>, off: usize) -> Result<CudaView<'a, f32>> {
    if off > buf.len() {
        return Err(ModelError::InvalidArgument(format!("{what}: offset {off} is past the end ({})", buf.len())));
    }
    Ok(buf.slice(off..))
}

/// `&mut buf[off..off + len]` as a view, or an error.
fn view_mut<'a>(what: &str, buf: &'a mut CudaSlice<f32>, off: usize, len: usize) -> Result<CudaViewMut<'a, f32>> {
    if off + len > buf.len() {
        return Err(ModelError::InvalidArgument(format!("{what}: {} values, {} needed", buf.len(), off + len)));
    }
    Ok(buf.slice_mut(off..off + len))
}

impl Backend for CudaBackend {
    type Buf = CudaSlice<f32>;
    type Weight = CudaWeight;
    type Recording = CudaStep;

    fn name(&self) -> String {
        format!("cuda:{} ({})", self.ordinal, self.kernels.arch())
    }

    fn upload(&self, x: &[f32]) -> Result<CudaSlice<f32>> {
        let _enqueue = self.enqueue();
        if x.is_empty() {
            // A zero-length allocation is an error in the driver: keep one value.
            return self.zeros(0);
        }
        self.kernels.upload(x).map_err(|e| self.err(e))
    }

    fn zeros(&self, len: usize) -> Result<CudaSlice<f32>> {
        let _enqueue = self.enqueue();
        self.kernels.zeros(len.max(1)).map_err(|e| self.err(e))
    }

    fn write(&self, dst: &mut CudaSlice<f32>, values: &[f32]) -> Result<()> {
        let _enqueue = self.enqueue();
        self.kernels.write(&mut dst.as_view_mut(), values).map_err(|e| self.err(e))
    }

    fn download(&self, x: &CudaSlice<f32>, len: usize) -> Result<Vec<f32>> {
        let _enqueue = self.enqueue();
        self.kernels.download_prefix(&x.as_view(), len).map_err(|e| self.err(e))
    }

    fn upload_weight(&self, w: &WeightView<'_>, dtype: DeviceDType) -> Result<CudaWeight> {
        let _enqueue = self.enqueue();
        let (rows, cols) = (w.rows(), w.cols());
        // 16-bit weights go up as their bits: as stored when the file holds that dtype, else
        // rounded (to nearest even) from the f32 values.
        let bits = match (dtype, w) {
            (DeviceDType::F32, _) => return Ok(CudaWeight::F32(self.upload(&rows_f32(w))?, rows, cols)),
            (DeviceDType::Bf16, WeightView::Bf16 { data, .. }) => data.iter().map(|b| b.to_bits()).collect(),
            (DeviceDType::F16, WeightView::F16 { data, .. }) => data.iter().map(|h| h.to_bits()).collect(),
            (DeviceDType::Bf16, _) => rows_f32(w).iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect(),
            (DeviceDType::F16, _) => {
                rows_f32(w).iter().map(|&v| half::f16::from_f32(v).to_bits()).collect::<Vec<u16>>()
            }
        };
        let buf = self.kernels.upload(&bits).map_err(|e| self.err(e))?;
        Ok(if dtype == DeviceDType::Bf16 {
            CudaWeight::Bf16(buf, rows, cols)
        } else {
            CudaWeight::F16(buf, rows, cols)
        })
    }

    fn linear(&self, x: &CudaSlice<f32>, m: usize, w: &CudaWeight, out: &mut CudaSlice<f32>) -> Result<()> {
        let _enqueue = self.enqueue();
        let (n, k) = match w {
            CudaWeight::F32(_, n, k) | CudaWeight::Bf16(_, n, k) | CudaWeight::F16(_, n, k) => (*n, *k),
        };
        // Longer inputs (the encoder, prompts) with bf16 weights run on tensor cores, their
        // activations rounded to bf16 as the CPU's bf16 matmul rounds them.
        if let CudaWeight::Bf16(wd, ..) = w {
            if m > GEMV_MAX_M && self.kernels.has_bf16_tensor_cores() {
                let xs = view_from("linear x", x, 0)?;
                let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
                if scratch.as_ref().is_none_or(|b| b.len() < m * k) {
                    *scratch = Some(self.kernels.zeros_u16(m * k).map_err(|e| self.err(e))?);
                    self.scratch_epoch.fetch_add(1, Ordering::SeqCst);
                }
                let Some(xb) = scratch.as_mut() else { unreachable!("allocated above") };
                self.kernels.round_bf16(&xs, m * k, &mut xb.as_view_mut()).map_err(|e| self.err(e))?;
                let mut ys = view_mut("linear out", out, 0, m * n)?;
                return self.kernels.gemm_bf16(&xb.as_view(), m, &wd.as_view(), n, k, &mut ys).map_err(|e| self.err(e));
            }
        }
        // The decode GEMV reads each weight once for up to GEMV_MAX_M rows; f32 and f16 weights
        // run it per block of rows for longer inputs too (at 8 rows it does 4 (f32) or 8 (f16)
        // flops per weight byte, what a SIMT GEMM would need 19 or 38 TFLOP/s to beat at HBM3e
        // speed; tensor cores would need the activations in f16, which T5 overflows).
        for r0 in (0..m).step_by(GEMV_MAX_M) {
            let rows = GEMV_MAX_M.min(m - r0);
            let xs = view_from("linear x", x, r0 * k)?;
            let mut ys = view_mut("linear out", out, r0 * n, rows * n)?;
            let done = match w {
                CudaWeight::F32(wd, ..) => self.kernels.gemv_f32(&xs, rows, &wd.as_view(), n, k, &mut ys),
                CudaWeight::Bf16(wd, ..) => self.kernels.gemv_bf16(&xs, rows, &wd.as_view(), n, k, &mut ys),
                CudaWeight::F16(wd, ..) => self.kernels.gemv_f16(&xs, rows, &wd.as_view(), n, k, &mut ys),
            };
            done.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn embedding(&self, table: &CudaSlice<f32>, cols: usize, ids: &[u32], out: &mut CudaSlice<f32>) -> Result<()> {
        let _enqueue = self.enqueue();
        let mut o = view_mut("embedding out", out, 0, ids.len() * cols)?;
        self.kernels.embedding(&table.as_view(), cols, ids, &mut o).map_err(|e| self.err(e))
    }

    fn embedding_coded(
        &self,
        table: &CudaSlice<f32>,
        cols: usize,
        ids: At<'_, CudaSlice<f32>>,
        n: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let _enqueue = self.enqueue();
        let ids = view_from("embedding ids", ids.0, ids.1)?;
        let mut o = view_mut("embedding out", out, 0, n * cols)?;
        self.kernels.embedding_coded(&table.as_view(), cols, &ids, n, &mut o).map_err(|e| self.err(e))
    }

    fn rms_norm(
        &self,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        eps: f32,
        rows: usize,
        cols: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let _enqueue = self.enqueue();
        let mut o = out.as_view_mut();
        self.kernels.rms_norm(&x.as_view(), &w.as_view(), &mut o, rows, cols, eps).map_err(|e| self.err(e))
    }

    fn activation(&self, act: Activation, x: &mut CudaSlice<f32>, len: usize) -> Result<()> {
        let _enqueue = self.enqueue();
        self.kernels.act_inplace(act, &mut x.as_view_mut(), len).map_err(|e| self.err(e))
    }

    fn gated(
        &self,
        act: Activation,
        both: &CudaSlice<f32>,
        rows: usize,
        ff: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let _enqueue = self.enqueue();
        self.kernels.gated_act(act, &both.as_view(), &mut out.as_view_mut(), rows, ff).map_err(|e| self.err(e))
    }

    fn add_rms_norm(
        &self,
        acc: &mut CudaSlice<f32>,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        eps: f32,
        rows: usize,
        cols: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let _enqueue = self.enqueue();
        let (mut a, mut o) = (acc.as_view_mut(), out.as_view_mut());
        self.kernels.add_rms_norm(&mut a, &x.as_view(), &w.as_view(), &mut o, rows, cols, eps).map_err(|e| self.err(e))
    }

    fn add_assign(&self, acc: &mut CudaSlice<f32>, x: &CudaSlice<f32>, len: usize) -> Result<()> {
        let _enqueue = self.enqueue();
        self.kernels.add_inplace(&mut acc.as_view_mut(), &x.as_view(), len).map_err(|e| self.err(e))
    }

    fn scale(&self, x: &mut CudaSlice<f32>, len: usize, s: f32) -> Result<()> {
        let _enqueue = self.enqueue();
        self.kernels.scale_inplace(&mut x.as_view_mut(), len, s).map_err(|e| self.err(e))
    }

    fn kv_append(
        &self,
        qkv: &CudaSlice<f32>,
        rows: usize,
        heads: usize,
        d_kv: usize,
        k: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
        cap: usize,
        pos: At<'_, CudaSlice<f32>>,
    ) -> Result<()> {
        let _enqueue = self.enqueue();
        let (mut kv, mut vv) = (k.as_view_mut(), v.as_view_mut());
        let pos = view_from("kv_append position", pos.0, pos.1)?;
        self.kernels.kv_append(&qkv.as_view(), &mut kv, &mut vv, rows, heads, d_kv, cap, &pos).map_err(|e| self.err(e))
    }

    fn attention(
        &self,
        a: &DeviceAttention<'_, CudaSlice<f32>>,
        out: &mut CudaSlice<f32>,
        out_off: usize,
    ) -> Result<()> {
        let _enqueue = self.enqueue();
        let (q, k, v) = (
            view_from("attention q", a.q.0, a.q.1)?,
            view_from("attention k", a.k.0, a.k.1)?,
            view_from("attention v", a.v.0, a.v.1)?,
        );
        let bias = a.bias.map(|(b, s, o)| (b.as_view(), s, o));
        let mask = a.mask.map(|(m, off)| view_from("attention mask", m, off)).transpose()?;
        let q_pos_at = a.q_pos_at.map(|(p, off)| view_from("attention position", p, off)).transpose()?;
        let args = CudaAttention {
            q: &q,
            k: &k,
            v: &v,
            heads: a.heads,
            d: a.d_kv,
            q_len: a.q_len,
            kv_len: a.kv_len,
            q_pos0: a.q_pos0,
            causal: a.causal,
            q_row_stride: a.q_row_stride,
            kv_head_stride: a.kv_head_stride,
            kv_row_stride: a.kv_row_stride,
            bias: bias.as_ref().map(|(b, s, o)| (b, *s, *o)),
            mask: mask.as_ref(),
            q_pos_at: q_pos_at.as_ref(),
            batch: a.batch,
            q_batch_stride: a.q_batch_stride,
            kv_batch_stride: a.kv_batch_stride,
        };
        let mut o = view_mut("attention out", out, out_off, a.batch * a.q_len * a.heads * a.d_kv)?;
        self.kernels.attention(&args, &mut o).map_err(|e| self.err(e))
    }

    fn argmax(&self, x: &CudaSlice<f32>, rows: usize, cols: usize) -> Result<Vec<u32>> {
        let _enqueue = self.enqueue();
        self.kernels.argmax(&x.as_view(), rows, cols).map_err(|e| self.err(e))
    }

    fn row_summaries(
        &self,
        x: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        k: usize,
        targets: &[u32],
    ) -> Result<Vec<t0_kernels::row_summary::RowSummary>> {
        let _enqueue = self.enqueue();
        if k > t0_kernels::cuda::ROW_SUMMARY_MAX_K {
            // The kernel makes k passes over a row: past that, bring the rows back.
            return super::summarise(&self.download(x, rows * cols)?, rows, cols, k, targets);
        }
        self.kernels.row_summaries(&x.as_view(), rows, cols, k, targets).map_err(|e| self.err(e))
    }

    fn edit_logits(&self, x: &mut CudaSlice<f32>, len: usize, edits: &[(u32, Edit)]) -> Result<()> {
        let _enqueue = self.enqueue();
        let mut x = view_mut("edit_logits x", x, 0, len)?;
        self.kernels.edit_logits(&mut x, edits).map_err(|e| self.err(e))
    }

    fn record(&self, launches: &mut dyn FnMut() -> Result<()>) -> Result<Option<CudaStep>> {
        // No other thread enqueues while this one records: its work would be captured.
        let _enqueue = self.enqueue();
        if !self.graphs.load(Ordering::Relaxed) {
            return launches().map(|()| None);
        }
        let scratch_epoch = self.scratch_epoch.load(Ordering::SeqCst);
        self.kernels.begin_recording().map_err(|e| self.err(e))?;
        let ran = launches();
        let graph = self.kernels.end_recording();
        match (ran, graph) {
            (Ok(()), Ok(graph)) if self.scratch_epoch.load(Ordering::SeqCst) == scratch_epoch => {
                graph.launch().map_err(|e| self.err(e))?;
                Ok(Some(CudaStep { graph, scratch_epoch }))
            }
            // The recording failed (or reallocated the GEMM's scratch, which it must not):
            // nothing ran. Run the launches as they are, and record no more.
            (ran, _) => {
                self.graphs.store(false, Ordering::Relaxed);
                tracing::warn!(
                    device = %self.name(),
                    error = ?ran.err(),
                    "recording a decode step as a CUDA graph failed; steps run launch by launch"
                );
                launches().map(|()| None)
            }
        }
    }

    fn replay(&self, step: &CudaStep) -> Result<bool> {
        let _enqueue = self.enqueue();
        if step.scratch_epoch != self.scratch_epoch.load(Ordering::SeqCst) {
            return Ok(false);
        }
        step.graph.launch().map_err(|e| self.err(e))?;
        Ok(true)
    }

    fn synchronize(&self) -> Result<()> {
        let _enqueue = self.enqueue();
        self.kernels.synchronize().map_err(|e| self.err(e))
    }

    fn peak_bandwidth_gbs(&self) -> Option<f64> {
        self.kernels.peak_bandwidth_gbs().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// Nested calls on the thread that holds the lock pass through; another thread waits
    /// until the outermost guard drops.
    #[test]
    fn enqueue_excludes_other_threads_and_nests() {
        let lock = Arc::new(Mutex::new(()));
        let entered = Arc::new(AtomicUsize::new(0));
        let outer = enqueue_on(&lock);
        let inner = enqueue_on(&lock);
        assert!(inner._lock.is_none() && outer._lock.is_some());
        let other = {
            let (lock, entered) = (lock.clone(), entered.clone());
            std::thread::spawn(move || {
                let _g = enqueue_on(&lock);
                entered.fetch_add(1, Ordering::SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(inner);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(entered.load(Ordering::SeqCst), 0, "the other thread waits for the outer guard");
        drop(outer);
        other.join().unwrap();
        assert_eq!(entered.load(Ordering::SeqCst), 1);
        assert!(enqueue_on(&lock)._lock.is_some(), "free again on this thread");
    }
}
