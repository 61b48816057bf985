//! Text normalisation: SentencePiece's precompiled charsmap, then HF's `Strip` and `Replace`.
//!
//! The charsmap is applied exactly as HF `tokenizers` applies it (its `Precompiled`
//! normaliser), quirks included: the text is cut into extended grapheme clusters
//! (`unicode-segmentation` 1.12.0, the version HF's wheels are built with); a cluster shorter
//! than 6 bytes is looked up whole, and the *shortest* rule that matches its start replaces the
//! whole cluster (so `Ａ` + U+0301 becomes `A`: the accent is dropped); otherwise each
//! character is looked up alone. ASCII text takes a table-driven fast path that gives the
//! same result.

use unicode_segmentation::UnicodeSegmentation;

use crate::error::TokenizerError;

/// SentencePiece's compiled normalisation rules: a Darts-clone double-array trie over the
/// source strings, whose values are offsets into a blob of NUL-terminated replacements.
#[derive(Clone, Debug)]
pub(crate) struct CharsMap {
    trie: Vec<u32>,
    normalized: String,
    /// For each ASCII byte: its replacement as (start, end) in `normalized`, if it has one.
    ascii: [Option<(u32, u32)>; 128],
    /// ASCII bytes that map to themselves and never start a multi-byte cluster (not CR).
    plain: [bool; 128],
}

impl CharsMap {
    /// Reads the blob: a little-endian `u32` trie size in bytes, the trie, the replacements.
    pub(crate) fn parse(blob: &[u8], origin: &str, field: &str) -> Result<Self, TokenizerError> {
        let bad = |reason: &str| TokenizerError::invalid(origin, field, format!("<{} bytes>", blob.len()), reason);
        if blob.len() < 4 {
            return Err(bad("shorter than its 4-byte header"));
        }
        let trie_bytes = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let rest = &blob[4..];
        if trie_bytes > rest.len() || trie_bytes & 3 != 0 {
            return Err(bad("trie size in the header does not fit the data"));
        }
        let trie: Vec<u32> =
            rest[..trie_bytes].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if trie.is_empty() {
            return Err(bad("empty trie"));
        }
        let normalized =
            String::from_utf8(rest[trie_bytes..].to_vec()).map_err(|_| bad("replacement strings are not UTF-8"))?;
        let mut map = CharsMap { trie, normalized, ascii: [None; 128], plain: [false; 128] };
        for b in 0u8..128 {
            map.ascii[b as usize] = map.lookup(&[b]);
            map.plain[b as usize] = map.ascii[b as usize].is_none() && b != b'\r';
        }
        Ok(map)
    }

    /// The replacement of the shortest rule matching the start of `key`, as a range of
    /// `normalized` (HF's `Precompiled::transform`). A NUL byte ends the key.
    fn lookup(&self, key: &[u8]) -> Option<(u32, u32)> {
        let trie = &self.trie[..];
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let mut pos = offset(*trie.first()?);
        for &c in key {
            if c == 0 {
                return None;
            }
            pos ^= c as usize;
            let unit = *trie.get(pos)?;
            if unit & ((1 << 31) | 0xff) != u32::from(c) {
                return None;
            }
            pos ^= offset(unit);
            if (unit >> 8) & 1 == 1 {
                let start = (*trie.get(pos)? & ((1 << 31) - 1)) as usize;
                let bytes = self.normalized.as_bytes();
                if start > bytes.len() || !self.normalized.is_char_boundary(start) {
                    return None; // a corrupt value: treat as "no rule"
                }
                let end = bytes[start..].iter().position(|&b| b == 0).map_or(bytes.len(), |p| start + p);
                return Some((start as u32, end as u32));
            }
        }
        None
    }

    #[inline]
    fn replacement(&self, r: (u32, u32)) -> &str {
        // Both ends were checked to be char boundaries (a NUL byte is one) at lookup.
        self.normalized.get(r.0 as usize..r.1 as usize).unwrap_or("")
    }

