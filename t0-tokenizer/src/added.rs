//! Added tokens (`<pad>`, `</s>`, `<unk>`, `<extra_id_N>`, …): recognised whole in the input
//! before normalisation, as HF's `AddedVocabulary` does.
//!
//! Matching is leftmost-longest and non-overlapping, like the Aho-Corasick automaton HF
//! builds: the earliest position where some token starts wins, and among the tokens starting
//! there the longest. `lstrip`/`rstrip` widen a match over neighbouring whitespace, and
//! `single_word` drops a match inside a word, with HF's rules.

use std::collections::HashMap;
use std::ops::Range;

use crate::trie::DoubleArray;

/// A token matched whole in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AddedToken {
    pub(crate) content: String,
    pub(crate) id: u32,
    pub(crate) special: bool,
    pub(crate) lstrip: bool,
    pub(crate) rstrip: bool,
    pub(crate) single_word: bool,
    /// Matched in the normalised text instead of the raw text.
    pub(crate) normalized: bool,
}

impl AddedToken {
    /// A special token with HF's default flags (no strip, not normalised).
    pub(crate) fn special(content: &str, id: u32) -> Self {
        AddedToken {
            content: content.to_string(),
            id,
            special: true,
            lstrip: false,
            rstrip: false,
            single_word: false,
            normalized: false,
        }
    }
}

/// A set of tokens to find in text.
#[derive(Clone, Debug)]
pub(crate) struct Matcher {
    trie: DoubleArray,
    /// Bytes that start some token.
    first: [bool; 256],
    /// The distinct first bytes, when there are at most 3 (fast scan with `memchr`).
    few_first: Vec<u8>,
    /// No patterns at all.
    empty: bool,
}

impl Matcher {
    /// `patterns[i]` is the text to look for, reported as index `i`.
    pub(crate) fn new(patterns: &[&str]) -> Self {
        let keys: Vec<(&[u8], u32)> = patterns.iter().enumerate().map(|(i, p)| (p.as_bytes(), i as u32)).collect();
        let mut first = [false; 256];
        for p in patterns {
            if let Some(&b) = p.as_bytes().first() {
                first[b as usize] = true;
            }
        }
        let firsts: Vec<u8> = (0..=255u8).filter(|&b| first[b as usize]).collect();
        Matcher {
            trie: DoubleArray::build(&keys),
            empty: firsts.is_empty(),
            few_first: if firsts.len() <= 3 { firsts } else { Vec::new() },
            first,
        }
    }

    fn next_candidate(&self, hay: &[u8], from: usize) -> Option<usize> {
        let rest = hay.get(from..)?;
        let off = match self.few_first.as_slice() {
            [a] => memchr::memchr(*a, rest),
            [a, b] => memchr::memchr2(*a, *b, rest),
            [a, b, c] => memchr::memchr3(*a, *b, *c, rest),
            _ => rest.iter().position(|&b| self.first[b as usize]),
        };
        off.map(|o| from + o)
    }

    /// The leftmost-longest non-overlapping matches: (pattern index, byte range).
    fn find_iter<'a>(&'a self, text: &'a str) -> impl Iterator<Item = (usize, Range<usize>)> + 'a {
        let hay = text.as_bytes();
        let mut at = 0;
        std::iter::from_fn(move || {
            if self.empty {
                return None;
            }
            while let Some(pos) = self.next_candidate(hay, at) {
                let mut best = None;
                self.trie.common_prefix_search(&hay[pos..], |len, v| best = Some((v as usize, len)));
                if let Some((idx, len)) = best {
                    at = pos + len;
                    return Some((idx, pos..pos + len));
                }
                at = pos + 1;
            }
            at = hay.len();
            None
        })
    }
}

/// One piece of the input after added tokens are taken out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Split {
    /// Ordinary text to normalise and segment.
    Text(Range<usize>),
    /// An added token's id.
    Token(u32),
}

/// The added vocabulary of a tokenizer.
#[derive(Clone, Debug)]
pub(crate) struct AddedVocab {
    pub(crate) tokens: Vec<AddedToken>,
    raw: Matcher,
    raw_index: Vec<usize>,
    normalized: Matcher,
    normalized_index: Vec<usize>,
    by_id: HashMap<u32, usize>,
    special_contents: std::collections::HashSet<String>,
}

