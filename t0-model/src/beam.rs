//! Beam search, step for step as HF transformers 4.57's `_beam_search` (vectorised version):
//! the same candidate count (2 × beams), the same rule for when a finished hypothesis counts
//! (it must rank among the top `num_beams` candidates), the same length normalisation and the
//! same early-stopping heuristic, in f32 like HF.

use crate::decoding::Decoding;
use crate::generate::Generated;
use crate::logits_process::process;
use crate::{EarlyStopping, GenerationConfig, Result};

const NEG: f32 = -1.0e9;

#[derive(Clone, Debug)]
struct Hyp {
    /// Decoder input: start token + generated tokens.
    seq: Vec<u32>,
    /// Processed log-prob of each generated token.
    logprobs: Vec<f32>,
    score: f32,
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
fn top_k_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    if k < idx.len() {
        idx.select_nth_unstable_by(k, |&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        idx.truncate(k);
    }
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx
}

/// Beam search for one input (checked by the caller) on any [`Decoding`] model; returns
/// `cfg.num_return_sequences` hypotheses, best first.
pub(crate) fn beam_search<D: Decoding>(d: &D, input: &[u32], cfg: &GenerationConfig) -> Result<Vec<Generated>> {
    let c = d.config();
    let (vocab, eos) = (c.vocab_size, c.eos_token_id as usize);
    let nb = cfg.num_beams;
    let keep = 2 * nb;
    let lp = cfg.length_penalty;
    let max_length = cfg.max_new_tokens + 1; // HF counts the decoder start token
    let mut state = d.begin(&[input], vec![0; nb], cfg.max_new_tokens)?;

    let start = Hyp { seq: vec![c.decoder_start_token_id], logprobs: Vec::new(), score: 0.0 };
    let mut running: Vec<Hyp> =
        (0..nb).map(|i| Hyp { score: if i == 0 { 0.0 } else { NEG }, ..start.clone() }).collect();
    // Finished slots: (hypothesis, normalised score, finished?).
    let mut finished: Vec<(Hyp, f32, bool)> = vec![(start.clone(), NEG, false); nb];
    let mut heuristic_unsatisfied = true;
    let mut cur_len = 1usize;
    loop {
        let next: Vec<u32> = running.iter().map(|h| *h.seq.last().unwrap_or(&0)).collect();
        let logits = d.step(&mut state, &next)?;
        // log_softmax, then the processors (HF applies them to log-probs in beam search),
        // then add the running beam score.
        let mut step_lp = vec![0.0f32; nb * vocab];
        for (b, h) in running.iter().enumerate() {
            let l = &mut logits[b * vocab..(b + 1) * vocab];
            d.log_softmax(l);
            process(l, &h.seq, cfg, eos);
            for (dst, &x) in step_lp[b * vocab..(b + 1) * vocab].iter_mut().zip(l.iter()) {
                *dst = x;
            }
            for x in l.iter_mut() {
                *x += h.score;
            }
        }
        let cand = top_k_indices(logits, keep);
        let cand_score: Vec<f32> = cand.iter().map(|&i| logits[i]).collect();
        let cand_hyp: Vec<Hyp> = cand
            .iter()
            .map(|&i| {
                let (b, t) = (i / vocab, i % vocab);
                let mut h = running[b].clone();
                h.seq.push(t as u32);
                h.logprobs.push(step_lp[i]);
                h.score = logits[i];
                h
            })
            .collect();
        let cand_parent: Vec<usize> = cand.iter().map(|&i| i / vocab).collect();
        let hits: Vec<bool> = cand.iter().map(|&i| i % vocab == eos || cur_len + 1 >= max_length).collect();

        // Next running beams: best `nb` candidates that did not stop.
        let masked: Vec<f32> = cand_score.iter().zip(&hits).map(|(&s, &h)| s + if h { NEG } else { 0.0 }).collect();
        let pick = top_k_indices(&masked, nb);
        let new_running: Vec<Hyp> = pick.iter().map(|&j| Hyp { score: masked[j], ..cand_hyp[j].clone() }).collect();
        let parents: Vec<usize> = pick.iter().map(|&j| cand_parent[j]).collect();

        // Finished hypotheses: merge the candidates that stopped among the top `nb`.
        let all_finished = finished.iter().all(|f| f.2);
        let norm = ((cur_len + 1 - 1) as f32).powf(lp);
        let mut merged: Vec<(Hyp, f32, bool)> = finished.clone();
        for (j, h) in cand_hyp.iter().enumerate() {
            let just_finished = hits[j] && j < nb;
            let mut s = cand_score[j] / norm;
            if all_finished && cfg.early_stopping == EarlyStopping::Bool(true) {
                s += NEG;
            }
            if !heuristic_unsatisfied {
                s += NEG;
            }
            if !just_finished {
                s += NEG;
            }
            merged.push((h.clone(), s, just_finished));
        }
        let merged_scores: Vec<f32> = merged.iter().map(|m| m.1).collect();
        finished = top_k_indices(&merged_scores, nb).into_iter().map(|i| merged[i].clone()).collect();

        d.select_rows(&mut state, &parents)?;
        running = new_running;
        cur_len += 1;

        // HF's early-stop heuristic.
        let best_len =
            if cfg.early_stopping == EarlyStopping::Never && lp > 0.0 { max_length - 1 } else { cur_len - 1 };
        let best_possible = running[0].score / (best_len as f32).powf(lp);
        let worst_finished = finished.iter().map(|f| f.1).fold(f32::INFINITY, f32::min);
        let improvable = finished.iter().any(|f| best_possible > if f.2 { worst_finished } else { NEG });
        heuristic_unsatisfied &= improvable;
        let all_done = finished.iter().all(|f| f.2) && cfg.early_stopping == EarlyStopping::Bool(true);
        if !heuristic_unsatisfied || all_done || hits.iter().all(|&h| h) {
            break;
        }
    }
    Ok(finished
        .into_iter()
        .take(cfg.num_return_sequences)
        .map(|(h, s, _)| Generated { token_ids: h.seq[1..].to_vec(), token_logprobs: h.logprobs, score: Some(s) })
        .collect())
}
