//! Splitting normalised text into words before the unigram model sees them (HF's
//! `Metaspace` and `WhitespaceSplit` pre-tokenizers).

use std::ops::Range;

use crate::normalizer::{NormStep, Normalizer, Pattern};

/// When `Metaspace` puts a `▁` in front of a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrependScheme {
    /// Always (unless the word already starts with one): what T5 uses.
    Always,
    /// Only for text that starts the input.
    First,
    /// Never.
    Never,
}

/// One pre-tokenization step.
#[derive(Clone, Debug)]
pub(crate) enum PreStep {
    /// Spaces become `replacement`, which is prepended per `prepend`, and (if `split`) each
    /// `replacement` starts a new word.
    Metaspace { replacement: char, prepend: PrependScheme, split: bool },
    /// Split on whitespace, dropping it.
    WhitespaceSplit,
}

/// A sequence of pre-tokenization steps.
#[derive(Clone, Debug)]
pub(crate) struct PreTokenizer {
    pub(crate) steps: Vec<PreStep>,
    /// The first step is `Metaspace` and also turns each run of spaces into one replacement:
    /// the normaliser's final `" {2,}"` → replacement step, folded in (see
    /// [`fold_space_runs`]).
    pub(crate) collapse_spaces: bool,
}

/// Folds a final `Replace(" {2,}", r)` normaliser step into a leading `Metaspace(r)`
/// pre-tokenizer step: replacing runs of 2+ spaces with `r`, then each space with `r`, is the
/// same as replacing each run of spaces with one `r`, and doing it while splitting saves a
/// pass. Only valid when nothing looks at the text in between (no normalised added tokens).
pub(crate) fn fold_space_runs(norm: &mut Normalizer, pre: &mut PreTokenizer, normalized_added: bool) {
    if normalized_added || pre.collapse_spaces {
        return;
    }
    let Some(PreStep::Metaspace { replacement, .. }) = pre.steps.first() else {
        return;
    };
    let folds = matches!(
        norm.steps.last(),
        Some(NormStep::Replace { pattern: Pattern::Run { ch: ' ', min: 2 }, content })
            if content.chars().eq(std::iter::once(*replacement))
    );
    if folds {
        norm.steps.pop();
        pre.collapse_spaces = true;
    }
}

/// Metaspace on one word: spaces become `rep` (a run of them one `rep` when `collapse`),
/// `rep` is put in front when `add`, and (when `split`) each `rep` starts a new word. The
/// result is appended to `out`, its words to `words`. Works on bytes: runs without a space
/// or `rep` are copied whole.
fn metaspace_word(
    word: &str,
    rep: char,
    add: bool,
    split: bool,
    collapse: bool,
    out: &mut String,
    words: &mut Vec<Range<usize>>,
) {
    let mut rep_buf = [0u8; 4];
    let rep_str: &str = rep.encode_utf8(&mut rep_buf);
    let r0 = rep_str.as_bytes()[0];
    let bytes = word.as_bytes();
    let mut piece_start = out.len();
    if add {
        out.push_str(rep_str);
    }
    let mut i = 0;
    while i < bytes.len() {
        // Next space or possible `rep`.
        let Some(off) = memchr::memchr2(b' ', r0, &bytes[i..]) else {
            out.push_str(&word[i..]);
            break;
        };
        let j = i + off;
        let step = if bytes[j] == b' ' {
            if collapse {
                bytes[j..].iter().take_while(|&&b| b == b' ').count()
            } else {
                1
            }
        } else if word[j..].starts_with(rep_str) {
            rep_str.len()
        } else {
            // Another character with the same first byte: copy it and go on.
            let len = word[j..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&word[i..j + len]);
            i = j + len;
            continue;
        };
        out.push_str(&word[i..j]);
        let at = out.len();
        if split && at > piece_start {
            words.push(piece_start..at);
            piece_start = at;
        }
        out.push_str(rep_str);
        i = j + step;
    }
    if out.len() > piece_start {
        words.push(piece_start..out.len());
    }
}

impl PreTokenizer {
    /// `Metaspace(replacement='▁', prepend_scheme=always, split=true)`, as T5 has.
    #[cfg(test)]
    pub(crate) fn t5() -> Self {
        PreTokenizer {
            steps: vec![PreStep::Metaspace { replacement: '\u{2581}', prepend: PrependScheme::Always, split: true }],
            collapse_spaces: false,
        }
    }

