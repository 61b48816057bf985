//! Splitting normalised text into words before the unigram model sees them (HF's
//! `Metaspace` and `WhitespaceSplit` pre-tokenizers).

use std::ops::Range;

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
}

impl PreTokenizer {
    /// `Metaspace(replacement='▁', prepend_scheme=always, split=true)`, as T5 has.
    #[cfg(test)]
    pub(crate) fn t5() -> Self {
        PreTokenizer {
            steps: vec![PreStep::Metaspace { replacement: '\u{2581}', prepend: PrependScheme::Always, split: true }],
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
        for step in &self.steps {
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
                    tmp.clear();
                    tmp_words.clear();
                    for (n, w) in words.iter().enumerate() {
                        let word = &src[w.clone()];
                        if word.is_empty() {
                            continue;
                        }
                        let start = tmp.len();
                        let first = word.chars().next().unwrap_or(' ');
                        let starts_with_rep = first == replacement || first == ' ';
                        let add = match prepend {
                            PrependScheme::Always => !starts_with_rep,
                            PrependScheme::First => !starts_with_rep && at_start && n == 0 && w.start == 0,
                            PrependScheme::Never => false,
                        };
                        if add {
                            tmp.push(replacement);
                        }
                        for ch in word.chars() {
                            tmp.push(if ch == ' ' { replacement } else { ch });
                        }
                        if split {
                            let mut piece_start = start;
                            for (k, ch) in tmp[start..].char_indices() {
                                let at = start + k;
                                if ch == replacement && at > piece_start {
                                    tmp_words.push(piece_start..at);
                                    piece_start = at;
                                }
                            }
                            if piece_start < tmp.len() {
                                tmp_words.push(piece_start..tmp.len());
                            }
                        } else {
                            tmp_words.push(start..tmp.len());
                        }
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
        };
        assert_eq!(run(&p, "  a \t bc ", true), ["▁a", "▁bc"]);
    }
}
