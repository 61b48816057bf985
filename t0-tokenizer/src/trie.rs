//! A byte-wise double-array trie: the piece dictionary the unigram lattice searches.
//!
//! Each state is one [`Unit`] of 12 bytes; following byte `c` from state `s` goes to
//! `t = base(s) + c`, valid when `check(t) == s`. So a common-prefix search costs one
//! array read and one compare per byte, with no allocation. Built once at load, in a few
//! milliseconds for T5's 32,100 pieces.
//!
//! Hand-written rather than taken from a crate: the build and the search are about 150
//! lines together, and the search is the innermost loop of encoding, written to be inlined
//! into the Viterbi pass.

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Unit {
    base: u32,
    check: u32,
    value: u32,
}

const FREE: Unit = Unit { base: 0, check: NONE, value: NONE };

/// A map from byte strings to `u32` values, with fast common-prefix search.
#[derive(Clone, Debug)]
pub(crate) struct DoubleArray {
    units: Vec<Unit>,
}

impl DoubleArray {
    /// Builds the trie. `keys` may be in any order; for a key given more than once, the last
    /// value wins. Empty keys are ignored. Values must be below `u32::MAX`.
    pub(crate) fn build(keys: &[(&[u8], u32)]) -> Self {
        let mut sorted: Vec<(&[u8], u32)> = keys.iter().copied().filter(|(k, v)| !k.is_empty() && *v != NONE).collect();
        // Stable sort keeps the input order among equal keys; keep the last of each run.
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut dedup: Vec<(&[u8], u32)> = Vec::with_capacity(sorted.len());
        for (k, v) in sorted {
            match dedup.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => dedup.push((k, v)),
            }
        }
        let mut b = Builder { units: vec![FREE; 256], next_free: 1 };
        b.units[0].check = 0; // the root is in use
        if !dedup.is_empty() {
            b.place_all(&dedup);
        }
        // Trailing free units are never reached; keep the array tight.
        while b.units.len() > 1 && b.units.last().is_some_and(|u| u.check == NONE) {
            b.units.pop();
        }
        b.units.shrink_to_fit();
        DoubleArray { units: b.units }
    }

    /// Calls `f(len, value)` for every key that is a prefix of `text`, shortest first.
    #[inline(always)]
    pub(crate) fn common_prefix_search(&self, text: &[u8], mut f: impl FnMut(usize, u32)) {
        let units = &self.units[..];
        let mut s = 0usize;
        for (i, &c) in text.iter().enumerate() {
            // `base` is at most units.len(), so the sum cannot overflow.
            let t = units[s].base as usize + c as usize;
            match units.get(t) {
                Some(u) if u.check == s as u32 => {
                    s = t;
                    if u.value != NONE {
                        f(i + 1, u.value);
                    }
                }
                _ => return,
            }
        }
    }

    /// The value of exactly `key`, if it is a key.
    pub(crate) fn get(&self, key: &[u8]) -> Option<u32> {
        let mut s = 0usize;
        for &c in key {
            let t = self.units[s].base as usize + c as usize;
            match self.units.get(t) {
                Some(u) if u.check == s as u32 => s = t,
                _ => return None,
            }
        }
        match self.units[s].value {
            NONE => None,
            v if !key.is_empty() => Some(v),
            _ => None,
        }
    }
}

struct Builder {
    units: Vec<Unit>,
    /// Every unit below this is in use.
    next_free: usize,
}

impl Builder {
    /// Places every key (sorted, unique, non-empty). Iterative, so that a very long key
    /// cannot overflow the stack.
    fn place_all(&mut self, keys: &[(&[u8], u32)]) {
        // (state, first key, end key, depth): the state stands for the common prefix of
        // length `depth` of keys[first..end].
        let mut work: Vec<(usize, usize, usize, usize)> = vec![(0, 0, keys.len(), 0)];
        let mut groups: Vec<(u8, usize, usize)> = Vec::new();
        while let Some((s, mut lo, hi, depth)) = work.pop() {
            // A key that ends here sorts first and sets this state's value.
            if keys[lo].0.len() == depth {
                self.units[s].value = keys[lo].1;
                lo += 1;
            }
            if lo == hi {
                continue;
            }
            groups.clear();
            let mut i = lo;
            while i < hi {
                let c = keys[i].0[depth];
                let mut j = i + 1;
                while j < hi && keys[j].0[depth] == c {
                    j += 1;
                }
                groups.push((c, i, j));
                i = j;
            }
            let base = self.find_base(&groups);
            self.units[s].base = base as u32;
            for &(c, i, j) in &groups {
                let t = base + c as usize;
                self.units[t].check = s as u32;
                work.push((t, i, j, depth + 1));
            }
        }
    }

    /// The smallest base at which every child label lands on a free unit (never 0, so that
    /// no child can land on the root).
    fn find_base(&mut self, groups: &[(u8, usize, usize)]) -> usize {
        while self.next_free < self.units.len() && self.units[self.next_free].check != NONE {
            self.next_free += 1;
        }
        let first = groups[0].0 as usize;
        let mut pos = self.next_free.max(first + 1);
        loop {
            let base = pos - first;
            if self.units.len() < base + 256 {
                self.units.resize(base + 256, FREE);
            }
            if groups.iter().all(|&(c, _, _)| self.units[base + c as usize].check == NONE) {
                return base;
            }
            pos += 1;
            while pos < self.units.len() && self.units[pos].check != NONE {
                pos += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_exact_lookups() {
        let keys: Vec<(&[u8], u32)> = vec![
            (b"a", 1),
            (b"ab", 2),
            (b"abc", 3),
            (b"b", 4),
            (b"abd", 5),
            (b"", 9),
            ("\u{2581}the".as_bytes(), 6),
            (b"ab", 7), // duplicate: last wins
        ];
        let t = DoubleArray::build(&keys);
        let mut got = vec![];
        t.common_prefix_search(b"abcz", |n, v| got.push((n, v)));
        assert_eq!(got, vec![(1, 1), (2, 7), (3, 3)]);
        assert_eq!(t.get(b"abd"), Some(5));
        assert_eq!(t.get(b"abe"), None);
        assert_eq!(t.get(b""), None);
        assert_eq!(t.get("\u{2581}the".as_bytes()), Some(6));
        assert_eq!(t.get("\u{2581}".as_bytes()), None);
        let mut none = vec![];
        t.common_prefix_search(b"zzz", |n, v| none.push((n, v)));
        assert!(none.is_empty());
    }

    #[test]
    fn every_key_is_found_among_many() {
        let words: Vec<String> = (0..5000).map(|i| format!("w{}x{}", i * 7919 % 10007, i)).collect();
        let keys: Vec<(&[u8], u32)> = words.iter().enumerate().map(|(i, w)| (w.as_bytes(), i as u32)).collect();
        let t = DoubleArray::build(&keys);
        for (i, w) in words.iter().enumerate() {
            assert_eq!(t.get(w.as_bytes()), Some(i as u32), "{w}");
        }
        assert_eq!(t.get(b"w"), None);
    }

    #[test]
    fn empty_trie_finds_nothing() {
        let t = DoubleArray::build(&[]);
        assert_eq!(t.get(b"a"), None);
        t.common_prefix_search(&[0, 255, 7], |_, _| panic!("no keys"));
    }
}
