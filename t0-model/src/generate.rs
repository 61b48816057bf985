//! Greedy generation with per-token log-probabilities.

use crate::{ModelError, Result, T5Model};

/// Options of greedy generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Most tokens to generate after the decoder start token (at least 1).
    pub max_new_tokens: usize,
    /// `</s>` cannot be generated before this many tokens (its logit is set to −∞, as HF's
    /// `MinNewTokensLengthLogitsProcessor` does).
    pub min_new_tokens: usize,
}

impl Default for GenerateOptions {
    /// HF's default budget: 20 new tokens, no minimum.
    fn default() -> Self {
        Self { max_new_tokens: 20, min_new_tokens: 0 }
    }
}

/// One generated sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// Generated ids after the decoder start token, ending with `</s>` when it was generated.
    pub token_ids: Vec<u32>,
    /// Log-probability of each chosen token under the processed distribution (after the
    /// min-length rule), as HF's `compute_transition_scores(..., normalize_logits=True)`.
    pub token_logprobs: Vec<f32>,
}

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
    /// Greedy decoding of each input (a batch of any lengths; rows finish independently).
    ///
    /// ```no_run
    /// # use t0_model::{GenerateOptions, T5Model};
    /// # let model = T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
    /// let opts = GenerateOptions { max_new_tokens: 12, min_new_tokens: 0 };
    /// let out = model.generate(&[vec![27, 7, 48, 1], vec![5, 1]], &opts)?;
    /// assert_eq!(out.len(), 2);
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn generate(&self, inputs: &[Vec<u32>], opts: &GenerateOptions) -> Result<Vec<Generated>> {
        if opts.max_new_tokens == 0 {
            return Err(ModelError::InvalidArgument("max_new_tokens must be at least 1".into()));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(i) = inputs.iter().position(|x| x.is_empty()) {
            return Err(ModelError::InvalidArgument(format!(
                "input {i} is empty: an input needs at least one token (an empty prompt is `</s>`)"
            )));
        }
        let refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
        let enc = self.encode(&refs)?;
        let cross = self.cross_cache(&enc);
        let mut state = self.decoder_state(cross, (0..inputs.len()).collect())?;
        let c = self.config();
        let (vocab, eos) = (c.vocab_size, c.eos_token_id as usize);
        let mut out = vec![Generated { token_ids: Vec::new(), token_logprobs: Vec::new() }; inputs.len()];
        // `alive[i]` is the output index of the state's row i.
        let mut alive: Vec<usize> = (0..inputs.len()).collect();
        let mut next = vec![c.decoder_start_token_id; inputs.len()];
        for step in 0..opts.max_new_tokens {
            let mut logits = self.decode(&mut state, &next, 1)?;
            let mut keep = Vec::with_capacity(alive.len());
            for (row, &o) in alive.iter().enumerate() {
                let l = &mut logits[row * vocab..(row + 1) * vocab];
                if step < opts.min_new_tokens {
                    l[eos] = f32::NEG_INFINITY;
                }
                let tok = argmax(l);
                self.kernels().log_softmax(l);
                out[o].token_ids.push(tok as u32);
                out[o].token_logprobs.push(l[tok]);
                if tok != eos {
                    keep.push(row);
                }
            }
            if keep.is_empty() {
                break;
            }
            if keep.len() != alive.len() {
                state.select_rows(&keep)?;
                alive = keep.iter().map(|&r| alive[r]).collect();
            }
            next = alive.iter().map(|&o| *out[o].token_ids.last().unwrap_or(&0)).collect();
        }
        Ok(out)
    }
}
