//! Relative-position bias vectors, built from a stack's bias table once per forward call and
//! shared by every layer of that stack.

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
    /// The kernels' view.
    pub fn view(&self) -> BiasView<'_> {
        BiasView { values: &self.values, head_stride: self.head_stride, offset: self.offset }
    }
}

impl RelativeBias {
    /// A table `[num_buckets, heads]` (row-major, as HF's embedding stores it).
    pub fn new(table: Vec<f32>, heads: usize, num_buckets: usize, max_distance: usize, bidirectional: bool) -> Self {
        Self { table, heads, num_buckets, max_distance, bidirectional }
    }

    /// Bias for every relative distance `key − query` in `min_rel..=max_rel` (`min_rel ≤ 0 ≤ max_rel`).
    pub fn vectors(&self, min_rel: i64, max_rel: i64) -> BiasVectors {
        let span = (max_rel - min_rel + 1) as usize;
        let buckets: Vec<usize> = (min_rel..=max_rel)
            .map(|rel| relative_position_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance))
            .collect();
        let mut values = vec![0.0f32; span * self.heads];
        for h in 0..self.heads {
            for (v, &b) in values[h * span..(h + 1) * span].iter_mut().zip(&buckets) {
                *v = self.table[b * self.heads + h];
            }
        }
        BiasVectors { values, head_stride: span, offset: (-min_rel) as usize }
    }
}
