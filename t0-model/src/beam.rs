//! Beam search, step for step as HF transformers 4.57's `_beam_search` (vectorised version):
//! the same candidate count (2 × beams), the same rule for when a finished hypothesis counts
//! (it must rank among the top `num_beams` candidates), the same length normalisation and the
//! same early-stopping heuristic, in f32 like HF.

use crate::decoding::Decoding;
use crate::generate::Generated;
use crate::logits_process::{never_raises, process, RowProcess};
use crate::pick::{self, Candidate};
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

/// One input's beams between steps.
struct Beams {
    running: Vec<Hyp>,
    /// Finished slots: (hypothesis, normalised score, finished?).
    finished: Vec<(Hyp, f32, bool)>,
    heuristic_unsatisfied: bool,
}

impl Beams {
    fn new(decoder_start: u32, nb: usize) -> Self {
        let start = Hyp { seq: vec![decoder_start], logprobs: Vec::new(), score: 0.0 };
        let running = (0..nb).map(|i| Hyp { score: if i == 0 { 0.0 } else { NEG }, ..start.clone() }).collect();
        Beams { running, finished: vec![(start, NEG, false); nb], heuristic_unsatisfied: true }
    }

    /// The best `2·nb` candidates of this step from the logits of this input's `nb` rows
    /// (`[nb, vocab]`, overwritten): log_softmax, then the processors (HF applies them to
    /// log-probs in beam search), then the running beam's score added.
    fn candidates<D: Decoding>(&self, d: &D, logits: &mut [f32], cfg: &GenerationConfig) -> Vec<Candidate> {
        let c = d.config();
        let (vocab, eos) = (c.vocab_size, c.eos_token_id as usize);
        let nb = cfg.num_beams;
        let mut step_lp = vec![0.0f32; nb * vocab];
        for (b, h) in self.running.iter().enumerate() {
            let l = &mut logits[b * vocab..(b + 1) * vocab];
            d.log_softmax(l);
            process(l, &h.seq, cfg, eos);
            step_lp[b * vocab..(b + 1) * vocab].copy_from_slice(l);
            for x in l.iter_mut() {
                *x += h.score;
            }
        }
        top_k_indices(logits, 2 * nb).into_iter().map(|i| (i, logits[i], step_lp[i])).collect()
    }

    /// The running beams' scores.
    fn scores(&self) -> Vec<f32> {
        self.running.iter().map(|h| h.score).collect()
    }

    /// One step from its best `2·nb` candidates ([`Beams::candidates`] or
    /// [`pick::beam_candidates`]) at length `cur_len` (start token included): returns the row
    /// (`< nb`) each new running beam continues, and whether this input is done.
    fn advance(
        &mut self,
        cand: &[Candidate],
        vocab: usize,
        eos: usize,
        cur_len: usize,
        cfg: &GenerationConfig,
    ) -> (Vec<usize>, bool) {
        let nb = cfg.num_beams;
        let lp = cfg.length_penalty;
        let max_length = cfg.max_new_tokens + 1; // HF counts the decoder start token
        let cand_score: Vec<f32> = cand.iter().map(|c| c.1).collect();
        let cand_hyp: Vec<Hyp> = cand
            .iter()
            .map(|&(i, score, step_lp)| {
                let (b, t) = (i / vocab, i % vocab);
                let mut h = self.running[b].clone();
                h.seq.push(t as u32);
                h.logprobs.push(step_lp);
                h.score = score;
                h
            })
            .collect();
        let hits: Vec<bool> = cand.iter().map(|&(i, _, _)| i % vocab == eos || cur_len + 1 >= max_length).collect();

        // Next running beams: best `nb` candidates that did not stop.
        let masked: Vec<f32> = cand_score.iter().zip(&hits).map(|(&s, &h)| s + if h { NEG } else { 0.0 }).collect();
        let chosen = top_k_indices(&masked, nb);
        let new_running: Vec<Hyp> = chosen.iter().map(|&j| Hyp { score: masked[j], ..cand_hyp[j].clone() }).collect();
        let parents: Vec<usize> = chosen.iter().map(|&j| cand[j].0 / vocab).collect();

        // Finished hypotheses: merge the candidates that stopped among the top `nb`.
        let all_finished = self.finished.iter().all(|f| f.2);
        let norm = (cur_len as f32).powf(lp);
        let mut merged: Vec<(Hyp, f32, bool)> = self.finished.clone();
        for (j, h) in cand_hyp.iter().enumerate() {
            let just_finished = hits[j] && j < nb;
            let mut s = cand_score[j] / norm;
            if all_finished && cfg.early_stopping == EarlyStopping::Bool(true) {
                s += NEG;
            }
            if !self.heuristic_unsatisfied {
                s += NEG;
            }
            if !just_finished {
                s += NEG;
            }
            merged.push((h.clone(), s, just_finished));
        }
        let merged_scores: Vec<f32> = merged.iter().map(|m| m.1).collect();
        self.finished = top_k_indices(&merged_scores, nb).into_iter().map(|i| merged[i].clone()).collect();
        self.running = new_running;

        // HF's early-stop heuristic, at the new length.
        let cur_len = cur_len + 1;
        let best_len =
            if cfg.early_stopping == EarlyStopping::Never && lp > 0.0 { max_length - 1 } else { cur_len - 1 };
        let best_possible = self.running[0].score / (best_len as f32).powf(lp);
        let worst_finished = self.finished.iter().map(|f| f.1).fold(f32::INFINITY, f32::min);
        let improvable = self.finished.iter().any(|f| best_possible > if f.2 { worst_finished } else { NEG });
        self.heuristic_unsatisfied &= improvable;
        let all_done = self.finished.iter().all(|f| f.2) && cfg.early_stopping == EarlyStopping::Bool(true);
        (parents, !self.heuristic_unsatisfied || all_done || hits.iter().all(|&h| h))
    }