    fn transform(&self, s: &str) -> Option<&str> {
        self.lookup(s.as_bytes()).map(|r| self.replacement(r))
    }

    /// Appends the normalised form of `text` to `out`.
    pub(crate) fn normalize(&self, text: &str, out: &mut String) {
        let b = text.as_bytes();
        let n = b.len();
        // A break is certain between two ASCII bytes, except inside CR LF (UAX #29: no ASCII
        // character extends, prepends to or joins a cluster).
        let sure_break = |i: usize| b[i - 1] < 0x80 && b[i] < 0x80 && !(b[i - 1] == b'\r' && b[i] == b'\n');
        let mut i = 0;
        while i < n {
            // Fast path: copy a run of ASCII bytes that map to themselves, except a last one
            // followed by a non-ASCII byte (it may carry a combining mark).
            let mut j = i;
            while j < n && b[j] < 0x80 && self.plain[b[j] as usize] {
                j += 1;
            }
            let end = if j < n && b[j] >= 0x80 { j.saturating_sub(1).max(i) } else { j };
            if end > i {
                out.push_str(&text[i..end]);
                i = end;
                continue;
            }
            let c = b[i];
            if c < 0x80 && (i + 1 == n || sure_break(i + 1)) {
                match self.ascii[c as usize] {
                    Some(r) => out.push_str(self.replacement(r)),
                    None => out.push(c as char),
                }
                i += 1;
                continue;
            }
            // Segment the stretch up to the next certain break; `i` is a certain break too.
            let mut e = i + 1;
            while e < n && !sure_break(e) {
                e += 1;
            }
            for g in text[i..e].graphemes(true) {
                self.normalize_grapheme(g, out);
            }
            i = e;
        }
    }

    fn normalize_grapheme(&self, g: &str, out: &mut String) {
        if g.len() < 6 {
            if let Some(r) = self.transform(g) {
                out.push_str(r);
                return;
            }
        }
        for (k, ch) in g.char_indices() {
            match self.transform(&g[k..k + ch.len_utf8()]) {
                Some(r) => out.push_str(r),
                None => out.push(ch),
            }
        }
    }
}

/// What a `Replace` step looks for.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// A literal string.
    Literal(String),
    /// `min` or more repetitions of one character: the regexes `c{n,}` and `c+`, which is
    /// what SentencePiece converters emit (`" {2,}"`).
    Run { ch: char, min: usize },
}

/// One normalisation step.
#[derive(Clone, Debug)]
pub(crate) enum NormStep {
    Precompiled(Box<CharsMap>),
    Strip { left: bool, right: bool },
    Replace { pattern: Pattern, content: String },
    Prepend(String),
    Lowercase,
}

/// A sequence of normalisation steps, applied in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Normalizer {
    pub(crate) steps: Vec<NormStep>,
}

impl Normalizer {
    /// The pipeline HF's `SpmConverter` builds: charsmap (if any), strip right, `" {2,}"` → `▁`.
    pub(crate) fn spm(charsmap: Option<CharsMap>) -> Self {
        let mut steps = Vec::new();
        if let Some(c) = charsmap {
            steps.push(NormStep::Precompiled(Box::new(c)));
        }
        steps.push(NormStep::Strip { left: false, right: true });
        steps.push(NormStep::Replace { pattern: Pattern::Run { ch: ' ', min: 2 }, content: "\u{2581}".to_string() });
        Normalizer { steps }
    }

    /// `text` normalised, in a new string.
    pub(crate) fn normalize_owned(&self, text: &str) -> String {
        let (mut out, mut tmp) = (String::new(), String::new());
        self.apply(text, &mut out, &mut tmp);
        out
    }

