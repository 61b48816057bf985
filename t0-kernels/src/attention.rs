//! Scaled-dot-product attention as T5 does it: **no** `1/√d_kv` scaling, an additive
//! relative-position bias read straight from a per-head vector indexed by distance (no
//! `[heads, q, k]` bias tensor is ever materialised), an additive key mask, optional causality.

use rayon::prelude::*;

use crate::simd::F32Vec;
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

/// A raw pointer that may cross threads; used where tasks write provably disjoint parts of one
/// output buffer.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used for disjoint writes, see the call sites.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// Queries per head from which a head runs the many-query path ([`attention_head_blocked`]):
/// its keys transposed and values packed first, so that scores are computed a vector of keys
/// per instruction instead of one horizontal sum per key.
const BLOCK_MIN_QUERIES: usize = 8;

/// `Σ a·b`, vectorised.
///
/// # Safety
/// `V`'s instruction set must be available; `a` and `b` have the same length.
#[inline(always)]
unsafe fn dot<V: F32Vec>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    debug_assert!(b.len() >= n);
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1) = (V::splat(0.0), V::splat(0.0));
    let mut i = 0;
    while i + 2 * V::LANES <= n {
        // SAFETY: both vectors lie inside both slices.
        s0 = V::load(pa.add(i)).mul_add(V::load(pb.add(i)), s0);
        s1 = V::load(pa.add(i + V::LANES)).mul_add(V::load(pb.add(i + V::LANES)), s1);
        i += 2 * V::LANES;
    }
    while i < n {
        let r = (n - i).min(V::LANES);
        // SAFETY: `r` values remain inside both slices.
        s0 = V::load_tail(pa.add(i), r, 0.0).mul_add(V::load_tail(pb.add(i), r, 0.0), s0);
        i += r;
    }
    s0.add(s1).reduce_add()
}

/// `out = Σ_j p[j] · v_j` with `v_j = v[j * row_stride..][..out.len()]`, accumulated in
/// registers four vectors of `out` at a time.
///
/// # Safety
/// `V`'s instruction set must be available; every `v_j` lies inside `v`.
#[inline(always)]
unsafe fn weighted_sum<V: F32Vec>(p: &[f32], v: &[f32], row_stride: usize, out: &mut [f32]) {
    let d = out.len();
    if !p.is_empty() {
        assert!(v.len() >= (p.len() - 1) * row_stride + d, "attention: v too short");
    }
    let pv = v.as_ptr();
    let po = out.as_mut_ptr();
    let mut c = 0;
    while c < d {
        let width = (d - c).min(4 * V::LANES);
        let mut acc = [V::splat(0.0); 4];
        let full = width / V::LANES;
        let rem = width % V::LANES;
        for (j, &pj) in p.iter().enumerate() {
            let pj = V::splat(pj);
            let row = pv.add(j * row_stride + c);
            for (t, a) in acc.iter_mut().enumerate().take(full) {
                // SAFETY: `c + (t+1)·LANES <= d`, inside row `j` (checked above).
                *a = pj.mul_add(V::load(row.add(t * V::LANES)), *a);
            }
            if rem > 0 {
                // SAFETY: `rem` values remain inside row `j`.
                acc[full] = pj.mul_add(V::load_tail(row.add(full * V::LANES), rem, 0.0), acc[full]);
            }
        }
        for (t, a) in acc.iter().enumerate().take(full) {
            // SAFETY: inside `out`.
            a.store(po.add(c + t * V::LANES));
        }
        if rem > 0 {
            // SAFETY: `rem` values remain inside `out`.
            acc[full].store_tail(po.add(c + full * V::LANES), rem);
        }
        c += width;
    }
}

