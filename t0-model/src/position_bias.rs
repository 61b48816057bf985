//! Relative-position bias vectors, built from a stack's bias table once per forward call and
//! shared by every layer of that stack (T5, mT5), or from each layer's own table (umT5).

use t0_kernels::{relative_position_bucket, BiasView};

/// A stack's `relative_attention_bias` table `[buckets, heads]` and how to bucket distances.
#[derive(Clone, Debug)]
pub struct RelativeBias {
    table: Vec<f32>,
    heads: usize,
    num_buckets: usize,
    max_distance: usize,
    bidirectional: bool,
}

/// Bias values by relative distance for every head, covering `min_rel..=max_rel`.
#[derive(Clone, Debug, Default)]
pub struct BiasVectors {
    values: Vec<f32>,
    head_stride: usize,
    offset: usize,
}

impl BiasVectors {
    /// Room for `span` distances of `heads` heads without reallocating.
    pub(crate) fn reserve(&mut self, span: usize, heads: usize) {
        self.values.reserve((span * heads).saturating_sub(self.values.len()));
    }

    /// The kernels' view.
    pub fn view(&self) -> BiasView<'_> {
        BiasView { values: &self.values, head_stride: self.head_stride, offset: self.offset }
    }
}

/// A stack's bias tables: one in its first layer, shared by every layer (T5, mT5), or one per
/// layer (umT5).
#[derive(Clone, Debug)]
pub struct StackBias {
    tables: Vec<RelativeBias>,
}

impl StackBias {
    /// One table for every layer.
    pub fn shared(table: RelativeBias) -> Self {
        Self { tables: vec![table] }
    }

    /// Layer `l` uses `tables[l]`.
    pub fn per_layer(tables: Vec<RelativeBias>) -> Self {
        assert!(!tables.is_empty(), "a stack has at least one layer");
        Self { tables }
    }

    /// Writes layer `l`'s bias vectors for `min_rel..=max_rel` into `out` and returns true, or
    /// returns false when `out` holds them already: a shared table's vectors, written for layer
    /// 0, serve every later layer. Call it for each layer in order, before the layer runs.
    pub fn layer_vectors_into(&self, l: usize, min_rel: i64, max_rel: i64, out: &mut BiasVectors) -> bool {
        let shared = self.tables.len() == 1;
        if shared && l > 0 {
            return false;
        }
        self.tables[if shared { 0 } else { l }].vectors_into(min_rel, max_rel, out);
        true
    }
}

impl RelativeBias {
    /// A table `[num_buckets, heads]` (row-major, as HF's embedding stores it).
    pub fn new(table: Vec<f32>, heads: usize, num_buckets: usize, max_distance: usize, bidirectional: bool) -> Self {
        Self { table, heads, num_buckets, max_distance, bidirectional }
    }

    /// Bias for every relative distance `key − query` in `min_rel..=max_rel` (`min_rel ≤ 0 ≤ max_rel`).
    pub fn vectors(&self, min_rel: i64, max_rel: i64) -> BiasVectors {
        let mut out = BiasVectors::default();
        self.vectors_into(min_rel, max_rel, &mut out);
        out
    }

    /// As [`Self::vectors`], into `out`'s buffer (which only grows: no allocation once it is
    /// large enough).
    pub fn vectors_into(&self, min_rel: i64, max_rel: i64, out: &mut BiasVectors) {
        let span = (max_rel - min_rel + 1) as usize;
        out.values.clear();
        out.values.resize(span * self.heads, 0.0);
        for (i, rel) in (min_rel..=max_rel).enumerate() {
            let b = relative_position_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance);
            for h in 0..self.heads {
                out.values[h * span + i] = self.table[b * self.heads + h];
            }
        }
        out.head_stride = span;
        out.offset = (-min_rel) as usize;
    }
}
