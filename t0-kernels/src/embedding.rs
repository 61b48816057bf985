//! Embedding gather: rows of a table, widened to f32.

use crate::WeightView;

/// Reference gather: `out[i] = table[ids[i]]`. Ids must be `< table.rows()` (the model checks
/// them against the vocabulary before calling).
pub fn embedding_reference(table: &WeightView<'_>, ids: &[u32], out: &mut [f32]) {
    let d = table.cols();
    assert_eq!(out.len(), ids.len() * d, "embedding: out is not [ids, d]");
    for (&id, o) in ids.iter().zip(out.chunks_exact_mut(d.max(1))) {
        table.row_to_f32(id as usize, o);
    }
}