impl AddedVocab {
    /// `normalize` turns a normalised token's content into the text to look for.
    pub(crate) fn new(tokens: Vec<AddedToken>, normalize: impl Fn(&str) -> String) -> Self {
        let mut raw_pats = Vec::new();
        let mut raw_index = Vec::new();
        let mut norm_pats = Vec::new();
        let mut normalized_index = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            if t.content.is_empty() {
                continue;
            }
            if t.normalized {
                norm_pats.push(normalize(&t.content));
                normalized_index.push(i);
            } else {
                raw_pats.push(t.content.clone());
                raw_index.push(i);
            }
        }
        let mut by_id = HashMap::new();
        for (i, t) in tokens.iter().enumerate() {
            by_id.insert(t.id, i);
        }
        let special_contents = tokens.iter().filter(|t| t.special).map(|t| t.content.clone()).collect();
        let raw_refs: Vec<&str> = raw_pats.iter().map(String::as_str).collect();
        let norm_refs: Vec<&str> = norm_pats.iter().map(String::as_str).collect();
        AddedVocab {
            raw: Matcher::new(&raw_refs),
            raw_index,
            normalized: Matcher::new(&norm_refs),
            normalized_index,
            by_id,
            special_contents,
            tokens,
        }
    }

    /// The added token with this id.
    pub(crate) fn by_id(&self, id: u32) -> Option<&AddedToken> {
        self.by_id.get(&id).map(|&i| &self.tokens[i])
    }

    /// Whether a token with this text is special (HF decides skipping by content).
    pub(crate) fn is_special_content(&self, content: &str) -> bool {
        self.special_contents.contains(content)
    }

    /// Whether any token is matched in normalised text.
    pub(crate) fn has_normalized(&self) -> bool {
        !self.normalized_index.is_empty()
    }

    /// Splits raw input text around the non-normalised tokens.
    pub(crate) fn split_raw(&self, text: &str, out: &mut Vec<Split>) {
        self.split(text, &self.raw, &self.raw_index, out)
    }

    /// Splits normalised text around the normalised tokens.
    pub(crate) fn split_normalized(&self, text: &str, out: &mut Vec<Split>) {
        self.split(text, &self.normalized, &self.normalized_index, out)
    }

    /// HF's `AddedVocabulary::find_matches`.
    fn split(&self, text: &str, m: &Matcher, index: &[usize], out: &mut Vec<Split>) {
        out.clear();
        let mut done = 0; // end of what has been emitted
        for (pat, range) in m.find_iter(text) {
            let tok = &self.tokens[index[pat]];
            let (mut start, mut stop) = (range.start, range.end);
            if tok.single_word {
                let start_space = start == 0 || !text[..start].chars().next_back().is_some_and(is_word_char);
                let stop_space = stop == text.len() || !text[stop..].chars().next().is_some_and(is_word_char);
                if !start_space || !stop_space {
                    continue;
                }
            }
            if tok.lstrip {
                let trimmed = text[..start].trim_end_matches(char::is_whitespace).len();
                start = trimmed.max(done);
            }
            if tok.rstrip {
                stop = text.len() - text[stop..].trim_start_matches(char::is_whitespace).len();
            }
            if done < start {
                out.push(Split::Text(done..start));
            }
            out.push(Split::Token(tok.id));
            done = stop;
        }
        if done < text.len() {
            out.push(Split::Text(done..text.len()));
        }
    }
}

/// Regex `\w` (Unicode word character), approximated with what `std` knows: alphabetic,
/// numeric, marks are not distinguishable in `std`, so `_` and join controls are added.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '\u{200c}' || c == '\u{200d}'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: Vec<AddedToken>) -> AddedVocab {
        AddedVocab::new(tokens, |s| s.to_string())
    }

    fn show(v: &AddedVocab, text: &str) -> Vec<String> {
        let mut out = vec![];
        v.split_raw(text, &mut out);
        out.iter()
            .map(|s| match s {
                Split::Text(r) => format!("{:?}", &text[r.clone()]),
                Split::Token(id) => format!("#{id}"),
            })
            .collect()
    }

    #[test]
    fn leftmost_longest() {
        let v =
            vocab(vec![AddedToken::special("<a>", 1), AddedToken::special("<a><b>", 2), AddedToken::special("<b>", 3)]);
        assert_eq!(show(&v, "x<a><b>y<b>"), ["\"x\"", "#2", "\"y\"", "#3"]);
        assert_eq!(show(&v, "<a"), ["\"<a\""]);
        assert_eq!(show(&v, ""), Vec::<String>::new());
    }

    #[test]
    fn strip_flags() {
        let mut t = AddedToken::special("<m>", 9);
        t.lstrip = true;
        t.rstrip = true;
        let v = vocab(vec![t]);
        assert_eq!(show(&v, "a  <m>  b"), ["\"a\"", "#9", "\"b\""]);
        let mut w = AddedToken::special("ab", 4);
        w.single_word = true;
        let v = vocab(vec![w]);
        assert_eq!(show(&v, "ab cab ab"), ["#4", "\" cab \"", "#4"]);
    }
}
