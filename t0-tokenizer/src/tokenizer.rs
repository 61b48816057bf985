//! [`Tokenizer`]: loading entry points, encoding one text or a batch.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::added::{AddedVocab, Split};
use crate::cache::{WordCache, MAX_WORD};
use crate::decode::{Decoder, LegacyDecode};
use crate::error::TokenizerError;
use crate::normalizer::Normalizer;
use crate::pre_tokenizer::PreTokenizer;
use crate::unigram::{Node, Unigram};

/// An exact T5 / T0 tokenizer: SentencePiece unigram, as HF's `T5TokenizerFast` runs it.
///
/// Cheap to clone (the vocabulary is shared) and usable from many threads at once.
///
/// ```
/// # fn main() -> Result<(), t0_tokenizer::TokenizerError> {
/// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
/// use t0_tokenizer::Tokenizer;
/// let tok = Tokenizer::from_spiece_file(&dir.join("spiece.model"))?;
/// let ids = tok.encode("translate English to German: The house is wonderful.");
/// assert_eq!(ids, [13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1]);
/// assert_eq!(tok.decode(&ids, true), "translate English to German: The house is wonderful.");
/// assert_eq!(tok.tokens(&ids[..2]), ["▁translate", "▁English"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

/// The parts of a tokenizer; built by the spiece and tokenizer.json loaders.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) model: Unigram,
    pub(crate) added: AddedVocab,
    pub(crate) normalizer: Normalizer,
    pub(crate) pre: PreTokenizer,
    pub(crate) decoder: Decoder,
    /// Ids put before / after the text when special tokens are added.
    pub(crate) prefix: Vec<u32>,
    pub(crate) suffix: Vec<u32>,
    pub(crate) eos_id: u32,
    pub(crate) pad_id: u32,
    pub(crate) unk_id: u32,
    pub(crate) legacy: LegacyDecode,
    /// This instance's number, which owns its entries in the per-thread word cache.
    pub(crate) cache_id: u64,
}

/// A batch of encoded texts, right-padded to the longest.
///
/// ```
/// # fn main() -> Result<(), t0_tokenizer::TokenizerError> {
/// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
/// let tok = t0_tokenizer::Tokenizer::from_dir(&dir)?;
/// let b = tok.encode_batch(&["Hello world", "Hi"], true);
/// assert_eq!(b.lengths, [3, 2]);
/// assert_eq!(b.ids[1], [2018, 1, 0]); // "Hi", </s>, <pad>
/// assert_eq!(b.attention_mask[1], [1, 1, 0]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// One row per text, padded on the right with [`Tokenizer::pad_id`].
    pub ids: Vec<Vec<u32>>,
    /// 1 for a real token, 0 for padding; same shape as `ids`.
    pub attention_mask: Vec<Vec<u8>>,
    /// The unpadded length of each row.
    pub lengths: Vec<usize>,
}

/// Reusable buffers for one encoding call (kept per thread, so encoding allocates little).
#[derive(Default)]
struct Scratch {
    splits: Vec<Split>,
    nsplits: Vec<Split>,
    norm: String,
    norm_tmp: String,
    pre: String,
    pre_tmp: String,
    words: Vec<Range<usize>>,
    words_tmp: Vec<Range<usize>>,
    lattice: Vec<Node>,
    cache: WordCache,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Tokenizer {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Tokenizer { inner: Arc::new(inner) }
    }