/// Vectorised attention for one head `h`, every query row; same contract as
/// [`attention_reference`] (tests: 1e-5 relative + 1e-6 absolute). The head's scores (and,
/// for eight or more queries, its transposed keys and packed values) live in per-thread
/// scratch, so a warm decode step allocates nothing.
///
/// # Safety
/// `V`'s instruction set must be available; `a.check(out)` passed for the `out` that `optr`
/// points into, and no other thread writes head `h` of `out` meanwhile.
#[inline(always)]
pub(crate) unsafe fn attention_head_simd<V: F32Vec>(a: &AttentionArgs<'_>, h: usize, optr: *mut f32, buf: &mut [f32]) {
    if blocks_queries(a) {
        return attention_head_blocked::<V>(a, h, optr, buf);
    }
    let d = a.d_kv;
    let inner = a.heads * d;
    let scores = &mut buf[..a.kv_len];
    for i in 0..a.q_len {
        let n = a.visible_keys(i);
        let q = &a.q[i * a.q_row_stride + h * d..][..d];
        let s = &mut scores[..n];
        for (j, sj) in s.iter_mut().enumerate() {
            *sj = dot::<V>(q, &a.k[h * a.kv_head_stride + j * a.kv_row_stride..][..d]);
        }
        bias_mask_softmax::<V>(a, h, i, s);
        // SAFETY: row `i`, head `h` of `out` is `[i*inner + h*d, +d)`, inside `out` (checked
        // by the caller), and only this head's task writes it.
        let o = std::slice::from_raw_parts_mut(optr.add(i * inner + h * d), d);
        if n == 0 {
            o.fill(0.0);
        } else {
            weighted_sum::<V>(s, &a.v[h * a.kv_head_stride..], a.kv_row_stride, o);
        }
    }
}

/// Adds the bias and the mask to query row `i`'s scores `s` (its visible keys), then turns
/// them into probabilities.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
unsafe fn bias_mask_softmax<V: F32Vec>(a: &AttentionArgs<'_>, h: usize, i: usize, s: &mut [f32]) {
    let n = s.len();
    if let Some(b) = &a.bias {
        // An invariant of the bias layout the model builds (like the shape asserts of
        // `AttentionArgs::check`): a panic here is a bug in the caller, not bad input.
        #[allow(clippy::expect_used)]
        let start = (h * b.head_stride + b.offset)
            .checked_sub(a.q_pos0 + i)
            .expect("attention: bias offset smaller than the query position");
        crate::simd::simd_zip!(V, s, &b.values[start..start + n], |x, y| x.add(y));
    }
    if let Some(m) = a.mask {
        crate::simd::simd_zip!(V, s, &m[..n], |x, y| x.add(y));
    }
    crate::softmax::softmax_simd::<V>(s);
}

/// Query rows per block of the many-query path: each key or value vector loaded feeds this
/// many rows' multiply-adds.
const QB: usize = 4;

/// The widest chunk of keys (or values) the many-query path computes at once: four vectors of
/// the widest instruction set (AVX-512). Scratch is sized with it, whatever the set.
const MAX_CHUNK: usize = 64;

/// `(keys per transposed row, values per packed row)` of the many-query path: `kv_len` and
/// `d_kv` rounded up to whole chunks of four vectors.
fn blocked_dims(a: &AttentionArgs<'_>, chunk: usize) -> (usize, usize) {
    (a.kv_len.div_ceil(chunk) * chunk, a.d_kv.div_ceil(chunk) * chunk)
}

/// The many-query path of [`attention_head_simd`]: the head's keys are transposed into
/// `kt[d_kv][kv_pad]` and its values packed into `vh[kv_len][d_pad]` (both zero-padded; read
/// in place, a projection's rows are `3·inner` floats apart, a multiple of 4 KiB for T5's
/// shapes, so every row of a head would map to the same L1 set), then queries run [`QB`] at a
/// time: each key or value vector loaded serves every row of the block, in sixteen
/// independent sums.
///
/// # Safety
/// As [`attention_head_simd`]; `buf` holds [`head_scratch_len`] values.
#[inline(always)]
unsafe fn attention_head_blocked<V: F32Vec>(a: &AttentionArgs<'_>, h: usize, optr: *mut f32, buf: &mut [f32]) {
    let d = a.d_kv;
    let kv = a.kv_len;
    let (kv_pad, d_pad) = blocked_dims(a, 4 * V::LANES);
    let (scores, rest) = buf.split_at_mut(QB * kv_pad);
    let (kt, rest) = rest.split_at_mut(d * kv_pad);
    let vh = &mut rest[..kv * d_pad];
    for j in 0..kv {
        let row = h * a.kv_head_stride + j * a.kv_row_stride;
        for (dd, &x) in a.k[row..][..d].iter().enumerate() {
            kt[dd * kv_pad + j] = x;
        }
        vh[j * d_pad..][..d].copy_from_slice(&a.v[row..][..d]);
        vh[j * d_pad + d..(j + 1) * d_pad].fill(0.0);
    }
    for row in kt.chunks_exact_mut(kv_pad) {
        row[kv..].fill(0.0);
    }
    let mut i0 = 0;
    while i0 < a.q_len {
        let rows = QB.min(a.q_len - i0);
        let blk = Block { i0, kt, vh, kv_pad, d_pad };
        match rows {
            4 => query_block::<V, 4>(a, h, &blk, scores, optr),
            3 => query_block::<V, 3>(a, h, &blk, scores, optr),
            2 => query_block::<V, 2>(a, h, &blk, scores, optr),
            _ => query_block::<V, 1>(a, h, &blk, scores, optr),
        }
        i0 += rows;
    }
}