    /// The best `cfg.num_return_sequences` finished hypotheses.
    fn results(self, cfg: &GenerationConfig) -> Vec<Generated> {
        self.finished
            .into_iter()
            .take(cfg.num_return_sequences)
            .map(|(h, s, _)| Generated { token_ids: h.seq[1..].to_vec(), token_logprobs: h.logprobs, score: Some(s) })
            .collect()
    }
}

/// Beam search of every input (checked by the caller) on any [`Decoding`] model, the inputs'
/// beams decoded together (input `i`'s `num_beams` rows side by side; an input leaves the batch
/// when its search ends, as HF's batched search freezes it). Returns, per input,
/// `cfg.num_return_sequences` hypotheses, best first.
pub(crate) fn beam_search<D: Decoding>(
    d: &D,
    inputs: &[&[u32]],
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<Generated>>> {
    let c = d.config();
    let (vocab, nb, eos) = (c.vocab_size, cfg.num_beams, c.eos_token_id as usize);
    let rows = (0..inputs.len()).flat_map(|i| std::iter::repeat_n(i, nb)).collect();
    let mut state = d.begin(inputs, rows, cfg.max_new_tokens)?;
    let mut beams: Vec<Beams> = inputs.iter().map(|_| Beams::new(c.decoder_start_token_id, nb)).collect();
    // `alive[g]`: the input whose beams are the state's row group `g`.
    let mut alive: Vec<usize> = (0..inputs.len()).collect();
    let mut cur_len = 1usize;
    while !alive.is_empty() {
        let next: Vec<u32> =
            alive.iter().flat_map(|&i| beams[i].running.iter().map(|h| *h.seq.last().unwrap_or(&0))).collect();
        d.step(&mut state, &next)?;
        // Where the logits stay on a device, each row's top entries and log-sum-exp suffice
        // (`pick`), the processors applied to those entries, as long as none can raise a score;
        // otherwise, or when a summary falls short, the whole rows.
        let procs: Vec<Vec<RowProcess<'_>>> = alive
            .iter()
            .map(|&i| beams[i].running.iter().map(|h| RowProcess::new(&h.seq, cfg, eos)).collect())
            .collect();
        let touched = procs.iter().flatten().map(RowProcess::touched).max().unwrap_or(0);
        let k = pick::beam_k(nb, touched);
        let summarised = match never_raises(cfg) {
            true => d.summaries(&state, k, &[])?,
            false => None,
        };
        let from_summaries = summarised.and_then(|s| {
            let groups = alive.iter().zip(s.chunks(nb)).zip(&procs);
            groups
                .map(|((&i, s), p)| {
                    pick::beam_candidates(s, k, &beams[i].scores(), vocab, nb, |b, t, lp| p[b].apply(t, lp))
                })
                .collect::<Option<Vec<_>>>()
        });
        let cands = match from_summaries {
            Some(c) => c,
            None => {
                let logits = d.logits(&mut state)?;
                let groups = alive.iter().zip(logits.chunks_mut(nb * vocab));
                groups.map(|(&i, l)| beams[i].candidates(d, l, cfg)).collect()
            }
        };
        let (mut keep, mut still) = (Vec::with_capacity(next.len()), Vec::with_capacity(alive.len()));
        for (g, (&i, cand)) in alive.iter().zip(&cands).enumerate() {
            let (parents, done) = beams[i].advance(cand, vocab, eos, cur_len, cfg);
            if !done {
                keep.extend(parents.iter().map(|&p| g * nb + p));
                still.push(i);
            }
        }
        cur_len += 1;
        if !still.is_empty() {
            d.select_rows(&mut state, &keep)?;
        }
        alive = still;
    }
    Ok(beams.into_iter().map(|b| b.results(cfg)).collect())
}
