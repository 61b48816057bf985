//! Decoder caches: the cross-attention K/V of the encoder output (computed once per input and
//! shared by every decoder row that reads it) and the self-attention K/V that grows by one
//! position per generated token.

use std::sync::Arc;

/// Cross-attention keys and values of every decoder layer for a set of encoded inputs.
///
/// Layer `l`'s keys are `k(l)`, `[sources, heads, seq, d_kv]` row-major (each head's run
/// contiguous, the order a decode step reads them in); `mask` is the additive
/// padding mask `[sources, seq]`. Several decoder rows may read one source (answer choices
/// of one prompt, beams): they index it, nothing is copied. All layers' keys and values live in
/// one buffer offered 2 MiB pages (`[layer][k, v][sources · seq · inner]`): it is written once
/// per input, and 4 KiB first-touch faults on its 25 MB (T0_3B, 64 tokens) cost more than the
/// copies.
#[derive(Debug)]
pub struct CrossCache {
    pub(crate) kv: t0_kernels::F32Buf,
    /// Values per layer's keys (`sources · seq · inner`).
    pub(crate) per: usize,
    pub(crate) mask: Vec<f32>,
    pub(crate) sources: usize,
    pub(crate) seq: usize,
}

impl CrossCache {
    /// Layer `l`'s keys.
    pub(crate) fn k(&self, l: usize) -> &[f32] {
        &self.kv[2 * l * self.per..(2 * l + 1) * self.per]
    }
    /// Layer `l`'s values.
    pub(crate) fn v(&self, l: usize) -> &[f32] {
        &self.kv[(2 * l + 1) * self.per..(2 * l + 2) * self.per]
    }
    /// Number of encoded inputs.
    pub fn sources(&self) -> usize {
        self.sources
    }
    /// Padded input length.
    pub fn seq_len(&self) -> usize {
        self.seq
    }
}

/// One layer's self-attention cache: `[rows, heads, capacity, d_kv]` for keys and values.
#[derive(Clone, Debug, Default)]
pub(crate) struct SelfKv {
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
}

/// The running state of a batch of decoder rows: which encoded input each row attends to,
/// how many tokens each row has consumed, and the self-attention caches.
///
/// Rows may attend to different cross caches (inputs encoded at different times, of different
/// lengths) and sit at different positions: [`DecoderState::append`] joins the rows of another
/// state, which is how a server admits new requests into a running batch between decode steps.
#[derive(Clone, Debug)]
pub struct DecoderState {
    pub(crate) cross_of_row: Vec<Arc<CrossCache>>,
    pub(crate) source_of_row: Vec<usize>,
    pub(crate) lens: Vec<usize>,
    pub(crate) layers: Vec<SelfKv>,
    pub(crate) capacity: usize,
    pub(crate) heads: usize,
    pub(crate) d_kv: usize,
    /// Buffers reused by every decode call on this state.
    pub(crate) work: crate::workspace::Workspace,
}

impl DecoderState {
    pub(crate) fn new(
        cross: Arc<CrossCache>,
        source_of_row: Vec<usize>,
        layers: usize,
        heads: usize,
        d_kv: usize,
    ) -> Self {
        let rows = source_of_row.len();
        Self {
            cross_of_row: vec![cross; rows],
            source_of_row,
            lens: vec![0; rows],
            layers: vec![SelfKv::default(); layers],
            capacity: 0,
            heads,
            d_kv,
            work: Default::default(),
        }
    }

    /// Number of decoder rows.
    pub fn rows(&self) -> usize {
        self.source_of_row.len()
    }

    /// Tokens consumed so far by each row.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// The encoded input each row attends to, as an index into its cross cache.
    pub fn sources(&self) -> &[usize] {
        &self.source_of_row
    }

    /// The cross-attention cache row `r` attends to (`None` if there is no row `r`).
    pub fn cross_of(&self, r: usize) -> Option<&Arc<CrossCache>> {
        self.cross_of_row.get(r)
    }