    /// Splits `text` into words. On return the words are `words` ranges of `buf` (or of
    /// `text` itself when `in_text` is returned true, i.e. no step rewrote the text).
    /// `at_start` tells whether `text` begins the input (for `PrependScheme::First`).
    pub(crate) fn split(
        &self,
        text: &str,
        at_start: bool,
        buf: &mut String,
        tmp: &mut String,
        words: &mut Vec<Range<usize>>,
        tmp_words: &mut Vec<Range<usize>>,
    ) -> bool {
        words.clear();
        if text.is_empty() {
            return true;
        }
        words.push(0..text.len());
        let mut in_text = true;
        for (step_index, step) in self.steps.iter().enumerate() {
            let src: &str = if in_text { text } else { buf.as_str() };
            match *step {
                PreStep::WhitespaceSplit => {
                    tmp_words.clear();
                    for w in words.iter() {
                        let mut start = None;
                        for (k, ch) in src[w.clone()].char_indices() {
                            if ch.is_whitespace() {
                                if let Some(s) = start.take() {
                                    tmp_words.push(w.start + s..w.start + k);
                                }
                            } else if start.is_none() {
                                start = Some(k);
                            }
                        }
                        if let Some(s) = start {
                            tmp_words.push(w.start + s..w.end);
                        }
                    }
                    std::mem::swap(words, tmp_words);
                }
                PreStep::Metaspace { replacement, prepend, split } => {
                    let collapse = self.collapse_spaces && step_index == 0;
                    tmp.clear();
                    tmp_words.clear();
                    for (n, w) in words.iter().enumerate() {
                        let word = &src[w.clone()];
                        if word.is_empty() {
                            continue;
                        }
                        let first = word.chars().next().unwrap_or(' ');
                        let starts_with_rep = first == replacement || first == ' ';
                        let add = match prepend {
                            PrependScheme::Always => !starts_with_rep,
                            PrependScheme::First => !starts_with_rep && at_start && n == 0 && w.start == 0,
                            PrependScheme::Never => false,
                        };
                        metaspace_word(word, replacement, add, split, collapse, tmp, tmp_words);
                    }
                    std::mem::swap(buf, tmp);
                    std::mem::swap(words, tmp_words);
                    in_text = false;
                }
            }
        }
        in_text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &PreTokenizer, text: &str, at_start: bool) -> Vec<String> {
        let (mut buf, mut tmp) = (String::new(), String::new());
        let (mut w, mut tw) = (vec![], vec![]);
        let in_text = p.split(text, at_start, &mut buf, &mut tmp, &mut w, &mut tw);
        let src = if in_text { text } else { buf.as_str() };
        w.iter().map(|r| src[r.clone()].to_string()).collect()
    }

    #[test]
    fn metaspace_always_split() {
        let p = PreTokenizer::t5();
        assert_eq!(run(&p, "Hey friend", true), ["▁Hey", "▁friend"]);
        assert_eq!(run(&p, " Hey", true), ["▁Hey"]);
        assert_eq!(run(&p, "a▁▁b", false), ["▁a", "▁", "▁b"]);
        assert!(run(&p, "", true).is_empty());
    }

    #[test]
    fn metaspace_first_and_never() {
        let mk = |prepend| PreTokenizer {
            steps: vec![PreStep::Metaspace { replacement: '\u{2581}', prepend, split: true }],
            collapse_spaces: false,
        };
        assert_eq!(run(&mk(PrependScheme::First), "a b", true), ["▁a", "▁b"]);
        assert_eq!(run(&mk(PrependScheme::First), "a b", false), ["a", "▁b"]);
        assert_eq!(run(&mk(PrependScheme::Never), "a b", true), ["a", "▁b"]);
    }

    #[test]
    fn whitespace_split_then_metaspace() {
        let p = PreTokenizer {
            steps: vec![
                PreStep::WhitespaceSplit,
                PreStep::Metaspace { replacement: '\u{2581}', prepend: PrependScheme::Always, split: true },
            ],
            collapse_spaces: false,
        };
        assert_eq!(run(&p, "  a \t bc ", true), ["▁a", "▁bc"]);
    }

    #[test]
    fn folded_space_runs_give_the_same_words() {
        let mut norm = Normalizer::spm(None);
        let mut folded = PreTokenizer::t5();
        fold_space_runs(&mut norm, &mut folded, false);
        assert!(folded.collapse_spaces);
        assert_eq!(norm.steps.len(), 1); // only the strip is left
        let plain_norm = Normalizer::spm(None);
        let plain = PreTokenizer::t5();
        for text in [
            "a  b",
            "  a",
            "a \u{2581}  \u{2581}b",
            "x",
            "   ",
            "\u{2581}\u{2581} q  r   s    ",
            "\u{2580}\u{2582}  \u{2581}",
        ] {
            let a = run(&plain, &plain_norm.normalize_owned(text), true);
            let b = run(&folded, &norm.normalize_owned(text), true);
            assert_eq!(a, b, "{text:?}");
        }
    }
}
