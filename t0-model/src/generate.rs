//! Generation: greedy and sampling here (one token per row per step), beam search in
//! [`crate::beam`]. Every input of a batch is decoded in one batched step; rows finish
//! independently and are dropped from the batch when they do.

use t0_kernels::logit_edit::Edit;

use crate::decoding::Decoding;
use crate::logits_process::{idle, process, warp, RowProcess};
use crate::pick;
use crate::sampling::Rng;
use crate::{GenerationConfig, Result, T5Model};

/// One generated sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// Generated ids after the decoder start token, ending with `</s>` when it was generated.
    pub token_ids: Vec<u32>,
    /// Log-probability of each chosen token under the processed distribution (after the
    /// min-length rule and the other processors), as HF's
    /// `compute_transition_scores(..., normalize_logits=True)` reports it.
    pub token_logprobs: Vec<f32>,
    /// Beam search only: the hypothesis score HF reports as `sequences_scores`
    /// (sum of log-probs / length ** length_penalty).
    pub score: Option<f32>,
}

/// Tokens reserved up front in each output (larger `max_new_tokens` grow as they go, so a huge
/// limit does not allocate for tokens never generated).
const RESERVE_MAX: usize = 1024;

/// Index of the first maximum (as `torch.argmax`).
pub(crate) fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

impl T5Model {
    /// Generate for each input (a batch of any lengths): greedy, sampling or beam search as
    /// `cfg` says. Returns, per input, `cfg.num_return_sequences` sequences (best first).
    ///
    /// ```
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
    /// # use t0_model::{GenerationConfig, T5Model};
    /// # let model = T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
    /// let out = model.generate(&[vec![27, 7, 48, 1], vec![5, 1]], &GenerationConfig::greedy(12))?;
    /// assert_eq!(out.len(), 2);
    /// println!("{:?}", out[0][0].token_ids);
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn generate(&self, inputs: &[Vec<u32>], cfg: &GenerationConfig) -> Result<Vec<Vec<Generated>>> {
        self.generate_streaming(inputs, cfg, |_, _| {})
    }

    /// As [`T5Model::generate`], calling `on_token(input, token)` as each token is chosen
    /// (greedy and sampling; beam search reports its final sequences only).
    pub fn generate_streaming(
        &self,
        inputs: &[Vec<u32>],
        cfg: &GenerationConfig,
        on_token: impl FnMut(usize, u32),
    ) -> Result<Vec<Vec<Generated>>> {
        generate_with(self, inputs, cfg, |i, x| self.check_input(i, x), on_token)
    }
}

