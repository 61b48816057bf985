//! [`Backend`] on host memory with this crate's CPU kernels: the reference the device backends
//! are held to, and what keeps [`super::DeviceModel`]'s orchestration tested on every machine.

use t0_kernels::logit_edit::{apply_edits, check_edits, Edit};
use t0_kernels::{Activation, AttentionArgs, BiasView, Kernels, PackDType, PackedWeight, WeightView};

use super::{decode_index, At, Backend, DeviceAttention, DeviceDType, NoRecording};
use crate::{ModelError, Result};

/// Host memory and the CPU kernels [`t0_kernels::select`] picks.
#[derive(Clone, Copy, Debug)]
pub struct HostBackend {
    kernels: &'static dyn Kernels,
}

impl HostBackend {
    /// The backend with the best kernels for this CPU.
    pub fn new() -> Self {
        Self { kernels: t0_kernels::select() }
    }
}

impl Default for HostBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// A weight in host memory: packed for the CPU matmul (f32, bf16), or f16 rows as they are.
#[derive(Debug)]
pub enum HostWeight {
    /// Panels of the CPU kernels ([`PackDType::F32`] or [`PackDType::Bf16`]).
    Packed(PackedWeight),
    /// Row-major IEEE half values `[rows, cols]` (the CPU matmul widens them; f32 activations).
    F16(Vec<half::f16>, usize, usize),
}

impl HostWeight {
    fn view(&self) -> WeightView<'_> {
        match self {
            HostWeight::Packed(p) => p.view(),
            HostWeight::F16(data, rows, cols) => WeightView::f16(data, *rows, *cols),
        }
    }
}

/// `&x[..len]`, or an error naming the operand.
fn prefix<'a>(what: &str, x: &'a [f32], len: usize) -> Result<&'a [f32]> {
    x.get(..len).ok_or_else(|| ModelError::InvalidArgument(format!("{what}: {} values, {len} needed", x.len())))
}

/// `&buf[off..]`, or an error naming the operand.
fn tail<'a>(what: &str, (buf, off): (&'a Vec<f32>, usize)) -> Result<&'a [f32]> {
    buf.get(off..).ok_or_else(|| ModelError::InvalidArgument(format!("attention {what}: offset {off} is past the end")))
}

/// The index element `at.1` of `at.0` holds (an f32-coded integer), or an error naming it.
fn read_index(what: &str, (buf, off): At<'_, Vec<f32>>) -> Result<usize> {
    let f =
        *buf.get(off).ok_or_else(|| ModelError::InvalidArgument(format!("{what}: offset {off} is past the end")))?;
    decode_index(what, f).map(|i| i as usize)
}

/// `&mut x[..len]`, or an error naming the operand.
fn prefix_mut<'a>(what: &str, x: &'a mut [f32], len: usize) -> Result<&'a mut [f32]> {
    let n = x.len();
    x.get_mut(..len).ok_or_else(|| ModelError::InvalidArgument(format!("{what}: {n} values, {len} needed")))
}

impl Backend for HostBackend {
    type Buf = Vec<f32>;
    type Weight = HostWeight;
    type Recording = NoRecording;

    fn name(&self) -> String {
        format!("cpu ({})", self.kernels.name())
    }

    fn upload(&self, x: &[f32]) -> Result<Vec<f32>> {
        Ok(x.to_vec())
    }

    fn zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn write(&self, dst: &mut Vec<f32>, values: &[f32]) -> Result<()> {
        prefix_mut("write", dst, values.len())?.copy_from_slice(values);
        Ok(())
    }

    fn download(&self, x: &Vec<f32>, len: usize) -> Result<Vec<f32>> {
        Ok(prefix("download", x, len)?.to_vec())
    }

    fn upload_weight(&self, w: &WeightView<'_>, dtype: DeviceDType) -> Result<HostWeight> {
        Ok(match (dtype, w) {
            (DeviceDType::F32, _) => HostWeight::Packed(PackedWeight::from_view(w, PackDType::F32)),
            (DeviceDType::Bf16, _) => HostWeight::Packed(PackedWeight::from_view(w, PackDType::Bf16)),
            (DeviceDType::F16, WeightView::F16 { data, rows, cols }) => HostWeight::F16(data.to_vec(), *rows, *cols),
            (DeviceDType::F16, _) => {
                let data = super::rows_f32(w).into_iter().map(half::f16::from_f32).collect();
                HostWeight::F16(data, w.rows(), w.cols())
            }
        })
    }

    fn linear(&self, x: &Vec<f32>, m: usize, w: &HostWeight, out: &mut Vec<f32>) -> Result<()> {
        let view = w.view();
        let (n, k) = (view.rows(), view.cols());
        let x = prefix("linear x", x, m * k)?;
        let out = prefix_mut("linear out", out, m * n)?;
        self.kernels.matmul(x, m, &view, out);
        Ok(())
    }

