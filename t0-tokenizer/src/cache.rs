//! A per-thread cache of word segmentations.
//!
//! A word's ids depend only on the word and the model, and natural text repeats words a lot,
//! so a hash lookup replaces most Viterbi passes (HF `tokenizers` caches words the same way).
//! The cache lives in thread-local scratch space: no locks, and `Tokenizer` stays
//! `Send + Sync`. It belongs to one tokenizer at a time (by a unique instance number) and is
//! cleared when a different tokenizer uses the thread or when it is full, so its memory is
//! bounded (about 2 MB per thread at most).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Words longer than this (in bytes) are not cached: rare, and costly to hash.
pub(crate) const MAX_WORD: usize = 48;
/// At most this many words are kept.
const MAX_WORDS: usize = 16_384;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A number no other tokenizer instance of this process has.
pub(crate) fn new_owner_id() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// Word → ids, for one tokenizer.
#[derive(Default)]
pub(crate) struct WordCache {
    owner: u64,
    map: HashMap<Box<str>, Range<u32>, BuildHasherDefault<FxHasher>>,
    ids: Vec<u32>,
}

impl WordCache {
    /// Makes the cache serve tokenizer `owner`, dropping another tokenizer's entries.
    #[inline]
    pub(crate) fn claim(&mut self, owner: u64) {
        if self.owner != owner {
            self.clear();
            self.owner = owner;
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.ids.clear();
    }

    /// The cached ids of `word`, if any.
    #[inline]
    pub(crate) fn get(&self, word: &str) -> Option<&[u32]> {
        let r = self.map.get(word)?;
        self.ids.get(r.start as usize..r.end as usize)
    }

    /// Remembers the ids of `word`.
    pub(crate) fn insert(&mut self, word: &str, ids: &[u32]) {
        if self.map.len() >= MAX_WORDS {
            self.clear();
        }
        let start = self.ids.len() as u32;
        self.ids.extend_from_slice(ids);
        self.map.insert(word.into(), start..self.ids.len() as u32);
    }
}

/// The Fx hash (as in rustc): a multiply-rotate over 8-byte chunks. Fast on short keys, and
/// the keys are not attacker-chosen in a way that matters: the cache is bounded and private.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            let (head, rest) = bytes.split_at(8);
            let mut a = [0u8; 8];
            a.copy_from_slice(head);
            self.add(u64::from_le_bytes(a));
            bytes = rest;
        }
        if bytes.len() >= 4 {
            let (head, rest) = bytes.split_at(4);
            let mut a = [0u8; 4];
            a.copy_from_slice(head);
            self.add(u64::from(u32::from_le_bytes(a)));
            bytes = rest;
        }
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_and_evicts() {
        let mut c = WordCache::default();
        c.claim(7);
        c.insert("\u{2581}the", &[8]);
        c.insert("\u{2581}walks", &[3, 4]);
        assert_eq!(c.get("\u{2581}the"), Some(&[8][..]));
        assert_eq!(c.get("\u{2581}walks"), Some(&[3, 4][..]));
        assert_eq!(c.get("x"), None);
        c.claim(7);
        assert!(c.get("\u{2581}the").is_some());
        c.claim(8);
        assert!(c.get("\u{2581}the").is_none());
        for i in 0..MAX_WORDS + 5 {
            c.insert(&format!("w{i}"), &[i as u32]);
        }
        assert!(c.map.len() <= MAX_WORDS);
        assert_eq!(c.get(&format!("w{}", MAX_WORDS + 4)), Some(&[(MAX_WORDS + 4) as u32][..]));
    }
}