    /// Normalises `text` into `out` (cleared first); `tmp` is scratch space.
    pub(crate) fn apply(&self, text: &str, out: &mut String, tmp: &mut String) {
        out.clear();
        let mut steps = &self.steps[..];
        match steps.first() {
            // Normalise straight from the input, saving a copy.
            Some(NormStep::Precompiled(map)) => {
                map.normalize(text, out);
                steps = &steps[1..];
            }
            _ => out.push_str(text),
        }
        for step in steps {
            match step {
                NormStep::Precompiled(map) => {
                    tmp.clear();
                    map.normalize(out, tmp);
                    std::mem::swap(out, tmp);
                }
                NormStep::Strip { left, right } => {
                    if *right {
                        let keep = out.trim_end_matches(char::is_whitespace).len();
                        out.truncate(keep);
                    }
                    if *left {
                        let drop = out.len() - out.trim_start_matches(char::is_whitespace).len();
                        out.drain(..drop);
                    }
                }
                NormStep::Replace { pattern, content } => {
                    if replace(out, pattern, content, tmp) {
                        std::mem::swap(out, tmp);
                    }
                }
                NormStep::Prepend(p) => {
                    if !out.is_empty() {
                        out.insert_str(0, p);
                    }
                }
                NormStep::Lowercase => {
                    if out.chars().any(|c| !c.is_lowercase()) {
                        tmp.clear();
                        tmp.extend(out.chars().flat_map(char::to_lowercase));
                        std::mem::swap(out, tmp);
                    }
                }
            }
        }
    }
}

/// Writes `s` with `pattern` replaced into `out`; returns false (and leaves `out` alone)
/// when nothing matched.
fn replace(s: &str, pattern: &Pattern, content: &str, out: &mut String) -> bool {
    match pattern {
        Pattern::Literal(lit) => {
            if lit.is_empty() || !s.contains(lit.as_str()) {
                return false;
            }
            out.clear();
            let mut last = 0;
            for (at, _) in s.match_indices(lit.as_str()) {
                out.push_str(&s[last..at]);
                out.push_str(content);
                last = at + lit.len();
            }
            out.push_str(&s[last..]);
            true
        }
        Pattern::Run { ch, min } => {
            let mut buf = [0u8; 4];
            let unit: &str = ch.encode_utf8(&mut buf);
            let want = unit.repeat((*min).max(1));
            if !s.contains(want.as_str()) {
                return false;
            }
            out.clear();
            let mut rest = s;
            while let Some(at) = rest.find(*ch) {
                out.push_str(&rest[..at]);
                let run = &rest[at..];
                let len = run.len() - run.trim_start_matches(*ch).len();
                if len / unit.len() >= (*min).max(1) {
                    out.push_str(content);
                } else {
                    out.push_str(&run[..len]);
                }
                rest = &run[len..];
            }
            out.push_str(rest);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_runs_are_replaced_and_single_spaces_kept() {
        let mut out = String::new();
        let p = Pattern::Run { ch: ' ', min: 2 };
        assert!(replace("a  b c     d ", &p, "_", &mut out));
        assert_eq!(out, "a_b c_d ");
        assert!(!replace("a b", &p, "_", &mut out));
    }

    #[test]
    fn literal_replace() {
        let mut out = String::new();
        let p = Pattern::Literal("ab".into());
        assert!(replace("xababy", &p, "-", &mut out));
        assert_eq!(out, "x--y");
    }

    #[test]
    fn strip_right_then_collapse() {
        let n = Normalizer::spm(None);
        let (mut out, mut tmp) = (String::new(), String::new());
        n.apply("  a   b \t ", &mut out, &mut tmp);
        assert_eq!(out, "\u{2581}a\u{2581}b");
    }

    #[test]
    fn malformed_charsmaps_are_errors() {
        assert!(CharsMap::parse(&[], "m", "f").is_err());
        assert!(CharsMap::parse(&[8, 0, 0, 0, 1], "m", "f").is_err());
        assert!(CharsMap::parse(&[0, 0, 0, 0], "m", "f").is_err());
        // A one-unit trie with garbage in it never panics.
        let m = CharsMap::parse(&[4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, b'x'], "m", "f").unwrap();
        let mut out = String::new();
        m.normalize("abc\u{e9}\u{301}\r\n", &mut out);
        assert_eq!(out, "abc\u{e9}\u{301}\r\n");
    }
}
