//! Choosing next tokens from [`RowSummary`]s instead of whole rows of logits: a device model
//! computes each row's log-sum-exp and top entries where the logits are and sends back `2k + 2`
//! numbers a row instead of the vocabulary ([`crate::decoding::Decoding::summaries`]).
//!
//! Each function here makes the choice the whole row would give — the same ids, log-probs
//! within rounding of the log-sum-exp — or returns `None` when the summary cannot promise
//! that (a tie at the cut, a NaN, a row of −∞), and the caller reads the whole row. Logits
//! processors are not applied here: callers use summaries only on steps where every processor
//! leaves the row as it is ([`crate::logits_process::idle`]).

use t0_kernels::row_summary::RowSummary;

use crate::logits_process::top_p;
use crate::sampling::Rng;
use crate::GenerationConfig;

/// How many top entries greedy search (1) or top-k sampling (`top_k + 1`: one past the cut, to
/// see a tie at it) needs per row, or `None` when the choice needs the whole row (sampling
/// without a top-k cut).
pub(crate) fn search_k(cfg: &GenerationConfig, vocab: usize) -> Option<usize> {
    match (cfg.do_sample, cfg.top_k) {
        (false, _) => Some(1),
        (true, k) if k > 0 && k < vocab => Some(k + 1),
        _ => None,
    }
}

/// Whether [`search_pick`] can choose from `s` (asked for `k` entries) as the whole row would.
pub(crate) fn search_usable(s: &RowSummary, cfg: &GenerationConfig, k: usize) -> bool {
    if !s.log_sum_exp.is_finite() || s.top.len() < k {
        return false;
    }
    if !cfg.do_sample {
        return true;
    }
    // Top-k keeps every value equal to the k-th after the temperature: the entry after the
    // cut must be strictly below it, so nothing past the summary is kept. (`v / t` is the
    // temperature warper's value: dividing by 1, which it skips, is exact.)
    let t = cfg.temperature;
    s.top[k - 1].0 / t < s.top[k - 2].0 / t
}

/// The token greedy search or sampling picks from a usable summary ([`search_usable`]) and its
/// log-prob under the warped distribution, as `process` + `warp` + `sample`/`argmax` +
/// `log_softmax` over the whole row give them: top-k keeps exactly the summary's first `top_k`
/// entries, so temperature, top-p, the draw and the log-softmax run on those alone, in index
/// order (the entries the cut removes are −∞, which add nothing to any sum).
pub(crate) fn search_pick(
    s: &RowSummary,
    cfg: &GenerationConfig,
    rng: &mut Rng,
    log_softmax: impl Fn(&mut [f32]),
) -> (u32, f32) {
    if !cfg.do_sample {
        let (v, t) = s.top[0];
        return (t, v - s.log_sum_exp);
    }
    let mut kept: Vec<(u32, f32)> = s.top[..cfg.top_k].iter().map(|&(v, t)| (t, v / cfg.temperature)).collect();
    kept.sort_unstable_by_key(|&(t, _)| t);
    let mut scores: Vec<f32> = kept.iter().map(|&(_, v)| v).collect();
    top_p(&mut scores, cfg.top_p);
    let i = rng.sample(&scores);
    log_softmax(&mut scores);
    (kept[i].0, scores[i])
}

/// One beam candidate: `b·vocab + token`, its total score (beam score + processed log-prob),
/// and the step's log-prob.
pub(crate) type Candidate = (usize, f32, f32);

/// Entries per row beam search asks for: one past the `2·num_beams` candidates, to see where
/// the row's unseen entries could rank, and as many again as the logits processors may push
/// down (`touched`, the most over the rows).
pub(crate) fn beam_k(num_beams: usize, touched: usize) -> usize {
    2 * num_beams + 1 + touched
}

