//! What decoding needs from one row of next-token logits, without the row itself: its
//! log-sum-exp (any token's log-prob is then `x − lse`), its `k` largest values with their
//! indices, and the value at one chosen index. A device computes this where the logits are
//! (`row_summary` in the CUDA kernels) and sends back `2k + 2` numbers a row instead of the
//! vocabulary; [`row_summary`] here is the reference it is tested against and what a host
//! backend runs.
//!
//! ```
//! use t0_kernels::row_summary::row_summary;
//! let s = row_summary(&[1.0, 3.0, 2.0, 3.0], 3, Some(2));
//! // Largest first; equal values: the lower index first.
//! assert_eq!(s.top, vec![(3.0, 1), (3.0, 3), (2.0, 2)]);
//! assert_eq!(s.target, 2.0);
//! let lse = (1f64.exp() + 2.0 * 3f64.exp() + 2f64.exp()).ln() as f32;
//! assert!((s.log_sum_exp - lse).abs() < 1e-6);
//! ```

/// One row's summary ([`row_summary`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RowSummary {
    /// `max + ln Σ exp(x − max)` over the row: the log-softmax of entry `j` is
    /// `x[j] − log_sum_exp`. −∞ for an empty row or one of −∞ only; NaN if the row holds a NaN.
    pub log_sum_exp: f32,
    /// Up to `k` (value, index) pairs: the largest values, largest first, equal values in index
    /// order (the order of a stable descending sort). NaN is never included, so fewer than `k`
    /// come back only when the row has fewer than `k` other values.
    pub top: Vec<(f32, u32)>,
    /// `x[target]`, or NaN without a target or when it is out of range.
    pub target: f32,
}

/// The summary of `row`: its log-sum-exp (summed in f64), its `k` largest entries and the
/// value at `target`.
pub fn row_summary(row: &[f32], k: usize, target: Option<u32>) -> RowSummary {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum_exp = if max == f32::NEG_INFINITY {
        f32::NEG_INFINITY
    } else {
        let sum: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
        max + sum.ln() as f32
    };
    let target = target.and_then(|t| row.get(t as usize)).copied().unwrap_or(f32::NAN);
    RowSummary { log_sum_exp, top: top_k(row, k), target }
}

/// The `k` largest non-NaN entries of `row` as (value, index), largest first, equal values in
/// index order.
pub fn top_k(row: &[f32], k: usize) -> Vec<(f32, u32)> {
    let mut top: Vec<(f32, u32)> = Vec::with_capacity(k.min(row.len()) + 1);
    if k == 0 {
        return top;
    }
    for (i, &v) in row.iter().enumerate() {
        // A value equal to the current k-th comes later in index order: it stays out.
        if v.is_nan() || (top.len() == k && v <= top[k - 1].0) {
            continue;
        }
        let at = top.partition_point(|&(t, _)| t >= v);
        top.insert(at, (v, i as u32));
        top.truncate(k);
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The specification, spelled out: a stable sort of the non-NaN entries by value, descending.
    fn sorted_top(row: &[f32], k: usize) -> Vec<(f32, u32)> {
        let mut all: Vec<(f32, u32)> =
            row.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(|(i, &v)| (v, i as u32)).collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        all.truncate(k);
        all
    }

    /// Rows with many ties (values on a coarse grid), infinities and NaNs.
    fn rows() -> impl Strategy<Value = Vec<f32>> {
        let value = prop_oneof![
            8 => (-6i32..6).prop_map(|v| v as f32 * 0.5),
            1 => Just(f32::NEG_INFINITY),
            1 => Just(f32::NAN),
            1 => -100.0f32..100.0,
        ];
        prop_oneof![prop::collection::vec(value.clone(), 0..40), prop::collection::vec(value, 1023..1025),]
    }

    proptest! {
        #[test]
        fn top_k_is_a_stable_descending_sort(row in rows(), k in 0usize..40) {
            prop_assert_eq!(top_k(&row, k), sorted_top(&row, k));
        }

        #[test]
        fn log_sum_exp_matches_the_definition(row in prop::collection::vec(-50.0f32..50.0, 1..1100), t in 0u32..1200) {
            let s = row_summary(&row, 1, Some(t));
            let want = row.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
            prop_assert!((f64::from(s.log_sum_exp) - want).abs() <= 1e-5 * want.abs().max(1.0));
            match row.get(t as usize) {
                Some(&x) => prop_assert_eq!(s.target, x),
                None => prop_assert!(s.target.is_nan()),
            }
        }
    }

    #[test]
    fn edge_rows() {
        let empty = row_summary(&[], 3, Some(0));
        assert_eq!((empty.log_sum_exp, empty.top.len()), (f32::NEG_INFINITY, 0));
        assert!(empty.target.is_nan());
        let dead = row_summary(&[f32::NEG_INFINITY; 3], 2, None);
        assert_eq!(dead.log_sum_exp, f32::NEG_INFINITY);
        assert_eq!(dead.top, vec![(f32::NEG_INFINITY, 0), (f32::NEG_INFINITY, 1)]);
        assert!(row_summary(&[0.0, f32::NAN], 1, None).log_sum_exp.is_nan());
    }
}