    /// Loads the tokenizer of a model directory: `spiece.model` when there is one (with
    /// `tokenizer_config.json` if present: `extra_ids`, special tokens, `add_prefix_space`,
    /// `legacy`; T5's defaults otherwise), else `tokenizer.json`.
    ///
    /// The error for a directory with neither names both files.
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// let tok = t0_tokenizer::Tokenizer::from_dir(&dir).unwrap();
    /// assert_eq!(tok.vocab_size(), 32100);
    /// let err = t0_tokenizer::Tokenizer::from_dir(std::path::Path::new("/nonexistent")).unwrap_err();
    /// assert!(err.to_string().contains("neither spiece.model nor tokenizer.json"));
    /// ```
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let spiece = dir.join("spiece.model");
        if spiece.is_file() {
            let config_path = dir.join("tokenizer_config.json");
            let config = if config_path.is_file() {
                let text = read_to_string(&config_path)?;
                crate::config::T5Config::parse(&text, &config_path.display().to_string())?
            } else {
                crate::config::T5Config::default()
            };
            let bytes = read(&spiece)?;
            return crate::spiece::build(&bytes, &spiece.display().to_string(), &config).map(Self::from_inner);
        }
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_tokenizer_json(&json);
        }
        Err(TokenizerError::NotFound { dir: dir.to_path_buf() })
    }

    /// Loads a SentencePiece `spiece.model` file, with T5's defaults (100 extra ids).
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// let tok = t0_tokenizer::Tokenizer::from_spiece_file(&dir.join("spiece.model")).unwrap();
    /// assert_eq!((tok.pad_id(), tok.eos_id(), tok.unk_id()), (0, 1, 2));
    /// ```
    pub fn from_spiece_file(path: &Path) -> Result<Self, TokenizerError> {
        let bytes = read(path)?;
        Self::build_spiece(&bytes, &path.display().to_string())
    }

    /// Loads a SentencePiece model from its bytes, with T5's defaults.
    ///
    /// ```
    /// let err = t0_tokenizer::Tokenizer::from_spiece_bytes(b"not a model").unwrap_err();
    /// assert!(err.to_string().starts_with("<bytes>: malformed protobuf"));
    /// ```
    pub fn from_spiece_bytes(bytes: &[u8]) -> Result<Self, TokenizerError> {
        Self::build_spiece(bytes, "<bytes>")
    }

    fn build_spiece(bytes: &[u8], origin: &str) -> Result<Self, TokenizerError> {
        crate::spiece::build(bytes, origin, &crate::config::T5Config::default()).map(Self::from_inner)
    }

    /// Loads an HF `tokenizer.json` with a `Unigram` model (such as T5's).
    ///
    /// Supported parts: normalizers `Precompiled`, `Strip`, `Replace` (literal or `c{n,}` /
    /// `c+` regexes), `Prepend`, `Lowercase`, `Sequence`; pre-tokenizers `Metaspace`,
    /// `WhitespaceSplit`, `Sequence`; a `Metaspace` decoder; a `TemplateProcessing`
    /// post-processor; added tokens with all their flags. Anything else is an
    /// [`TokenizerError::Unsupported`] naming the field.
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// let tok = t0_tokenizer::Tokenizer::from_tokenizer_json(&dir.join("tokenizer.json")).unwrap();
    /// assert_eq!(tok.encode("Hello world"), [8774, 296, 1]);
    /// ```
    pub fn from_tokenizer_json(path: &Path) -> Result<Self, TokenizerError> {
        let text = read_to_string(path)?;
        crate::json::build(&text, &path.display().to_string()).map(Self::from_inner)
    }

    /// Encodes `text` with `</s>` appended, as HF's `T5TokenizerFast(text).input_ids`.
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// # let tok = t0_tokenizer::Tokenizer::from_dir(&dir).unwrap();
    /// assert_eq!(tok.encode("The <extra_id_0> walks"), [37, 32099, 10681, 1]);
    /// assert_eq!(tok.encode(""), [1]);
    /// ```
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with(text, true)
    }

    /// Encodes `text`; `add_eos` appends `</s>` (more generally: adds the special tokens of
    /// the tokenizer's post-processor, which for T5 is just `</s>`).
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// # let tok = t0_tokenizer::Tokenizer::from_dir(&dir).unwrap();
    /// assert_eq!(tok.encode_with("Hello world", false), [8774, 296]);
    /// ```
    pub fn encode_with(&self, text: &str, add_eos: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 4 + 2);
        self.encode_into(text, add_eos, &mut out);
        out
    }

    /// Appends the ids of `text` to `out` (no allocation once buffers have grown).
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// # let tok = t0_tokenizer::Tokenizer::from_dir(&dir).unwrap();
    /// let mut ids = vec![];
    /// tok.encode_into("Hello", false, &mut ids);
    /// tok.encode_into("world", true, &mut ids);
    /// assert_eq!(ids, [8774, 296, 1]);
    /// ```
    pub fn encode_into(&self, text: &str, add_eos: bool, out: &mut Vec<u32>) {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => self.encode_scratch(text, add_eos, &mut s, out),
            Err(_) => self.encode_scratch(text, add_eos, &mut Scratch::default(), out),
        })
    }

    /// Encodes several texts and pads them into a rectangle.
    pub fn encode_batch(&self, texts: &[&str], add_eos: bool) -> Batch {
        let mut ids: Vec<Vec<u32>> = texts.iter().map(|t| self.encode_with(t, add_eos)).collect();
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let width = lengths.iter().copied().max().unwrap_or(0);
        let pad = self.inner.pad_id;
        let attention_mask = lengths
            .iter()
            .map(|&n| {
                let mut m = vec![1u8; n];
                m.resize(width, 0);
                m
            })
            .collect();
        for row in &mut ids {
            row.resize(width, pad);
        }
        Batch { ids, attention_mask, lengths }
    }

    /// The piece text of each id (e.g. `▁Is`; added tokens as written, e.g. `<extra_id_0>`).
    /// An id the vocabulary does not have gives the `<unk>` piece's text.
    pub fn tokens(&self, ids: &[u32]) -> Vec<String> {
        let unk = self.id_to_token(self.inner.unk_id).unwrap_or("<unk>");
        ids.iter().map(|&id| self.id_to_token(id).unwrap_or(unk).to_string()).collect()
    }

    /// The text of one id, if the vocabulary has it.
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// # let tok = t0_tokenizer::Tokenizer::from_dir(&dir).unwrap();
    /// assert_eq!(tok.id_to_token(32099), Some("<extra_id_0>"));
    /// assert_eq!(tok.id_to_token(40000), None);
    /// ```
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        let inner = &self.inner;
        if let Some(t) = inner.added.by_id(id) {
            return Some(&t.content);
        }
        inner.model.pieces.get(id as usize).map(String::as_str)
    }

    /// The id of a piece or added token, if the vocabulary has it.
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// # let tok = t0_tokenizer::Tokenizer::from_dir(&dir).unwrap();
    /// assert_eq!(tok.token_to_id("▁The"), Some(37));
    /// assert_eq!(tok.token_to_id("</s>"), Some(1));
    /// ```
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        let inner = &self.inner;
        inner.added.tokens.iter().find(|t| t.content == token).map(|t| t.id).or_else(|| inner.model.id_of(token))
    }

    /// Decodes ids to text as HF's `T5TokenizerFast.decode` (what `AutoTokenizer` gives T0
    /// users) does, with `clean_up_tokenization_spaces=False`. Ids the vocabulary does not
    /// have are skipped.
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// # let tok = t0_tokenizer::Tokenizer::from_dir(&dir).unwrap();
    /// let ids = tok.encode("The <extra_id_0> walks");
    /// assert_eq!(tok.decode(&ids, false), "The<extra_id_0> walks</s>");
    /// assert_eq!(tok.decode(&ids, true), "The walks");
    /// ```
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        crate::decode::decode_fast(&self.inner, ids, skip_special_tokens)
    }

    /// Decodes ids as HF's slow (sentencepiece) `T5Tokenizer.decode` does, with
    /// `clean_up_tokenization_spaces=False`. It differs from [`Tokenizer::decode`] in
    /// whitespace only: it trims the text and puts spaces around special tokens.
    ///
    /// ```
    /// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer");
    /// # let tok = t0_tokenizer::Tokenizer::from_dir(&dir).unwrap();
    /// let ids = tok.encode("The <extra_id_0> walks");
    /// assert_eq!(tok.decode_legacy(&ids, false), "The <extra_id_0> walks</s>");
    /// ```
    pub fn decode_legacy(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        crate::decode::decode_legacy(&self.inner, ids, skip_special_tokens)
    }

    /// Number of ids: pieces plus added tokens (32100 for T5: 32000 pieces, 100 extra ids).
    pub fn vocab_size(&self) -> usize {
        let inner = &self.inner;
        let added_max = inner.added.tokens.iter().map(|t| t.id as usize + 1).max().unwrap_or(0);
        inner.model.len().max(added_max)
    }

    /// Id of `<pad>` (0 for T5), used to pad batches.
    pub fn pad_id(&self) -> u32 {
        self.inner.pad_id
    }

    /// Id of `</s>` (1 for T5).
    pub fn eos_id(&self) -> u32 {
        self.inner.eos_id
    }

    /// Id of `<unk>` (2 for T5).
    pub fn unk_id(&self) -> u32 {
        self.inner.unk_id
    }

    fn encode_scratch(&self, text: &str, add_eos: bool, s: &mut Scratch, out: &mut Vec<u32>) {
        let inner = &*self.inner;
        s.cache.claim(inner.cache_id);
        if add_eos {
            out.extend_from_slice(&inner.prefix);
        }
        let mut splits = std::mem::take(&mut s.splits);
        inner.added.split_raw(text, &mut splits);
        for split in &splits {
            match split {
                Split::Token(id) => out.push(*id),
                Split::Text(r) => self.encode_segment(&text[r.clone()], r.start == 0, s, out),
            }
        }
        s.splits = splits;
        if add_eos {
            out.extend_from_slice(&inner.suffix);
        }
    }

    /// Normalises, pre-tokenizes and segments one stretch of text between added tokens.
    fn encode_segment(&self, seg: &str, at_start: bool, s: &mut Scratch, out: &mut Vec<u32>) {
        let inner = &*self.inner;
        let mut norm = std::mem::take(&mut s.norm);
        inner.normalizer.apply(seg, &mut norm, &mut s.norm_tmp);
        if inner.added.has_normalized() {
            let mut nsplits = std::mem::take(&mut s.nsplits);
            inner.added.split_normalized(&norm, &mut nsplits);
            for split in &nsplits {
                match split {
                    Split::Token(id) => out.push(*id),
                    Split::Text(r) => self.encode_words(&norm[r.clone()], at_start && r.start == 0, s, out),
                }
            }
            s.nsplits = nsplits;
        } else {
            self.encode_words(&norm, at_start, s, out);
        }
        s.norm = norm;
    }

    fn encode_words(&self, text: &str, at_start: bool, s: &mut Scratch, out: &mut Vec<u32>) {
        let inner = &*self.inner;
        let in_text = inner.pre.split(text, at_start, &mut s.pre, &mut s.pre_tmp, &mut s.words, &mut s.words_tmp);
        let src: &str = if in_text { text } else { &s.pre };
        for w in &s.words {
            let word = &src[w.clone()];
            if word.len() > MAX_WORD {
                inner.model.encode_word(word, out, &mut s.lattice);
                continue;
            }
            if let Some(ids) = s.cache.get(word) {
                out.extend_from_slice(ids);
                continue;
            }
            let start = out.len();
            inner.model.encode_word(word, out, &mut s.lattice);
            s.cache.insert(word, &out[start..]);
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TokenizerError> {
    std::fs::read(path).map_err(|source| TokenizerError::Io { path: path.to_path_buf(), source })
}

fn read_to_string(path: &Path) -> Result<String, TokenizerError> {
    std::fs::read_to_string(path).map_err(|source| TokenizerError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Tokenizer>();
        check::<Batch>();
    }
}
