//! T5 relative-position buckets, computed exactly as HF's `_relative_position_bucket`.

/// The bucket of `relative_position = key_pos − query_pos`.
///
/// Bidirectional (encoder): half the buckets for keys before, half for keys after the query.
/// Causal (decoder): keys after the query all land in bucket 0 (they are masked anyway).
/// Beyond `num_buckets / 2` (halved again when bidirectional) distances fall into
/// logarithmically sized buckets up to `max_distance`; the log is taken in f32 and truncated,
/// as PyTorch does. (`ln` here is the correctly rounded one; PyTorch's SLEEF `log` is within
/// 1 ulp of it, so where the exact value is an integer the truncations can differ: e.g. 35
/// buckets, distance 27, `relative_position` ±12, where `ln(1.5) / ln(3.375) · 9` is exactly 3.
/// Over 4–64 buckets × every valid distance up to 300 × ±500 that is 15 positions in 11 of
/// 34,556 settings, and none for T5's 32 / 128, which `tests/fixtures/buckets.json` pins.)
/// The result is below `num_buckets` (for `num_buckets ≥ 1`) whatever the
/// arguments, also where HF's formula breaks (`max_distance` at or under the exact range, or
/// fewer than 4 buckets; `T5Config` refuses those).
///
/// ```
/// use t0_kernels::relative_position_bucket;
/// assert_eq!(relative_position_bucket(0, true, 32, 128), 0);
/// assert_eq!(relative_position_bucket(3, true, 32, 128), 19);
/// assert_eq!(relative_position_bucket(-3, false, 32, 128), 3);
/// assert_eq!(relative_position_bucket(-1000, false, 32, 128), 31);
/// ```
pub fn relative_position_bucket(
    relative_position: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut buckets = num_buckets as i64;
    let mut ret = 0i64;
    let n = if bidirectional {
        buckets /= 2;
        if relative_position > 0 {
            ret += buckets;
        }
        relative_position.abs()
    } else {
        (-relative_position).max(0)
    };
    let max_exact = buckets / 2;
    if n < max_exact {
        return (ret + n) as usize;
    }
    let max_exact_f = max_exact as f32;
    // HF: log(n / max_exact) / math.log(max_distance / max_exact) * (buckets - max_exact),
    // all in f32 (the Python float scalar is applied in the tensor's dtype), then truncated.
    let denom = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
    let scaled = (n as f32 / max_exact_f).ln() / denom * (buckets - max_exact) as f32;
    // HF has only the `min`: a `max_distance` at or under `max_exact` (which configs refuse)
    // would make `scaled` negative; the bucket stays in range whatever the arguments.
    let large = max_exact.saturating_add(scaled as i64).min(buckets - 1).max(0);
    (ret + large) as usize
}

#[cfg(test)]
mod tests {
    use super::relative_position_bucket;

    #[test]
    fn buckets_stay_in_range_for_any_arguments() {
        for buckets in 1..=40 {
            for max_distance in [0, 1, 2, 3, 5, 8, 16, 20, 33, 128, 1000] {
                for rel in -300..=300 {
                    for bidirectional in [false, true] {
                        let b = relative_position_bucket(rel, bidirectional, buckets, max_distance);
                        assert!(b < buckets, "{rel} {bidirectional} {buckets} {max_distance}: {b}");
                    }
                }
            }
        }
    }
}
