//! Rank classification (how T0 is evaluated): score each answer choice by the log-probability
//! the model gives it after the prompt, and pick the best.

use t0_kernels::row_summary::RowSummary;

use crate::decoding::Decoding;
use crate::{ModelError, Result, T5Model};

/// The score of one answer choice.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceScore {
    /// Sum of the choice's token log-probs (T0's score; `</s>` included when the choice has it).
    pub sum: f32,
    /// `sum / number of tokens` (length-normalised).
    pub mean: f32,
    /// Log-prob of each token of the choice.
    pub token_logprobs: Vec<f32>,
}

/// One prompt and its answer choices (token ids), for [`T5Model::classify_batch`].
pub type ClassifyItem<'a> = (&'a [u32], &'a [Vec<u32>]);

/// Scores of all choices of one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    /// One per choice, in the order given.
    pub choices: Vec<ChoiceScore>,
    /// Index of the best choice (highest sum, or highest mean when length-normalised; the first
    /// of equal ones).
    pub best: usize,
}

impl T5Model {
    /// Score `choices` (token ids, normally ending with `</s>`) as continuations of `prompt`.
    ///
    /// The prompt is encoded **once** and its cross-attention K/V computed once; all choices
    /// are teacher-forced as one batch of decoder rows that read that single cache.
    ///
    /// ```
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
    /// # use t0_model::T5Model;
    /// # let model = T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
    /// let r = model.classify(&[27, 7, 48, 1], &[vec![1465, 1], vec![2841, 1]], false)?;
    /// println!("best choice: {}", r.best);
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn classify(&self, prompt: &[u32], choices: &[Vec<u32>], length_normalize: bool) -> Result<Classification> {
        let mut out = self.classify_batch(&[(prompt, choices)], length_normalize)?;
        Ok(out.remove(0))
    }

