//! Ids back to text: HF's fast decoder (`Metaspace`) and the slow sentencepiece one.

use crate::tokenizer::Inner;

/// The decoder of a tokenizer.
#[derive(Clone, Debug)]
pub(crate) enum Decoder {
    /// `replacement` becomes a space, except in the first token, where (when `strip_first`)
    /// it is dropped: HF's `Metaspace` decoder with a prepend scheme other than `never`.
    Metaspace { replacement: char, strip_first: bool },
    /// No decoder: tokens joined with spaces.
    None,
}

/// What the sentencepiece-style decode needs beyond the vocabulary.
#[derive(Clone, Debug)]
pub(crate) struct LegacyDecode {
    /// Per model id: a control piece, which sentencepiece prints as nothing.
    pub(crate) control: Vec<bool>,
    /// What sentencepiece prints for `<unk>` (`" ⁇ "`).
    pub(crate) unk_surface: String,
    /// Whether sentencepiece drops the `▁` that starts the text (`add_dummy_prefix` or
    /// `remove_extra_whitespaces`).
    pub(crate) strip_bos_space: bool,
    /// Whether T5Tokenizer removes the `▁` of the first token (`add_prefix_space`).
    pub(crate) add_prefix_space: bool,
    /// Number of sentencepiece pieces: added special tokens at or above it (the extra ids)
    /// are "legacy added tokens", decoded apart and joined with spaces.
    pub(crate) sp_size: usize,
}

fn token_text(inner: &Inner, id: u32) -> Option<&str> {
    if let Some(t) = inner.added.by_id(id) {
        return Some(&t.content);
    }
    inner.model.pieces.get(id as usize).map(String::as_str)
}

/// HF `tokenizers`' `Tokenizer::decode`.
pub(crate) fn decode_fast(inner: &Inner, ids: &[u32], skip_special: bool) -> String {
    let mut out = String::with_capacity(ids.len() * 6);
    let mut first = true;
    for &id in ids {
        let Some(tok) = token_text(inner, id) else {
            continue;
        };
        if skip_special && inner.added.is_special_content(tok) {
            continue;
        }
        match inner.decoder {
            Decoder::Metaspace { replacement, strip_first } => {
                for c in tok.chars() {
                    if c == replacement {
                        if !(first && strip_first) {
                            out.push(' ');
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
            Decoder::None => {
                if !first {
                    out.push(' ');
                }
                out.push_str(tok);
            }
        }
        first = false;
    }
    out
}

/// transformers' slow `T5Tokenizer.decode` (`PreTrainedTokenizer._decode`,
/// `T5Tokenizer.convert_tokens_to_string`, sentencepiece's `DecodePieces`).
pub(crate) fn decode_legacy(inner: &Inner, ids: &[u32], skip_special: bool) -> String {
    let special = |id: u32| inner.added.by_id(id).is_some_and(|t| t.special);
    let legacy_added =
        |id: u32| inner.added.by_id(id).is_some_and(|t| !t.special || id as usize >= inner.legacy.sp_size);
    let mut sub_texts: Vec<String> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    for &id in ids {
        if token_text(inner, id).is_none() || (skip_special && special(id)) {
            continue;
        }
        if legacy_added(id) {
            if !current.is_empty() {
                let s = tokens_to_string(inner, &current);
                if !s.is_empty() {
                    sub_texts.push(s);
                }
                current.clear();
            }
            sub_texts.push(token_text(inner, id).unwrap_or_default().to_string());
        } else {
            current.push(id);
        }
    }
    if !current.is_empty() {
        sub_texts.push(tokens_to_string(inner, &current));
    }
    sub_texts.join(" ")
}

/// `T5Tokenizer.convert_tokens_to_string`.
fn tokens_to_string(inner: &Inner, ids: &[u32]) -> String {
    let special = |id: u32| inner.added.by_id(id).is_some_and(|t| t.special);
    let mut out = String::new();
    let mut prev_special = false;
    let mut pieces: Vec<&str> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let mut text = token_text(inner, id).unwrap_or_default();
        if i == 0 && inner.legacy.add_prefix_space {
            text = text.strip_prefix('\u{2581}').unwrap_or(text);
        }
        if special(id) {
            if !prev_special {
                out.push(' ');
            }
            sp_decode(inner, &pieces, &mut out);
            out.push_str(text);
            prev_special = true;
            pieces.clear();
        } else {
            pieces.push(text);
            prev_special = false;
        }
    }
    sp_decode(inner, &pieces, &mut out);
    out.trim_matches(py_space).to_string()
}

/// sentencepiece's `DecodePieces`: control pieces vanish, `<unk>` prints as the unknown
/// surface, a text that is not a piece prints as is, `▁` becomes a space, and pieces at the
/// very start lose one leading `▁`.
fn sp_decode(inner: &Inner, pieces: &[&str], out: &mut String) {
    let mut text = String::new();
    for &p in pieces {
        match inner.model.id_of(p) {
            Some(id) if inner.legacy.control.get(id as usize).copied().unwrap_or(false) => {}
            Some(id) if id == inner.unk_id => text.push_str(&inner.legacy.unk_surface),
            None => text.push_str(p),
            Some(_) => {
                let p = if text.is_empty() && inner.legacy.strip_bos_space {
                    p.strip_prefix('\u{2581}').unwrap_or(p)
                } else {
                    p
                };
                for c in p.chars() {
                    text.push(if c == '\u{2581}' { ' ' } else { c });
                }
            }
        }
    }
    out.push_str(&text);
}

/// Python's `str.isspace` (what `str.strip()` removes): Unicode whitespace plus the
/// information separators U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}
