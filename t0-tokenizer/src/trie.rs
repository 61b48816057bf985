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
    /// A payload stored with the value (the unigram model keeps the piece score here, so
    /// one unit read gives both).
    aux: f32,
}

const FREE: Unit = Unit { base: 0, check: NONE, value: NONE, aux: 0.0 };

/// A map from byte strings to `u32` values, with fast common-prefix search.
#[derive(Clone, Debug)]
pub(crate) struct DoubleArray {
    units: Vec<Unit>,
}

impl DoubleArray {
    /// Builds the trie. `keys` may be in any order; for a key given more than once, the last
    /// value wins. Empty keys are ignored. Values must be below `u32::MAX`.
    pub(crate) fn build(keys: &[(&[u8], u32)]) -> Self {
        let with_aux: Vec<(&[u8], u32, f32)> = keys.iter().map(|&(k, v)| (k, v, 0.0)).collect();
        Self::build_with_aux(&with_aux)
    }

    /// As [`DoubleArray::build`], each key also carrying an `f32` payload.
    pub(crate) fn build_with_aux(keys: &[(&[u8], u32, f32)]) -> Self {
        let mut sorted: Vec<(&[u8], u32, f32)> =
            keys.iter().copied().filter(|(k, v, _)| !k.is_empty() && *v != NONE).collect();
        // Stable sort keeps the input order among equal keys; keep the last of each run.
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut dedup: Vec<(&[u8], u32, f32)> = Vec::with_capacity(sorted.len());
        for (k, v, a) in sorted {
            match dedup.last_mut() {
                Some(last) if last.0 == k => {
                    last.1 = v;
                    last.2 = a;
                }
                _ => dedup.push((k, v, a)),
            }
        }
        let mut b = Builder::new();
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
        self.common_prefix_search_aux(text, |len, v, _| f(len, v))
    }

    /// As [`DoubleArray::common_prefix_search`], with each key's payload.
    #[inline(always)]
    pub(crate) fn common_prefix_search_aux(&self, text: &[u8], mut f: impl FnMut(usize, u32, f32)) {
        let units = &self.units[..];
        let mut s = 0usize;
        for (i, &c) in text.iter().enumerate() {
            // `base` is at most units.len(), so the sum cannot overflow.
            let t = units[s].base as usize + c as usize;
            match units.get(t) {
                Some(u) if u.check == s as u32 => {
                    s = t;
                    if u.value != NONE {
                        f(i + 1, u.value, u.aux);
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

/// Double-array construction with a first-fit search over a list of free units. A free unit
/// that fails too often as the first child's slot leaves the candidate list (it stays free for
/// other labels), which keeps the search short: darts-clone's trick.
struct Builder {
    units: Vec<Unit>,
    /// Doubly linked list of candidate free units; index `units.len()` is not used, the
    /// sentinel is `HEAD`.
    next: Vec<u32>,
    prev: Vec<u32>,
    fails: Vec<u8>,
}

const HEAD: usize = 0; // the root's unit is never free, so its links serve as the list head
const MAX_FAILS: u8 = 8;

impl Builder {
    fn new() -> Self {
        let mut b = Builder { units: vec![FREE], next: vec![HEAD as u32], prev: vec![HEAD as u32], fails: vec![0] };
        b.units[0].check = 0; // the root is in use
        b.grow(1024);
        b
    }

    /// Appends `n` free units to the array and to the candidate list.
    fn grow(&mut self, n: usize) {
        for _ in 0..n {
            let i = self.units.len();
            self.units.push(FREE);
            let last = self.prev[HEAD] as usize;
            self.next.push(HEAD as u32);
            self.prev.push(last as u32);
            self.fails.push(0);
            self.next[last] = i as u32;
            self.prev[HEAD] = i as u32;
        }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i] as usize, self.next[i] as usize);
        if self.next[p] as usize == i {
            self.next[p] = n as u32;
            self.prev[n] = p as u32;
        }
        self.next[i] = i as u32; // mark as out of the list
        self.prev[i] = i as u32;
    }

    fn in_list(&self, i: usize) -> bool {
        self.next[i] as usize != i
    }

    /// Places every key (sorted, unique, non-empty). Iterative, so that a very long key
    /// cannot overflow the stack.
    fn place_all(&mut self, keys: &[(&[u8], u32, f32)]) {
        // (state, first key, end key, depth): the state stands for the common prefix of
        // length `depth` of keys[first..end].
        let mut work: Vec<(usize, usize, usize, usize)> = vec![(0, 0, keys.len(), 0)];
        let mut groups: Vec<(u8, usize, usize)> = Vec::new();
        while let Some((s, mut lo, hi, depth)) = work.pop() {
            // A key that ends here sorts first and sets this state's value.
            if keys[lo].0.len() == depth {
                self.units[s].value = keys[lo].1;
                self.units[s].aux = keys[lo].2;
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
                if self.in_list(t) {
                    self.unlink(t);
                }
                work.push((t, i, j, depth + 1));
            }
        }
    }

    /// A base at which every child label lands on a free unit (never 0, so that no child
    /// can land on the root).
    fn find_base(&mut self, groups: &[(u8, usize, usize)]) -> usize {
        let first = groups[0].0 as usize;
        let mut p = self.next[HEAD] as usize;
        loop {
            if p == HEAD {
                // Out of candidates: extend the array and go on with the new units.
                let start = self.units.len();
                self.grow(256);
                p = start;
            }
            if p <= first {
                p = self.next[p] as usize;
                continue;
            }
            let base = p - first;
            if self.units.len() < base + 256 {
                self.grow(base + 256 - self.units.len());
            }
            if groups.iter().all(|&(c, _, _)| self.units[base + c as usize].check == NONE) {
                return base;
            }
            let following = self.next[p] as usize;
            self.fails[p] = self.fails[p].saturating_add(1);
            if self.fails[p] >= MAX_FAILS {
                self.unlink(p);
            }
            p = following;
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