/// Generation on any [`Decoding`] model: `cfg` and each input checked (`check(index, input)`),
/// then beam search ([`crate::beam`]) or greedy search / sampling, all inputs decoded together.
pub(crate) fn generate_with<D: Decoding>(
    d: &D,
    inputs: &[Vec<u32>],
    cfg: &GenerationConfig,
    check: impl Fn(usize, &[u32]) -> Result<()>,
    on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<Generated>>> {
    cfg.validate()?;
    for (i, x) in inputs.iter().enumerate() {
        check(i, x)?;
    }
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
    if cfg.num_beams > 1 {
        return crate::beam::beam_search(d, &refs, cfg);
    }
    search(d, &refs, cfg, on_token)
}

/// Greedy search or sampling (`cfg.num_beams == 1`) of every input together, one row each, on
/// any [`Decoding`] model; inputs and `cfg` already checked.
fn search<D: Decoding>(
    d: &D,
    refs: &[&[u32]],
    cfg: &GenerationConfig,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<Generated>>> {
    let mut state = d.begin(refs, (0..refs.len()).collect(), cfg.max_new_tokens)?;
    let c = d.config();
    let (vocab, eos) = (c.vocab_size, c.eos_token_id as usize);
    let mut rng = Rng::new(cfg.seed);
    let mut out = vec![Generated { token_ids: Vec::new(), token_logprobs: Vec::new(), score: None }; refs.len()];
    // Decoder input so far of each output (start token included), for the processors.
    let mut seqs: Vec<Vec<u32>> = (0..refs.len())
        .map(|_| {
            let mut s = Vec::with_capacity(cfg.max_new_tokens.min(RESERVE_MAX) + 1);
            s.push(c.decoder_start_token_id);
            s
        })
        .collect();
    // `alive[r]` is the output index of the state's row r.
    let mut alive: Vec<usize> = (0..refs.len()).collect();
    // Steps reuse these and the state's buffers: a step allocates only when rows finish.
    let (mut next, mut keep) = (Vec::with_capacity(alive.len()), Vec::with_capacity(alive.len()));
    let mut picked: Vec<(u32, f32)> = Vec::with_capacity(alive.len());
    for g in &mut out {
        g.token_ids.reserve(cfg.max_new_tokens.min(RESERVE_MAX));
        g.token_logprobs.reserve(cfg.max_new_tokens.min(RESERVE_MAX));
    }
    for _ in 0..cfg.max_new_tokens {
        next.clear();
        next.extend(alive.iter().map(|&o| *seqs[o].last().unwrap_or(&0)));
        d.step(&mut state, &next)?;
        picked.clear();
        // Where the logits stay on a device, each row's top entries and log-sum-exp suffice
        // (`pick`), the processors at work applied to the rows there first; otherwise, the
        // whole rows.
        let k = pick::search_k(cfg, vocab);
        let idle_rows = alive.iter().all(|&o| idle(&seqs[o], cfg));
        // Whether the rows where they are now hold the processed logits.
        let mut processed = false;
        if k.is_some() && !idle_rows {
            if let Some(edits) = row_edits(&alive, &seqs, cfg, vocab, eos) {
                processed = d.edit_logits(&mut state, &edits)?;
            }
        }
        let summaries = match k {
            Some(k) if idle_rows || processed => d.summaries(&state, k, &[])?.map(|s| (s, k)),
            _ => None,
        };
        match summaries {
            Some((s, k)) if s.iter().all(|s| pick::search_usable(s, cfg, k)) => {
                picked.extend(s.iter().map(|s| pick::search_pick(s, cfg, &mut rng, |x| d.log_softmax(x))));
            }
            _ => {
                let logits = d.logits(&mut state)?;
                for (row, &o) in alive.iter().enumerate() {
                    let l = &mut logits[row * vocab..(row + 1) * vocab];
                    if !processed {
                        process(l, &seqs[o], cfg, eos);
                    }
                    let tok = if cfg.do_sample {
                        warp(l, cfg);
                        rng.sample(l)
                    } else {
                        argmax(l)
                    };
                    d.log_softmax(l);
                    picked.push((tok as u32, l[tok]));
                }
            }
        }
        keep.clear();
        for (row, (&o, &(tok, lp))) in alive.iter().zip(&picked).enumerate() {
            out[o].token_ids.push(tok);
            out[o].token_logprobs.push(lp);
            seqs[o].push(tok);
            on_token(o, tok);
            if tok as usize != eos {
                keep.push(row);
            }
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() != alive.len() {
            d.select_rows(&mut state, &keep)?;
            alive = keep.iter().map(|&r| alive[r]).collect();
        }
    }
    Ok(out.into_iter().map(|g| vec![g]).collect())
}

/// The edits [`process`] makes to a step's rows (the row of output `alive[r]` at `r·vocab`),
/// for a model that applies them where the logits are; `None` when an index does not fit in
/// 32 bits (the rows are then read and processed on the host).
fn row_edits(
    alive: &[usize],
    seqs: &[Vec<u32>],
    cfg: &GenerationConfig,
    vocab: usize,
    eos: usize,
) -> Option<Vec<(u32, Edit)>> {
    let mut edits = Vec::new();
    for (r, &o) in alive.iter().enumerate() {
        for (t, e) in RowProcess::new(&seqs[o], cfg, eos).edits(vocab) {
            edits.push((u32::try_from(r * vocab + t as usize).ok()?, e));
        }
    }
    Some(edits)
}
