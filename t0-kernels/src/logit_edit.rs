//! The edits logits processors make to a few entries of next-token logits (HF's repetition
//! penalty and its bans: a repeated n-gram, `</s>` before the minimum length), applied where
//! the logits are. A device edits a step's rows this way before it summarises them
//! ([`crate::row_summary`]), so that generation with a processor at work still sends back a
//! few numbers a row instead of the vocabulary. [`apply_edits`] is the reference the CUDA
//! kernel (`edit_logits`) is tested against and what a host runs.
//!
//! ```
//! use t0_kernels::logit_edit::{apply_edits, check_edits, Edit};
//! let mut row = [2.0f32, -2.0, 5.0, 1.0];
//! let edits = [(0, Edit::Penalty(2.0)), (1, Edit::Penalty(2.0)), (3, Edit::Ban)];
//! check_edits(row.len(), &edits)?;
//! apply_edits(&mut row, &edits);
//! assert_eq!(row, [1.0, -4.0, 5.0, f32::NEG_INFINITY]);
//! # Ok::<(), String>(())
//! ```

/// What happens to one entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Edit {
    /// HF's repetition penalty `p` (positive and finite): `x · p` when `x < 0`, else `x / p`.
    Penalty(f32),
    /// The entry becomes −∞ (a banned token).
    Ban,
}

impl Edit {
    /// The edited value of an entry holding `x`.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Edit::Penalty(p) if x < 0.0 => x * p,
            Edit::Penalty(p) => x / p,
            Edit::Ban => f32::NEG_INFINITY,
        }
    }

    /// The edit as one number, as the CUDA kernel takes it: the penalty, or 0 for a ban.
    pub fn code(self) -> f32 {
        match self {
            Edit::Penalty(p) => p,
            Edit::Ban => 0.0,
        }
    }
}

/// Checks `edits` (entry index, edit) for a buffer of `len` values: every index below `len`
/// and none twice (so that the order of the edits does not matter and a device can make them
/// all at once), every penalty positive and finite. The error says which edit is wrong.
pub fn check_edits(len: usize, edits: &[(u32, Edit)]) -> Result<(), String> {
    for &(i, e) in edits {
        if i as usize >= len {
            return Err(format!("logit edit: index {i} is not below {len}"));
        }
        if let Edit::Penalty(p) = e {
            if !(p.is_finite() && p > 0.0) {
                return Err(format!("logit edit: penalty {p} at index {i} is not a positive number"));
            }
        }
    }
    let mut seen: Vec<u32> = edits.iter().map(|&(i, _)| i).collect();
    seen.sort_unstable();
    match seen.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(format!("logit edit: index {} is edited twice", w[0])),
        None => Ok(()),
    }
}

/// Applies `edits` (entry index, edit; checked by [`check_edits`]) to `x` in place. An index
/// past the end of `x` is skipped.
pub fn apply_edits(x: &mut [f32], edits: &[(u32, Edit)]) {
    for &(i, e) in edits {
        if let Some(v) = x.get_mut(i as usize) {
            *v = e.apply(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_follows_the_sign_and_keeps_special_values() {
        let p = Edit::Penalty(1.5);
        assert_eq!(p.apply(3.0), 2.0);
        assert_eq!(p.apply(-2.0), -3.0);
        assert_eq!(p.apply(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(p.apply(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(p.apply(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(p.apply(f32::NAN).is_nan());
        assert_eq!(Edit::Ban.apply(7.0), f32::NEG_INFINITY);
    }

    #[test]
    fn bad_edits_are_named() {
        assert!(check_edits(3, &[(3, Edit::Ban)]).unwrap_err().contains("index 3"));
        assert!(check_edits(3, &[(1, Edit::Ban), (1, Edit::Penalty(2.0))]).unwrap_err().contains("twice"));
        assert!(check_edits(3, &[(0, Edit::Penalty(0.0))]).unwrap_err().contains("penalty 0"));
        assert!(check_edits(3, &[(0, Edit::Penalty(f32::NAN))]).is_err());
        assert!(check_edits(3, &[(0, Edit::Penalty(0.5)), (2, Edit::Ban)]).is_ok());
    }
}