    fn embedding(&self, table: &Vec<f32>, cols: usize, ids: &[u32], out: &mut Vec<f32>) -> Result<()> {
        let rows = table.len().checked_div(cols).unwrap_or(0);
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= rows) {
            return Err(ModelError::TokenOutOfRange { id: bad, vocab_size: rows });
        }
        let out = prefix_mut("embedding out", out, ids.len() * cols)?;
        self.kernels.embedding(&WeightView::f32(&table[..rows * cols], rows, cols), ids, out);
        Ok(())
    }

    fn rms_norm(
        &self,
        x: &Vec<f32>,
        w: &Vec<f32>,
        eps: f32,
        rows: usize,
        cols: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let x = prefix("rms_norm x", x, rows * cols)?;
        let w = prefix("rms_norm weight", w, cols)?;
        self.kernels.rms_norm(x, w, eps, prefix_mut("rms_norm out", out, rows * cols)?);
        Ok(())
    }

    fn activation(&self, act: Activation, x: &mut Vec<f32>, len: usize) -> Result<()> {
        self.kernels.activation(act, prefix_mut("activation x", x, len)?);
        Ok(())
    }

    fn gated(&self, act: Activation, both: &Vec<f32>, rows: usize, ff: usize, out: &mut Vec<f32>) -> Result<()> {
        let both = prefix("gated input", both, rows * 2 * ff)?;
        let gate = prefix_mut("gated out", out, rows * ff)?;
        let mut up = vec![0.0f32; rows * ff];
        if ff > 0 {
            for ((row, g), u) in both.chunks_exact(2 * ff).zip(gate.chunks_exact_mut(ff)).zip(up.chunks_exact_mut(ff)) {
                g.copy_from_slice(&row[..ff]);
                u.copy_from_slice(&row[ff..]);
            }
        }
        self.kernels.gated_activation(act, gate, &up);
        Ok(())
    }

    fn add_assign(&self, acc: &mut Vec<f32>, x: &Vec<f32>, len: usize) -> Result<()> {
        self.kernels.add_assign(prefix_mut("add acc", acc, len)?, prefix("add x", x, len)?);
        Ok(())
    }

    fn scale(&self, x: &mut Vec<f32>, len: usize, s: f32) -> Result<()> {
        self.kernels.scale(prefix_mut("scale x", x, len)?, s);
        Ok(())
    }

    fn kv_append(
        &self,
        qkv: &Vec<f32>,
        rows: usize,
        heads: usize,
        d_kv: usize,
        k: &mut Vec<f32>,
        v: &mut Vec<f32>,
        cap: usize,
        pos: At<'_, Vec<f32>>,
    ) -> Result<()> {
        let inner = heads * d_kv;
        let qkv = prefix("kv_append qkv", qkv, rows * 3 * inner)?;
        let pos = read_index("kv_append position", pos)?;
        if pos >= cap {
            return Err(ModelError::InvalidArgument(format!("kv_append: position {pos} is past the cache ({cap})")));
        }
        let k = prefix_mut("kv_append k", k, rows * heads * cap * d_kv)?;
        let v = prefix_mut("kv_append v", v, rows * heads * cap * d_kv)?;
        for r in 0..rows {
            for h in 0..heads {
                let dst = ((r * heads + h) * cap + pos) * d_kv;
                let src = r * 3 * inner + h * d_kv;
                k[dst..dst + d_kv].copy_from_slice(&qkv[src + inner..src + inner + d_kv]);
                v[dst..dst + d_kv].copy_from_slice(&qkv[src + 2 * inner..src + 2 * inner + d_kv]);
            }
        }
        Ok(())
    }

    fn attention(&self, a: &DeviceAttention<'_, Vec<f32>>, out: &mut Vec<f32>, out_off: usize) -> Result<()> {
        let size = a.q_len * a.heads * a.d_kv;
        let out = out
            .get_mut(out_off..out_off + a.batch * size)
            .ok_or_else(|| ModelError::InvalidArgument("attention out: too short".into()))?;
        let mask = a.mask.map(|m| tail("mask", m)).transpose()?;
        let q_pos0 = match a.q_pos_at {
            None => a.q_pos0,
            Some(_) if !a.causal => {
                return Err(ModelError::InvalidArgument("attention: a position on the device needs causality".into()))
            }
            Some(p) => match read_index("attention position", p)? {
                pos if pos + a.q_len > a.kv_len => {
                    return Err(ModelError::InvalidArgument(format!("attention: position {pos} is past the cache")))
                }
                pos => pos,
            },
        };
        for (t, out) in out.chunks_exact_mut(size.max(1)).take(a.batch).enumerate() {
            let (qo, kvo) = (t * a.q_batch_stride, t * a.kv_batch_stride);
            let (q, k, v) =
                (tail("q", (a.q.0, a.q.1 + qo))?, tail("k", (a.k.0, a.k.1 + kvo))?, tail("v", (a.v.0, a.v.1 + kvo))?);
            let args = AttentionArgs {
                q,
                k,
                v,
                heads: a.heads,
                d_kv: a.d_kv,
                q_len: a.q_len,
                kv_len: a.kv_len,
                q_row_stride: a.q_row_stride,
                kv_head_stride: a.kv_head_stride,
                kv_row_stride: a.kv_row_stride,
                q_pos0,
                causal: a.causal,
                bias: a.bias.map(|(values, head_stride, offset)| BiasView { values, head_stride, offset }),
                mask,
            };
            self.kernels.attention(&args, out);
        }
        Ok(())
    }

    fn row_summaries(
        &self,
        x: &Vec<f32>,
        rows: usize,
        cols: usize,
        k: usize,
        targets: &[u32],
    ) -> Result<Vec<t0_kernels::row_summary::RowSummary>> {
        super::summarise(x, rows, cols, k, targets)
    }

    fn edit_logits(&self, x: &mut Vec<f32>, len: usize, edits: &[(u32, Edit)]) -> Result<()> {
        let n = x.len();
        let x = x
            .get_mut(..len)
            .ok_or_else(|| ModelError::InvalidArgument(format!("edit_logits x: {n} values, {len} needed")))?;
        check_edits(len, edits).map_err(ModelError::InvalidArgument)?;
        apply_edits(x, edits);
        Ok(())
    }

    fn argmax(&self, x: &Vec<f32>, rows: usize, cols: usize) -> Result<Vec<u32>> {
        let x = prefix("argmax x", x, rows * cols)?;
        if cols == 0 {
            return Ok(vec![0; rows]);
        }
        Ok(x.chunks_exact(cols).map(|r| crate::generate::argmax(r) as u32).collect())
    }
}
