//! Attention projections (q, k, v, o) of one T5 attention block.

use crate::linear::Linear;

/// The four bias-free projections of a T5 attention block (`[inner, d_model]` for q/k/v,
/// `[d_model, inner]` for o, where `inner = num_heads · d_kv`).
#[derive(Clone, Debug)]
pub struct Attention {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
}