    /// [`Self::classify`] for several prompts at once, each with its own choices: the prompts are
    /// encoded as one padded batch, and the choices of all of them are teacher-forced as one
    /// batch of decoder rows, each reading its own prompt's cross-attention cache. One pass
    /// over the weights serves every prompt (T0's evaluation over a dataset).
    ///
    /// Scores agree with [`Self::classify`] on each prompt alone up to float rounding (a larger
    /// batch may take other matmul paths, which sum in another order).
    ///
    /// ```
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
    /// # use t0_model::T5Model;
    /// # let model = T5Model::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
    /// let yes_no = [vec![4273, 1], vec![465, 1]];
    /// let rs = model.classify_batch(&[(&[27, 7, 48, 1], &yes_no[..]), (&[363, 19, 1], &yes_no[..])], false)?;
    /// assert_eq!(rs.len(), 2);
    /// let alone = model.classify(&[363, 19, 1], &yes_no, false)?;
    /// assert!((rs[1].choices[0].sum - alone.choices[0].sum).abs() < 1e-4);
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn classify_batch(&self, items: &[ClassifyItem<'_>], length_normalize: bool) -> Result<Vec<Classification>> {
        for (i, (prompt, choices)) in items.iter().enumerate() {
            check_request(prompt, choices).map_err(|e| match e {
                ModelError::InvalidArgument(m) if items.len() > 1 => {
                    ModelError::InvalidArgument(format!("item {i}: {m}"))
                }
                e => e,
            })?;
            for ch in choices.iter() {
                self.check_ids(ch)?;
            }
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.config();
        let vocab = c.vocab_size;
        let rows: usize = items.iter().map(|(_, ch)| ch.len()).sum();
        let t = items.iter().flat_map(|(_, ch)| ch.iter().map(Vec::len)).max().unwrap_or(1);
        // Decoder input of row r: start token + choice[..len-1], padded to t; it reads the
        // cross-attention cache of its item's prompt.
        let mut tokens = vec![c.pad_token_id; rows * t];
        let mut source_of_row = Vec::with_capacity(rows);
        for (i, (_, choices)) in items.iter().enumerate() {
            for ch in choices.iter() {
                let r = source_of_row.len();
                tokens[r * t] = c.decoder_start_token_id;
                tokens[r * t + 1..r * t + ch.len()].copy_from_slice(&ch[..ch.len() - 1]);
                source_of_row.push(i);
            }
        }
        let prompts: Vec<&[u32]> = items.iter().map(|(p, _)| *p).collect();
        let enc = self.encode(&prompts)?;
        let cross = self.cross_cache(&enc);
        let mut state = self.decoder_state(cross, source_of_row)?;
        let logits = self.decode_step(&mut state, &tokens, t)?;
        let mut r = 0;
        let mut out = Vec::with_capacity(items.len());
        for (_, choices) in items {
            let mut scores = Vec::with_capacity(choices.len());
            for ch in choices.iter() {
                let mut lps = Vec::with_capacity(ch.len());
                for (i, &tok) in ch.iter().enumerate() {
                    let row = &mut logits[(r * t + i) * vocab..(r * t + i + 1) * vocab];
                    self.kernels().log_softmax(row);
                    lps.push(row[tok as usize]);
                }
                scores.push(ChoiceScore::new(lps));
                r += 1;
            }
            out.push(Classification::pick(scores, length_normalize));
        }
        Ok(out)
    }
}

impl ChoiceScore {
    fn new(token_logprobs: Vec<f32>) -> Self {
        let sum: f32 = token_logprobs.iter().sum();
        Self { sum, mean: sum / token_logprobs.len().max(1) as f32, token_logprobs }
    }
}

impl Classification {
    /// The scores, and the best of them (the first of equal ones).
    fn pick(choices: Vec<ChoiceScore>, length_normalize: bool) -> Self {
        let key = |s: &ChoiceScore| if length_normalize { s.mean } else { s.sum };
        let mut best = 0;
        for (i, s) in choices.iter().enumerate() {
            if key(s) > key(&choices[best]) {
                best = i;
            }
        }
        Classification { choices, best }
    }
}

/// A prompt and its choices are not empty.
fn check_request(prompt: &[u32], choices: &[Vec<u32>]) -> Result<()> {
    if prompt.is_empty() {
        return Err(ModelError::InvalidArgument("the prompt is empty (an empty prompt is `</s>`)".into()));
    }
    if choices.is_empty() {
        return Err(ModelError::InvalidArgument("no answer choices to score".into()));
    }
    if let Some(i) = choices.iter().position(Vec::is_empty) {
        return Err(ModelError::InvalidArgument(format!("answer choice {i} has no tokens")));
    }
    Ok(())
}

/// Rank classification through [`Decoding`], one step per choice position: the prompt encoded
/// once, a decoder row per choice reading it, each row fed its choice's tokens (a finished
/// row is fed `pad` and its logits ignored). For models that decode one token per row and
/// step (the device path); [`T5Model::classify`] teacher-forces all positions in one pass.
pub(crate) fn classify_stepwise<M: Decoding>(
    model: &M,
    prompt: &[u32],
    choices: &[Vec<u32>],
    length_normalize: bool,
    check_ids: impl Fn(&[u32]) -> Result<()>,
) -> Result<Classification> {
    check_request(prompt, choices)?;
    check_ids(prompt)?;
    for ch in choices {
        check_ids(ch)?;
    }
    let c = model.config();
    let (vocab, pad, start) = (c.vocab_size, c.pad_token_id, c.decoder_start_token_id);
    let t = choices.iter().map(Vec::len).max().unwrap_or(1);
    let mut state = model.begin(&[prompt], vec![0; choices.len()], t)?;
    let mut lps: Vec<Vec<f32>> = choices.iter().map(|ch| Vec::with_capacity(ch.len())).collect();
    for i in 0..t {
        // Row r's input at position i: the start token, then its choice shifted right.
        let tokens: Vec<u32> = choices
            .iter()
            .map(|ch| match i {
                0 => start,
                _ if i < ch.len() => ch[i - 1],
                _ => pad,
            })
            .collect();
        model.step(&mut state, &tokens)?;
        // Each row's log-prob of its token at i: from the row's log-sum-exp and the logit
        // where the logits are (a device sends back two numbers a row), else the whole rows.
        let targets: Vec<u32> = choices.iter().map(|ch| ch.get(i).copied().unwrap_or(u32::MAX)).collect();
        let summaries = model.summaries(&state, 0, &targets)?;
        let usable = |s: &[RowSummary]| {
            choices.iter().zip(s).all(|(ch, s)| i >= ch.len() || (s.log_sum_exp.is_finite() && s.target.is_finite()))
        };
        match summaries {
            Some(s) if usable(&s) => {
                for ((lp, ch), s) in lps.iter_mut().zip(choices).zip(&s) {
                    if i < ch.len() {
                        lp.push(s.target - s.log_sum_exp);
                    }
                }
            }
            _ => {
                let logits = model.logits(&mut state)?;
                for (r, ch) in choices.iter().enumerate() {
                    if let Some(&tok) = ch.get(i) {
                        let row = &mut logits[r * vocab..(r + 1) * vocab];
                        model.log_softmax(row);
                        lps[r].push(row[tok as usize]);
                    }
                }
            }
        }
    }
    Ok(Classification::pick(lps.into_iter().map(ChoiceScore::new).collect(), length_normalize))
}