/// The best `2·nb` candidates over the rows of one input's beams (`sums[b]`, asked for `k`
/// entries; beam scores `scores[b]`), as HF's top-k over the flattened `[nb, vocab]` processed
/// log-probs plus scores orders them (larger first, then the lower flat index), or `None` when
/// an entry the summaries do not hold could be among them. `process(b, token, lp)` is the
/// processed log-prob ([`crate::logits_process::RowProcess`]); it must never raise one. So every
/// row's unseen entries score at most its last summarised entry's log-prob before processing,
/// and each such bound must fall strictly below the last candidate taken.
pub(crate) fn beam_candidates(
    sums: &[RowSummary],
    k: usize,
    scores: &[f32],
    vocab: usize,
    nb: usize,
    process: impl Fn(usize, u32, f32) -> f32,
) -> Option<Vec<Candidate>> {
    let mut all: Vec<Candidate> = Vec::with_capacity(sums.len() * k);
    let mut bounds = Vec::with_capacity(sums.len());
    for (b, (s, &beam)) in sums.iter().zip(scores).enumerate() {
        if !s.log_sum_exp.is_finite() {
            return None;
        }
        for &(v, t) in &s.top {
            let lp = process(b, t, v - s.log_sum_exp);
            all.push((b * vocab + t as usize, lp + beam, lp));
        }
        if let (true, Some(&(v, _))) = (s.top.len() == k, s.top.last()) {
            bounds.push((v - s.log_sum_exp) + beam);
        }
    }
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(2 * nb);
    let last = all.last()?.1;
    (all.len() == 2 * nb && bounds.iter().all(|&bound| bound < last)).then_some(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logits_process::{warp, RowProcess};
    use t0_kernels::row_summary::row_summary;

    fn log_softmax(x: &mut [f32]) {
        t0_kernels::softmax::log_softmax_reference(x);
    }

    /// Rows on a coarse grid (ties everywhere) and smooth rows.
    fn rows(seed: u64, n: usize, vocab: usize) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|r| {
                (0..vocab)
                    .map(|_| {
                        let u = rng.next_f32() * 8.0 - 6.0;
                        if r % 2 == 0 {
                            (u * 2.0).round() / 2.0
                        } else {
                            u
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn sampling_from_a_summary_draws_what_the_whole_row_draws() {
        let mut used = 0;
        for (top_k, temp, top_p) in [(1, 1.0, 1.0), (5, 1.5, 1.0), (12, 0.7, 0.8), (40, 1.0, 0.5), (3, 3.0, 0.9)] {
            let cfg = GenerationConfig { do_sample: true, top_k, temperature: temp, top_p, ..Default::default() };
            for (r, row) in rows(top_k as u64, 40, 97).into_iter().enumerate() {
                let k = search_k(&cfg, row.len()).unwrap();
                let s = row_summary(&row, k, None);
                let (mut rng_a, mut rng_b) = (Rng::new(r as u64), Rng::new(r as u64));
                let mut whole = row.clone();
                warp(&mut whole, &cfg);
                let want = rng_a.sample(&whole);
                log_softmax(&mut whole);
                if !search_usable(&s, &cfg, k) {
                    continue;
                }
                used += 1;
                let (tok, lp) = search_pick(&s, &cfg, &mut rng_b, log_softmax);
                assert_eq!(tok as usize, want, "top_k {top_k} row {r}");
                assert!((lp - whole[want]).abs() <= 1e-6, "top_k {top_k} row {r}: {lp} vs {}", whole[want]);
                assert_eq!(rng_a.next_u64(), rng_b.next_u64(), "one draw each");
            }
        }
        assert!(used > 100, "most rows can be sampled from their summary ({used})");
    }

    #[test]
    fn a_tie_at_the_top_k_cut_needs_the_whole_row() {
        let cfg = GenerationConfig { do_sample: true, top_k: 2, ..Default::default() };
        let s = row_summary(&[1.0, 3.0, 2.0, 2.0], search_k(&cfg, 4).unwrap(), None);
        assert!(!search_usable(&s, &cfg, 3));
        // After the temperature, two values can round to one (here both to 0).
        let cfg = GenerationConfig { temperature: 3e38, ..cfg };
        let s = row_summary(&[1e-7, 3e-7, 2e-7, 1.5e-7], 3, None);
        assert!(s.top[1].0 > s.top[2].0);
        assert!(!search_usable(&s, &cfg, 3));
    }

    #[test]
    fn greedy_from_a_summary() {
        let cfg = GenerationConfig::greedy(4);
        for row in rows(3, 20, 33) {
            let s = row_summary(&row, 1, None);
            assert!(search_usable(&s, &cfg, 1));
            let (tok, lp) = search_pick(&s, &cfg, &mut Rng::new(0), log_softmax);
            let mut whole = row.clone();
            log_softmax(&mut whole);
            assert_eq!(tok as usize, crate::generate::argmax(&row));
            assert!((lp - whole[tok as usize]).abs() <= 1e-6);
        }
        assert!(!search_usable(&row_summary(&[f32::NAN, 1.0], 1, None), &cfg, 1));
        assert!(!search_usable(&row_summary(&[f32::NEG_INFINITY; 2], 1, None), &cfg, 1));
    }

    /// The whole-row candidates, as beam search computes them from full logits: log-softmax,
    /// the processors, the beam's score.
    fn whole_candidates(rows: &[Vec<f32>], scores: &[f32], nb: usize, procs: &[RowProcess<'_>]) -> Vec<Candidate> {
        let vocab = rows[0].len();
        let mut all = Vec::new();
        for (b, row) in rows.iter().enumerate() {
            let lse = row_summary(row, 0, None).log_sum_exp;
            let lp: Vec<f32> = row.iter().enumerate().map(|(t, &x)| procs[b].apply(t as u32, x - lse)).collect();
            all.extend(lp.iter().enumerate().map(|(t, &l)| (b * vocab + t, l + scores[b], l)));
        }
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(2 * nb);
        all
    }

    #[test]
    fn beam_candidates_are_the_whole_rows_or_none() {
        let (mut used, mut refused) = (0, 0);
        let seqs: Vec<Vec<u32>> = (0..4).map(|b| vec![0, 3 + b, 7, 3 + b, 7, 11]).collect();
        for seed in 0..240u64 {
            let nb = 1 + seed as usize % 4;
            let rs = rows(seed, nb, 50);
            // Beam scores that bring several rows into play, and the first step's −1e9.
            let scores: Vec<f32> = (0..nb)
                .map(|b| match seed % 3 {
                    0 if b > 0 => -1e9,
                    1 => 0.0,
                    _ => -(b as f32) * 0.25,
                })
                .collect();
            // No processor, then each of them (a repetition penalty, n-gram bans, no `</s>`).
            let cfg = GenerationConfig {
                repetition_penalty: [1.0, 1.5, 1.0, 1.0][(seed / 4) as usize % 4],
                no_repeat_ngram_size: [0, 0, 2, 0][(seed / 4) as usize % 4],
                min_new_tokens: [0, 0, 0, 9][(seed / 4) as usize % 4],
                ..GenerationConfig::default()
            };
            let procs: Vec<RowProcess<'_>> = seqs[..nb].iter().map(|s| RowProcess::new(s, &cfg, 7)).collect();
            let k = beam_k(nb, procs.iter().map(RowProcess::touched).max().unwrap_or(0));
            let sums: Vec<RowSummary> = rs.iter().map(|r| row_summary(r, k, None)).collect();
            match beam_candidates(&sums, k, &scores, 50, nb, |b, t, lp| procs[b].apply(t, lp)) {
                Some(c) => {
                    used += 1;
                    assert_eq!(c, whole_candidates(&rs, &scores, nb, &procs), "seed {seed}");
                }
                None => refused += 1,
            }
        }
        // The coarse rows tie often at the cut: both outcomes occur.
        assert!(used >= 80 && refused >= 20, "used {used}, refused {refused}");
        // A row whose every entry ties: the unseen ones could be taken.
        let flat = [vec![0.5f32; 10]];
        let k = beam_k(1, 0);
        let sums = [row_summary(&flat[0], k, None)];
        assert_eq!(beam_candidates(&sums, k, &[0.0], 10, 1, |_, _, lp| lp), None);
        // Processors that push the whole summary down: unseen entries could rank first.
        let row: Vec<f32> = (0..10).map(|t| -(t as f32)).collect();
        let sums = [row_summary(&row, k, None)];
        assert_eq!(beam_candidates(&sums, k, &[0.0], 10, 1, |_, _, _| f32::NEG_INFINITY), None);
    }
}
