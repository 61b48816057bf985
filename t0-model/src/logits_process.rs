//! Logits processors and warpers, each exactly as HF's of the same name, applied to one row.

use crate::GenerationConfig;

/// HF's `RepetitionPenaltyLogitsProcessor`: every token already in `seq` (the decoder input,
/// start token included) gets `x · p` if its score is negative, else `x / p`.
pub fn repetition_penalty(scores: &mut [f32], seq: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for &t in seq {
        let t = t as usize;
        if t < scores.len() && seen.insert(t) {
            let s = scores[t];
            scores[t] = if s < 0.0 { s * penalty } else { s / penalty };
        }
    }
}

/// HF's `NoRepeatNGramLogitsProcessor`: ban every token that would repeat an `n`-gram of `seq`.
pub fn no_repeat_ngram(scores: &mut [f32], seq: &[u32], n: usize) {
    if n == 0 || seq.len() + 1 < n {
        return;
    }
    let prefix = &seq[seq.len() + 1 - n..];
    for w in seq.windows(n) {
        if &w[..n - 1] == prefix {
            if let Some(s) = scores.get_mut(w[n - 1] as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// HF's `MinNewTokensLengthLogitsProcessor`: no `</s>` before `min_new` tokens.
pub fn min_new_tokens(scores: &mut [f32], generated: usize, min_new: usize, eos: usize) {
    if generated < min_new {
        if let Some(s) = scores.get_mut(eos) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// HF's `TemperatureLogitsWarper`.
pub fn temperature(scores: &mut [f32], t: f32) {
    if t != 1.0 {
        for s in scores {
            *s /= t;
        }
    }
}

/// HF's `TopKLogitsWarper`: scores below the k-th largest become −∞ (ties with it stay).
pub fn top_k(scores: &mut [f32], k: usize) {
    if k == 0 || k >= scores.len() {
        return;
    }
    let mut sorted: Vec<f32> = scores.to_vec();
    sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    for s in scores {
        if *s < kth {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// HF's `TopPLogitsWarper`: sort ascending, drop the tokens whose cumulative probability stays
/// at or below `1 − p` (always keeping the most likely one).
pub fn top_p(scores: &mut [f32], p: f32) {
    if p >= 1.0 {
        return;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = scores.iter().map(|&s| (s - max).exp()).sum();
    let mut cum = 0.0f32;
    let last = order.len().saturating_sub(1);
    let mut remove = Vec::new();
    for (rank, &i) in order.iter().enumerate() {
        cum += (scores[i] - max).exp() / sum;
        if cum <= 1.0 - p && rank != last {
            remove.push(i);
        }
    }
    for i in remove {
        scores[i] = f32::NEG_INFINITY;
    }
}

/// The processors HF applies for `cfg` (before any sampling warper), in HF's order.
/// `seq` is the row's decoder input so far (start token included).
pub fn process(scores: &mut [f32], seq: &[u32], cfg: &GenerationConfig, eos: usize) {
    repetition_penalty(scores, seq, cfg.repetition_penalty);
    no_repeat_ngram(scores, seq, cfg.no_repeat_ngram_size);
    min_new_tokens(scores, seq.len().saturating_sub(1), cfg.min_new_tokens, eos);
}

/// True when [`process`] leaves every score of a row whose decoder input is `seq` as it is
/// (no repetition penalty, no n-gram to ban yet, the minimum length reached).
pub fn idle(seq: &[u32], cfg: &GenerationConfig) -> bool {
    let n = cfg.no_repeat_ngram_size;
    cfg.repetition_penalty == 1.0 && (n == 0 || seq.len() + 1 < n) && seq.len().saturating_sub(1) >= cfg.min_new_tokens
}

/// The sampling warpers, in HF's order: temperature, top-k, top-p.
pub fn warp(scores: &mut [f32], cfg: &GenerationConfig) {
    temperature(scores, cfg.temperature);
    top_k(scores, cfg.top_k);
    top_p(scores, cfg.top_p);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_bans_the_completion() {
        let mut s = vec![0.0f32; 10];
        no_repeat_ngram(&mut s, &[0, 5, 6, 7, 5], 2);
        assert_eq!(s[6], f32::NEG_INFINITY);
        assert_eq!(s.iter().filter(|x| x.is_infinite()).count(), 1);
    }

    #[test]
    fn top_k_keeps_k() {
        let mut s = vec![1.0, 5.0, 3.0, 4.0];
        top_k(&mut s, 2);
        assert_eq!(s, vec![f32::NEG_INFINITY, 5.0, f32::NEG_INFINITY, 4.0]);
    }

    #[test]
    fn top_p_keeps_the_head() {
        let mut s = vec![0.0, 10.0, 0.0];
        top_p(&mut s, 0.5);
        assert_eq!(s, vec![f32::NEG_INFINITY, 10.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn repetition_penalty_signs() {
        let mut s = vec![2.0, -2.0, 2.0];
        repetition_penalty(&mut s, &[0, 1, 1], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 2.0]);
    }
}