    /// Append the rows of `other` after this state's rows (in order), keeping every row's
    /// position, source and cache. Both states must come from the same model.
    pub fn append(&mut self, other: DecoderState) -> crate::Result<()> {
        if (other.layers.len(), other.heads, other.d_kv) != (self.layers.len(), self.heads, self.d_kv) {
            return Err(crate::ModelError::InvalidArgument(format!(
                "append: states of different models ({} layers × {} heads × {} vs {} × {} × {})",
                other.layers.len(),
                other.heads,
                other.d_kv,
                self.layers.len(),
                self.heads,
                self.d_kv
            )));
        }
        let cap = self.capacity.max(other.capacity);
        let d = self.d_kv;
        let (ra, rb) = (self.rows() * self.heads, other.rows() * other.heads);
        for (mine, theirs) in self.layers.iter_mut().zip(&other.layers) {
            for (buf, add) in [(&mut mine.k, &theirs.k), (&mut mine.v, &theirs.v)] {
                let mut joined = vec![0.0f32; (ra + rb) * cap * d];
                for (src, n, old_cap, at) in [(&*buf, ra, self.capacity, 0), (add, rb, other.capacity, ra)] {
                    for rh in 0..n {
                        let (o, w) = ((at + rh) * cap * d, old_cap * d);
                        joined[o..o + w].copy_from_slice(&src[rh * w..(rh + 1) * w]);
                    }
                }
                *buf = joined;
            }
        }
        self.capacity = cap;
        self.cross_of_row.extend(other.cross_of_row);
        self.source_of_row.extend(other.source_of_row);
        self.lens.extend(other.lens);
        Ok(())
    }

    /// Make room in the self-attention caches for `need` positions per row (tokens consumed,
    /// the start token included), keeping the contents. Decoding grows the caches
    /// geometrically as it goes; reserving the final length up front means no decode step up to
    /// it allocates (see [`crate::T5Model::decode_step`]).
    pub fn reserve(&mut self, need: usize) {
        // The causal bias covers distances 0..need (see `Decoder::forward`).
        self.work.bias.reserve(need, self.heads);
        self.reserve_kv(need);
    }

    /// The self-attention caches' part of [`Self::reserve`].
    pub(crate) fn reserve_kv(&mut self, need: usize) {
        if need <= self.capacity {
            return;
        }
        let new_cap = need.max(self.capacity * 2).max(16);
        let (rows, heads, d) = (self.rows(), self.heads, self.d_kv);
        let old_cap = self.capacity;
        for layer in &mut self.layers {
            for buf in [&mut layer.k, &mut layer.v] {
                let mut grown = vec![0.0f32; rows * heads * new_cap * d];
                for rh in 0..rows * heads {
                    let n = old_cap * d;
                    grown[rh * new_cap * d..rh * new_cap * d + n].copy_from_slice(&buf[rh * n..(rh + 1) * n]);
                }
                *buf = grown;
            }
        }
        self.capacity = new_cap;
    }

    /// Keep only the rows `keep` (in that order; a row may repeat), e.g. to follow beams or to
    /// drop finished sequences. An index that is not a row is an error.
    pub fn select_rows(&mut self, keep: &[usize]) -> crate::Result<()> {
        if let Some(&bad) = keep.iter().find(|&&r| r >= self.rows()) {
            return Err(crate::ModelError::InvalidArgument(format!(
                "select_rows: row {bad} does not exist (the state has {} rows)",
                self.rows()
            )));
        }
        let (heads, d, cap) = (self.heads, self.d_kv, self.capacity);
        let block = heads * cap * d;
        for layer in &mut self.layers {
            for buf in [&mut layer.k, &mut layer.v] {
                let mut out = Vec::with_capacity(keep.len() * block);
                for &r in keep {
                    out.extend_from_slice(&buf[r * block..(r + 1) * block]);
                }
                *buf = out;
            }
        }
        self.cross_of_row = keep.iter().map(|&r| self.cross_of_row[r].clone()).collect();
        self.source_of_row = keep.iter().map(|&r| self.source_of_row[r]).collect();
        self.lens = keep.iter().map(|&r| self.lens[r]).collect();
        Ok(())
    }
}