/// One block of the many-query path: its first query row and the head's packed keys and values.
struct Block<'b> {
    i0: usize,
    kt: &'b [f32],
    vh: &'b [f32],
    kv_pad: usize,
    d_pad: usize,
}

/// Query rows `b.i0..b.i0 + R` of head `h`: their scores, probabilities and outputs.
///
/// # Safety
/// As [`attention_head_blocked`]; `scores` holds `R · kv_pad` values.
#[inline(always)]
unsafe fn query_block<V: F32Vec, const R: usize>(
    a: &AttentionArgs<'_>,
    h: usize,
    b: &Block<'_>,
    scores: &mut [f32],
    optr: *mut f32,
) {
    let (d, i0, inner) = (a.d_kv, b.i0, a.heads * a.d_kv);
    // Keys the block's furthest-seeing row may see.
    let n_max = (0..R).map(|r| a.visible_keys(i0 + r)).max().unwrap_or(0);
    let q = a.q.as_ptr().add(i0 * a.q_row_stride + h * d);
    scores_block::<V, R>(q, a.q_row_stride, d, b.kt, b.kv_pad, n_max, scores);
    for (r, s) in scores.chunks_exact_mut(b.kv_pad).take(R).enumerate() {
        let n = a.visible_keys(i0 + r);
        bias_mask_softmax::<V>(a, h, i0 + r, &mut s[..n]);
        // Keys this row may not see weigh nothing in the block's shared value sums.
        s[n..n_max].fill(0.0);
    }
    // SAFETY: rows `i0..i0+R`, head `h` of `out` lie inside `out` (checked by the caller), and
    // only this head's task writes them.
    let o = optr.add(i0 * inner + h * d);
    values_block::<V, R>(scores, b.kv_pad, n_max, b.vh, b.d_pad, d, o, inner);
}

