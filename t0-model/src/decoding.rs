//! What generation needs from a model, so that greedy search, sampling and beam search
//! ([`crate::generate`], [`crate::beam`]) are written once for the CPU model ([`T5Model`]) and a
//! model on a device ([`crate::device::DeviceModel`]).

use t0_kernels::logit_edit::Edit;
use t0_kernels::row_summary::RowSummary;

use crate::{DecoderState, Result, T5Config, T5Model};

/// Positions reserved up front in the CPU model's self-attention caches (about 0.4 MB per
/// position and row for T0_3B, so only a short run is reserved; longer ones grow the caches
/// geometrically).
const CACHE_RESERVE_MAX: usize = 64;

/// A model that generation can drive: a decoder state over rows (row `r` decoding one encoded
/// input), one step's next-token logits (on the host, or summarised where they are), and
/// keeping some of the rows.
pub(crate) trait Decoding {
    /// The decoder state.
    type State;
    /// The configuration.
    fn config(&self) -> &T5Config;
    /// Encodes `inputs` (checked by the caller) and starts a state whose row `r` decodes
    /// `inputs[source_of_row[r]]`, with room for `steps` steps.
    fn begin(&self, inputs: &[&[u32]], source_of_row: Vec<usize>, steps: usize) -> Result<Self::State>;
    /// One step, a token per row.
    fn step(&self, state: &mut Self::State, tokens: &[u32]) -> Result<()>;
    /// The last step's next-token logits on the host, `[rows, vocab]`.
    fn logits<'s>(&self, state: &'s mut Self::State) -> Result<&'s mut [f32]>;
    /// The last step's logits summarised row by row where they are ([`RowSummary`]: the
    /// log-sum-exp, the `k` largest, the value at `targets[r]`; `targets` empty: none), or
    /// `None` when the logits are on the host anyway (callers then read
    /// [`Decoding::logits`]). A device model sends back `2k + 2` numbers a row this way.
    fn summaries(&self, state: &Self::State, k: usize, targets: &[u32]) -> Result<Option<Vec<RowSummary>>> {
        let _ = (state, k, targets);
        Ok(None)
    }
    /// Applies the logits processors' `edits` (index `row·vocab + token`, each once) to the
    /// last step's logits where they are, so that [`Decoding::summaries`] then summarises the
    /// processed rows; false when nothing was done because the logits are on the host anyway
    /// (callers then process the rows they read).
    fn edit_logits(&self, state: &mut Self::State, edits: &[(u32, Edit)]) -> Result<bool> {
        let _ = (state, edits);
        Ok(false)
    }
    /// Keeps rows `keep` of the state, in that order (a row may appear more than once).
    fn select_rows(&self, state: &mut Self::State, keep: &[usize]) -> Result<()>;
    /// `x = log_softmax(x)`.
    fn log_softmax(&self, x: &mut [f32]);
}

impl Decoding for T5Model {
    type State = DecoderState;

    fn config(&self) -> &T5Config {
        T5Model::config(self)
    }

    fn begin(&self, inputs: &[&[u32]], source_of_row: Vec<usize>, steps: usize) -> Result<DecoderState> {
        let enc = self.encode(inputs)?;
        let cross = self.cross_cache(&enc);
        let mut state = self.decoder_state(cross, source_of_row)?;
        state.reserve(steps.min(CACHE_RESERVE_MAX) + 1);
        Ok(state)
    }

    fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<()> {
        self.decode_step(state, tokens, 1).map(drop)
    }

    fn logits<'s>(&self, state: &'s mut DecoderState) -> Result<&'s mut [f32]> {
        let n = state.rows() * self.config().vocab_size;
        state
            .work
            .logits
            .get_mut(..n)
            .ok_or_else(|| crate::ModelError::InvalidArgument(format!("logits: no step has filled {n} logits")))
    }

    fn select_rows(&self, state: &mut DecoderState, keep: &[usize]) -> Result<()> {
        state.select_rows(keep)
    }

    fn log_softmax(&self, x: &mut [f32]) {
        self.kernels().log_softmax(x)
    }
}
