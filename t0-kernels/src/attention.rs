//! Scaled-dot-product attention as T5 does it: **no** `1/√d_kv` scaling, an additive
//! relative-position bias read straight from a per-head vector indexed by distance (no
//! `[heads, q, k]` bias tensor is ever materialised), an additive key mask, optional causality.

use rayon::prelude::*;

use crate::softmax::softmax_reference;

/// Relative-position bias for every head, indexed by `key_pos − query_pos`.
///
/// `bias(h, q, k) = values[h * head_stride + (k − q + offset)]`, for every `(q, k)` the
/// attention visits (the caller sizes the vector to cover them).
#[derive(Clone, Copy, Debug)]
pub struct BiasView<'a> {
    /// Per-head bias by relative distance.
    pub values: &'a [f32],
    /// Distance between two heads' vectors.
    pub head_stride: usize,
    /// Index of relative distance 0 inside a head's vector.
    pub offset: usize,
}

impl BiasView<'_> {
    /// Bias of head `h` for a query at `q_pos` and a key at `k_pos`.
    #[inline]
    pub fn get(&self, h: usize, q_pos: usize, k_pos: usize) -> f32 {
        self.values[h * self.head_stride + (k_pos + self.offset - q_pos)]
    }
}

/// The operands of one attention call over one sequence.
///
/// Element `(h, i, d)` of `q` is at `q[i * q_row_stride + h * d_kv + d]` (the natural output of
/// the q projection); element `(h, j, d)` of `k` (and `v`) is at
/// `k[h * kv_head_stride + j * kv_row_stride + d]`, which covers both a projection's output
/// (`kv_head_stride = d_kv`, `kv_row_stride = heads·d_kv`) and a per-head cache
/// (`kv_head_stride = capacity·d_kv`, `kv_row_stride = d_kv`). The output is written densely
/// as `[q_len, heads · d_kv]`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionArgs<'a> {
    /// Queries.
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
    /// Number of heads.
    pub heads: usize,
    /// Width of one head.
    pub d_kv: usize,
    /// Number of query rows.
    pub q_len: usize,
    /// Number of keys to attend over (`0..kv_len`).
    pub kv_len: usize,
    /// Stride between query rows.
    pub q_row_stride: usize,
    /// Stride between heads in `k` and `v`.
    pub kv_head_stride: usize,
    /// Stride between key rows in `k` and `v`.
    pub kv_row_stride: usize,
    /// Absolute position of query row 0 (for the bias and for causality).
    pub q_pos0: usize,
    /// Keys after the query's position are skipped.
    pub causal: bool,
    /// Relative-position bias, if any.
    pub bias: Option<BiasView<'a>>,
    /// Additive mask per key (`0` or a large negative value), length `kv_len`.
    pub mask: Option<&'a [f32]>,
}

impl AttentionArgs<'_> {
    /// Panics unless every index the attention will touch is in bounds (programming errors).
    pub fn check(&self, out: &[f32]) {
        let inner = self.heads * self.d_kv;
        assert_eq!(out.len(), self.q_len * inner, "attention: out is not [q_len, heads*d_kv]");
        if self.q_len > 0 {
            assert!(self.q.len() >= (self.q_len - 1) * self.q_row_stride + inner, "attention: q too short");
        }
        if self.kv_len > 0 && self.heads > 0 {
            let last = (self.heads - 1) * self.kv_head_stride + (self.kv_len - 1) * self.kv_row_stride + self.d_kv;
            assert!(self.k.len() >= last && self.v.len() >= last, "attention: k/v too short");
        }
        if let Some(m) = self.mask {
            assert!(m.len() >= self.kv_len, "attention: mask too short");
        }
    }

    /// Number of keys query row `i` may see.
    #[inline]
    pub fn visible_keys(&self, i: usize) -> usize {
        if self.causal {
            (self.q_pos0 + i + 1).min(self.kv_len)
        } else {
            self.kv_len
        }
    }
}

/// Reference attention: for each (query, head) scores `q·k + bias + mask`, softmax in f32,
/// weighted sum of `v`. Threads over (query, head) pairs.
pub fn attention_reference(a: &AttentionArgs<'_>, out: &mut [f32]) {
    a.check(out);
    let d = a.d_kv;
    if d == 0 {
        return;
    }
    out.par_chunks_mut(d).enumerate().for_each(|(idx, o)| {
        let (i, h) = (idx / a.heads, idx % a.heads);
        let q = &a.q[i * a.q_row_stride + h * d..][..d];
        let n = a.visible_keys(i);
        let mut scores = vec![0.0f32; n];
        for (j, s) in scores.iter_mut().enumerate() {
            let k = &a.k[h * a.kv_head_stride + j * a.kv_row_stride..][..d];
            let mut acc: f32 = q.iter().zip(k).map(|(x, y)| x * y).sum();
            if let Some(b) = &a.bias {
                acc += b.get(h, a.q_pos0 + i, j);
            }
            if let Some(m) = a.mask {
                acc += m[j];
            }
            *s = acc;
        }
        softmax_reference(&mut scores);
        o.fill(0.0);
        for (j, &p) in scores.iter().enumerate() {
            let v = &a.v[h * a.kv_head_stride + j * a.kv_row_stride..][..d];
            for (x, &y) in o.iter_mut().zip(v) {
                *x += p * y;
            }
        }
    });
}
