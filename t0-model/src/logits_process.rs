//! Logits processors and warpers, each exactly as HF's of the same name, applied to one row.

use t0_kernels::logit_edit::Edit;

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
    for t in ngram_bans(seq, n) {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// The tokens [`no_repeat_ngram`] bans after `seq` (with repeats).
fn ngram_bans(seq: &[u32], n: usize) -> impl Iterator<Item = u32> + '_ {
    let prefix = match n {
        0 => None,
        _ => seq.len().checked_sub(n - 1).map(|at| &seq[at..]),
    };
    seq.windows(n.max(1)).filter(move |w| prefix.is_some_and(|p| &w[..n - 1] == p)).map(move |w| w[n - 1])
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
/// at or below `1 − p` (always keeping the most likely one). Equal scores sort in index order, so
/// of several equal entries at the cut the lower indices go first; HF leaves that order to
/// torch's unstable sort (which differs between CPU and GPU and with the row's length), so on
/// such exact ties the two may keep different entries of the same value.
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

/// True when no processor of `cfg` can raise a score (a repetition penalty below 1 raises
/// negative ones): a row's entries outside its top then stay outside it after [`process`].
pub fn never_raises(cfg: &GenerationConfig) -> bool {
    cfg.repetition_penalty >= 1.0
}

/// [`process`] for one row, entry by entry: what the entries of a row summary become (beam
/// search over summaries, `crate::pick`), each exactly as in the whole processed row.
pub struct RowProcess<'a> {
    seq: &'a [u32],
    penalty: f32,
    banned: Vec<u32>,
    eos_banned: Option<u32>,
}

impl<'a> RowProcess<'a> {
    /// The processors `cfg` applies to the row whose decoder input is `seq` (start token
    /// included).
    pub fn new(seq: &'a [u32], cfg: &GenerationConfig, eos: usize) -> Self {
        let mut banned: Vec<u32> = ngram_bans(seq, cfg.no_repeat_ngram_size).collect();
        banned.sort_unstable();
        banned.dedup();
        let eos_banned = (seq.len().saturating_sub(1) < cfg.min_new_tokens).then_some(eos as u32);
        RowProcess { seq, penalty: cfg.repetition_penalty, banned, eos_banned }
    }

    /// At most how many of the row's entries the processors change.
    pub fn touched(&self) -> usize {
        let penalised = if self.penalty == 1.0 { 0 } else { self.seq.len() };
        penalised + self.banned.len() + usize::from(self.eos_banned.is_some())
    }

    /// The edits [`process`] makes to a row of `vocab` entries, each token once, in token
    /// order ([`t0_kernels::logit_edit`]): what a device applies where the logits are before it
    /// summarises the row (greedy search and sampling with a processor at work).
    pub fn edits(&self, vocab: usize) -> Vec<(u32, Edit)> {
        let mut edits = std::collections::BTreeMap::new();
        if self.penalty != 1.0 {
            edits.extend(self.seq.iter().map(|&t| (t, Edit::Penalty(self.penalty))));
        }
        // A ban comes after the penalty and leaves −∞ whatever the penalty made.
        edits.extend(self.banned.iter().chain(&self.eos_banned).map(|&t| (t, Edit::Ban)));
        edits.into_iter().filter(|&(t, _)| (t as usize) < vocab).collect()
    }

    /// Entry `token` of the processed row, from its score `s` before.
    pub fn apply(&self, token: u32, s: f32) -> f32 {
        let mut s = s;
        if self.penalty != 1.0 && self.seq.contains(&token) {
            s = if s < 0.0 { s * self.penalty } else { s / self.penalty };
        }
        if self.banned.binary_search(&token).is_ok() || self.eos_banned == Some(token) {
            s = f32::NEG_INFINITY;
        }
        s
    }
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

    /// Entry by entry, the processors give the whole row's values, bit for bit.
    #[test]
    fn row_process_is_process_entry_by_entry() {
        let mut rng = crate::sampling::Rng::new(5);
        for case in 0..300 {
            let vocab = 20 + case % 30;
            let row: Vec<f32> = (0..vocab).map(|_| rng.next_f32() * 8.0 - 6.0).collect();
            // Now and then a token past the vocabulary (which no processor touches).
            let seq: Vec<u32> =
                (0..1 + case % 9).map(|_| [0, 1, 2, 3, 4, 5, 6, 7, 1000][(rng.next_u64() % 9) as usize]).collect();
            let cfg = GenerationConfig {
                repetition_penalty: [1.0, 1.3, 2.0][case % 3],
                no_repeat_ngram_size: [0, 1, 2, 3][case % 4],
                min_new_tokens: [0, 4][case % 2],
                ..GenerationConfig::default()
            };
            let mut whole = row.clone();
            process(&mut whole, &seq, &cfg, 3);
            let one = RowProcess::new(&seq, &cfg, 3);
            let changed = row.iter().zip(&whole).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert!(changed <= one.touched(), "case {case}: {changed} changed, {} counted", one.touched());
            for (t, (&x, &w)) in row.iter().zip(&whole).enumerate() {
                assert_eq!(one.apply(t as u32, x).to_bits(), w.to_bits(), "case {case} token {t}");
            }
            // The same row as a device makes it from the edits.
            let edits = one.edits(vocab);
            assert!(edits.len() <= one.touched(), "case {case}");
            t0_kernels::logit_edit::check_edits(vocab, &edits).unwrap();
            let mut edited = row.clone();
            t0_kernels::logit_edit::apply_edits(&mut edited, &edits);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&edited), bits(&whole), "case {case}: edits");
        }
    }

    #[test]
    fn repetition_penalty_signs() {
        let mut s = vec![2.0, -2.0, 2.0];
        repetition_penalty(&mut s, &[0, 1, 1], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 2.0]);
    }
}
