//! The unigram model: pieces with log-probabilities, and the Viterbi segmentation of a word.
//!
//! This is HF `tokenizers`' `Unigram::encode_optimized` (itself SentencePiece's
//! `EncodeOptimized`), step for step, so that ties break the same way: positions are visited
//! left to right, the pieces starting at a position shortest first, and a later candidate
//! replaces the best path into a position only when its score is strictly higher. A
//! character that no single-character piece covers gets an `<unk>` node scored
//! `min_score - 10`; runs of such nodes on the best path become one `<unk>` (`fuse_unk`).
//! Scores are summed in `f64`, as HF does.

use crate::trie::DoubleArray;

/// What SentencePiece and HF subtract from the lowest piece score to score an unknown char.
const UNK_PENALTY: f64 = 10.0;

/// A unigram vocabulary ready for segmentation.
#[derive(Clone, Debug)]
pub(crate) struct Unigram {
    /// Piece text by id.
    pub(crate) pieces: Vec<String>,
    /// Piece text → id (the last id, for text given twice, as HF's hash map does).
    trie: DoubleArray,
    unk_id: u32,
    unk_score: f64,
    /// `<0xXX>` piece ids, when byte fallback is on and all 256 exist.
    byte_ids: Option<Box<[u32; 256]>>,
}

/// One position of the lattice: the best path that ends here.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    score: f64,
    start: u32,
    id: u32,
}

const UNSET: u32 = u32::MAX;

impl Unigram {
    /// Builds the model. `unk_id` must be a valid id. Scores are `f32`, as SentencePiece
    /// stores them; the lattice sums them in `f64`, as HF does.
    pub(crate) fn new(pieces: Vec<(String, f32)>, unk_id: u32, byte_fallback: bool) -> Self {
        let mut min_score = f64::INFINITY;
        for (_, s) in &pieces {
            min_score = min_score.min(f64::from(*s));
        }
        let keys: Vec<(&[u8], u32, f32)> =
            pieces.iter().enumerate().map(|(i, (p, s))| (p.as_bytes(), i as u32, *s)).collect();
        let trie = DoubleArray::build_with_aux(&keys);
        let byte_ids = if byte_fallback {
            let mut ids = Box::new([0u32; 256]);
            let mut all = true;
            for (b, slot) in ids.iter_mut().enumerate() {
                match trie.get(format!("<0x{b:02X}>").as_bytes()) {
                    Some(id) => *slot = id,
                    None => all = false,
                }
            }
            all.then_some(ids)
        } else {
            None
        };
        let texts = pieces.into_iter().map(|(p, _)| p).collect();
        Unigram { pieces: texts, trie, unk_id, unk_score: min_score - UNK_PENALTY, byte_ids }
    }

    /// Number of pieces.
    pub(crate) fn len(&self) -> usize {
        self.pieces.len()
    }

    /// The id of exactly this piece text.
    pub(crate) fn id_of(&self, piece: &str) -> Option<u32> {
        self.trie.get(piece.as_bytes())
    }

    /// Appends the ids of the best segmentation of `word` to `out`. `lattice` is scratch.
    pub(crate) fn encode_word(&self, word: &str, out: &mut Vec<u32>, lattice: &mut Vec<Node>) {
        let bytes = word.as_bytes();
        let n = bytes.len();
        if n == 0 {
            return;
        }
        lattice.clear();
        lattice.resize(n + 1, Node { score: 0.0, start: UNSET, id: 0 });
        let mut pos = 0;
        while pos < n {
            let here = lattice[pos].score;
            let char_len = utf8_len(bytes[pos]);
            let mut has_single = false;
            self.trie.common_prefix_search_aux(&bytes[pos..], |len, id, score| {
                let end = pos + len;
                let cand = here + f64::from(score);
                if let Some(node) = lattice.get_mut(end) {
                    if node.start == UNSET || cand > node.score {
                        *node = Node { score: cand, start: pos as u32, id };
                    }
                }
                has_single |= len == char_len;
            });
            if !has_single {
                let end = (pos + char_len).min(n);
                let cand = here + self.unk_score;
                let node = &mut lattice[end];
                if node.start == UNSET || cand > node.score {
                    *node = Node { score: cand, start: pos as u32, id: self.unk_id };
                }
            }
            pos += char_len;
        }
        // Walk back from the end, then reverse what was appended.
        let first = out.len();
        let mut end = n;
        let mut unk_run_start: Option<usize> = None; // start of the pending run of unk nodes
        let mut unk_run_end = 0;
        while end > 0 {
            let node = lattice[end];
            let start = node.start as usize;
            if node.start == UNSET || start >= end {
                break; // unreachable for a well-formed lattice; never loop forever
            }
            if node.id == self.unk_id {
                if unk_run_start.is_none() {
                    unk_run_end = end;
                }
                unk_run_start = Some(start);
            } else {
                if let Some(s) = unk_run_start.take() {
                    self.push_unknown(&word[s..unk_run_end], out);
                }
                out.push(node.id);
            }
            end = start;
        }
        if let Some(s) = unk_run_start {
            self.push_unknown(&word[s..unk_run_end], out);
        }
        out[first..].reverse();
    }

    /// A run of unknown characters (pushed in reverse order, like the rest of the walk):
    /// its id if the whole run happens to be a piece, else its bytes as `<0xXX>` pieces when
    /// byte fallback is on, else `<unk>`.
    fn push_unknown(&self, run: &str, out: &mut Vec<u32>) {
        if let Some(id) = self.trie.get(run.as_bytes()) {
            out.push(id);
        } else if let Some(bytes) = &self.byte_ids {
            out.extend(run.bytes().rev().map(|b| bytes[b as usize]));
        } else {
            out.push(self.unk_id);
        }
    }
}

/// Length of the UTF-8 sequence that starts with byte `b` (`b` starts a char: the text is
/// a `&str` and positions only move by whole chars).
#[inline(always)]
fn utf8_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Unigram {
        let v = vec![
            ("<unk>", 0.0),
            ("\u{2581}", -2.0),
            ("a", -3.0),
            ("b", -3.0),
            ("ab", -4.0),
            ("\u{2581}ab", -4.5),
            ("c", -5.0),
        ];
        Unigram::new(v.into_iter().map(|(p, s)| (p.to_string(), s as f32)).collect(), 0, false)
    }

    #[test]
    fn best_path_and_unknowns() {
        let m = model();
        let mut out = vec![];
        let mut lat = vec![];
        m.encode_word("\u{2581}ab", &mut out, &mut lat);
        assert_eq!(out, [5]);
        out.clear();
        m.encode_word("abc", &mut out, &mut lat);
        assert_eq!(out, [4, 6]);
        out.clear();
        // x, y, z are unknown: fused into one <unk>.
        m.encode_word("axyzb", &mut out, &mut lat);
        assert_eq!(out, [2, 0, 3]);
        out.clear();
        m.encode_word("\u{e9}\u{4e2d}\u{1f600}", &mut out, &mut lat);
        assert_eq!(out, [0]);
    }
}