/// `s[r][j] = Σ_dd q_r[dd] · kt[dd][j]` for `R` query rows (`q_r` at `q + r·q_stride`) and
/// `j < n` rounded up to whole chunks of four vectors (`s` rows are `ld` apart).
///
/// # Safety
/// `V`'s instruction set must be available; `q` holds `R` rows of `d` values.
#[inline(always)]
unsafe fn scores_block<V: F32Vec, const R: usize>(
    q: *const f32,
    q_stride: usize,
    d: usize,
    kt: &[f32],
    ld: usize,
    n: usize,
    s: &mut [f32],
) {
    let chunk = 4 * V::LANES;
    assert!(n.div_ceil(chunk) * chunk <= ld && kt.len() >= d * ld && s.len() >= R * ld, "attention: scores block");
    let (pk, ps) = (kt.as_ptr(), s.as_mut_ptr());
    for j in (0..n).step_by(chunk) {
        let mut acc = [[V::splat(0.0); 4]; R];
        for dd in 0..d {
            // SAFETY: `j + chunk ≤ ld` (asserted), inside row `dd` of `kt`.
            let b = [0, 1, 2, 3].map(|t| V::load(pk.add(dd * ld + j + t * V::LANES)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = V::splat(*q.add(r * q_stride + dd));
                for (a, &b) in acc.iter_mut().zip(&b) {
                    *a = qv.mul_add(b, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (t, a) in acc.iter().enumerate() {
                // SAFETY: inside row `r` of `s` (asserted).
                a.store(ps.add(r * ld + j + t * V::LANES));
            }
        }
    }
}

/// `out_r[c] = Σ_{j<n} p[r][j] · vh[j][c]` for `R` rows (`p` rows `ld` apart, `out_r` at
/// `o + r·o_stride`, `d` values each), four vectors of `vh`'s padded rows (`d_pad`) at a time.
///
/// # Safety
/// `V`'s instruction set must be available; the `R` output rows of `d` values are writable.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn values_block<V: F32Vec, const R: usize>(
    p: &[f32],
    ld: usize,
    n: usize,
    vh: &[f32],
    d_pad: usize,
    d: usize,
    o: *mut f32,
    o_stride: usize,
) {
    let chunk = 4 * V::LANES;
    assert!(
        n <= ld && p.len() >= R * ld && vh.len() >= n * d_pad && d.div_ceil(chunk) * chunk <= d_pad,
        "attention: values block"
    );
    let (pp, pv) = (p.as_ptr(), vh.as_ptr());
    for c in (0..d).step_by(chunk) {
        let mut acc = [[V::splat(0.0); 4]; R];
        for j in 0..n {
            // SAFETY: `c + chunk ≤ d_pad` (asserted), inside row `j` of `vh`.
            let b = [0, 1, 2, 3].map(|t| V::load(pv.add(j * d_pad + c + t * V::LANES)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let pj = V::splat(*pp.add(r * ld + j));
                for (a, &b) in acc.iter_mut().zip(&b) {
                    *a = pj.mul_add(b, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (t, a) in acc.iter().enumerate() {
                let at = c + t * V::LANES;
                if at < d {
                    // SAFETY: values `at..min(at + LANES, d)` of output row `r`.
                    a.store_tail(o.add(r * o_stride + at), (d - at).min(V::LANES));
                }
            }
        }
    }
}

/// Whether a head runs the many-query path ([`attention_head_blocked`]).
fn blocks_queries(a: &AttentionArgs<'_>) -> bool {
    a.q_len >= BLOCK_MIN_QUERIES && a.kv_len > 0
}

/// One head of attention, compiled for one instruction set (see [`attention_head_simd`]).
/// Arguments: the operands, the head, the output's base pointer, scratch of
/// [`head_scratch_len`] f32s.
pub(crate) type AttentionHeadFn = unsafe fn(&AttentionArgs<'_>, usize, *mut f32, &mut [f32]);

/// Scratch one head needs: its scores, or on the many-query path a block of scores, the
/// transposed keys and the packed values (sized for the widest chunk).
fn head_scratch_len(a: &AttentionArgs<'_>) -> usize {
    if blocks_queries(a) {
        let (kv_pad, d_pad) = blocked_dims(a, MAX_CHUNK);
        (QB + a.d_kv) * kv_pad + a.kv_len * d_pad
    } else {
        a.kv_len
    }
}

/// Multiply-adds (`heads · q_len · kv_len · d_kv`) below which the heads run on the calling
/// thread: a decode step's attention (one query over a few dozen keys) takes microseconds, less
/// than handing heads to the pool costs.
const PAR_MIN_MACS: usize = 1 << 14;

/// Runs `head` for every head of `a`, in parallel over heads when the work is large enough.
///
/// # Safety
/// `head` must be callable on this CPU (its instruction set is available).
pub(crate) unsafe fn attention_by_heads(a: &AttentionArgs<'_>, out: &mut [f32], head: AttentionHeadFn) {
    a.check(out);
    if a.d_kv == 0 || a.q_len == 0 || a.heads == 0 {
        return;
    }
    let optr = SendPtr(out.as_mut_ptr());
    let run = move |h: usize| {
        let p = optr;
        // SAFETY: `a.check(out)` passed; each head index is visited by exactly one task, and
        // heads write disjoint parts of `out`; `head` is callable per this function's contract.
        crate::scratch::with_f32_scratch(head_scratch_len(a), |buf| unsafe { head(a, h, p.0, buf) })
    };
    if a.heads == 1 || a.heads * a.q_len * a.kv_len * a.d_kv < PAR_MIN_MACS {
        (0..a.heads).for_each(run);
    } else {
        (0..a.heads).into_par_iter().for_each(run);
    }
}
