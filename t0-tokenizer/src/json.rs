//! Loading HF's `tokenizer.json` (Unigram models, as T5's).
//!
//! Piece scores are read as `f64` and rounded through `f32`. SentencePiece stores scores as
//! `f32`, so for every converted model this gives back exactly the values HF holds in memory
//! when it converts `spiece.model` itself; it also undoes the last-digit error of
//! `serde_json`'s fast float parser, which can otherwise flip exact ties in the lattice
//! (T5's `"-" * 40` is one).

use serde_json::{Map, Value};

use crate::added::{AddedToken, AddedVocab};
use crate::decode::{Decoder, LegacyDecode};
use crate::error::TokenizerError;
use crate::normalizer::{CharsMap, NormStep, Normalizer, Pattern};
use crate::pre_tokenizer::{PreStep, PreTokenizer, PrependScheme};
use crate::tokenizer::Inner;
use crate::unigram::Unigram;

/// Parses the text of a `tokenizer.json`; `origin` names it in errors.
pub(crate) fn build(text: &str, origin: &str) -> Result<Inner, TokenizerError> {
    let root: Value =
        serde_json::from_str(text).map_err(|source| TokenizerError::Json { origin: origin.to_string(), source })?;
    let Some(root) = root.as_object() else {
        return Err(TokenizerError::invalid(origin, "(root)", &root, "expected a JSON object"));
    };
    let cx = Cx { origin };

    // The model.
    let model_v = root.get("model").ok_or_else(|| TokenizerError::missing(origin, "model"))?;
    let model_o = cx.object(model_v, "model")?;
    if let Some(t) = model_o.get("type") {
        let t = cx.str(t, "model.type")?;
        if t != "Unigram" {
            return Err(TokenizerError::unsupported(origin, "model.type", t));
        }
    }
    let vocab_v = model_o.get("vocab").ok_or_else(|| TokenizerError::missing(origin, "model.vocab"))?;
    let Value::Array(items) = vocab_v else {
        return Err(TokenizerError::invalid(origin, "model.vocab", vocab_v, "expected a list of [piece, score]"));
    };
    let mut vocab = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let pair = item.as_array().filter(|a| a.len() == 2);
        let parsed = pair.and_then(|a| Some((a[0].as_str()?, a[1].as_f64()?)));
        let Some((piece, score)) = parsed else {
            return Err(TokenizerError::invalid(origin, format!("model.vocab[{i}]"), item, "expected [piece, score]"));
        };
        vocab.push((piece.to_string(), score as f32));
    }
    if vocab.is_empty() {
        return Err(TokenizerError::invalid(origin, "model.vocab", "[]", "the vocabulary is empty"));
    }
    let unk_v = model_o.get("unk_id").unwrap_or(&Value::Null);
    let unk_id = unk_v.as_u64().filter(|&u| (u as usize) < vocab.len()).ok_or_else(|| {
        TokenizerError::invalid(
            origin,
            "model.unk_id",
            unk_v,
            format!("expected the id of a piece (0..{})", vocab.len()),
        )
    })? as u32;
    let byte_fallback = match model_o.get("byte_fallback") {
        None | Some(Value::Null) => false,
        Some(b) => b
            .as_bool()
            .ok_or_else(|| TokenizerError::invalid(origin, "model.byte_fallback", b, "expected true or false"))?,
    };
    let model = Unigram::new(vocab, unk_id, byte_fallback);

    // Normaliser, pre-tokenizer, decoder.
    let mut steps = Vec::new();
    if let Some(n) = root.get("normalizer").filter(|v| !v.is_null()) {
        cx.normalizer(n, "normalizer", &mut steps)?;
    }
    let mut normalizer = Normalizer { steps };
    let mut pre_steps = Vec::new();
    if let Some(p) = root.get("pre_tokenizer").filter(|v| !v.is_null()) {
        cx.pre_tokenizer(p, "pre_tokenizer", &mut pre_steps)?;
    }
    let mut pre = PreTokenizer { steps: pre_steps, collapse_spaces: false };
    let decoder = match root.get("decoder").filter(|v| !v.is_null()) {
        None => Decoder::None,
        Some(d) => cx.decoder(d, "decoder")?,
    };

    // Added tokens.
    let mut added = Vec::new();
    if let Some(a) = root.get("added_tokens").filter(|v| !v.is_null()) {
        let Value::Array(list) = a else {
            return Err(TokenizerError::invalid(origin, "added_tokens", a, "expected a list"));
        };
        for (i, t) in list.iter().enumerate() {
            added.push(cx.added_token(t, &format!("added_tokens[{i}]"))?);
        }
    }
    let find = |content: &str| {
        added.iter().find(|t: &&AddedToken| t.content == content).map(|t| t.id).or_else(|| model.id_of(content))
    };

    // Post-processor.
    let (prefix, suffix) = match root.get("post_processor").filter(|v| !v.is_null()) {
        None => (Vec::new(), Vec::new()),
        Some(p) => cx.template(p, "post_processor")?,
    };
    let eos_id = find("</s>").or_else(|| suffix.last().copied()).ok_or_else(|| {
        TokenizerError::invalid(
            origin,
            "added_tokens",
            "(no </s>)",
            "a T5 tokenizer needs an end-of-sequence token `</s>`",
        )
    })?;
    let pad_from_padding = root.get("padding").and_then(|p| p.get("pad_id")).and_then(Value::as_u64).map(|p| p as u32);
    let pad_id = find("<pad>").or(pad_from_padding).unwrap_or(eos_id);
    let unk_tok = model.pieces.get(unk_id as usize).and_then(|p| find(p)).unwrap_or(unk_id);

    // What the sentencepiece-style decode needs: special tokens inside the model vocabulary
    // play sentencepiece's control pieces; the trailing run of them (the extra ids) is what
    // transformers treats as added on top of the sentencepiece vocabulary.
    let mut control = vec![false; model.len()];
    for t in &added {
        if t.special && t.id != unk_id {
            if let Some(c) = control.get_mut(t.id as usize) {
                *c = true;
            }
        }
    }
    let mut sp_size = model.len();
    while sp_size > 0
        && added.iter().any(|t| t.special && t.id as usize == sp_size - 1)
        && sp_size - 1 > unk_id as usize
    {
        sp_size -= 1;
    }
    let strip_first = matches!(decoder, Decoder::Metaspace { strip_first: true, .. });
    let legacy = LegacyDecode {
        control,
        unk_surface: " \u{2047} ".to_string(),
        strip_bos_space: true,
        add_prefix_space: strip_first,
        sp_size,
    };
    let added = AddedVocab::new(added, |s| normalizer.normalize_owned(s));
    crate::pre_tokenizer::fold_space_runs(&mut normalizer, &mut pre, added.has_normalized());
    let cache_id = crate::cache::new_owner_id();
    Ok(Inner {
        model,
        added,
        normalizer,
        pre,
        decoder,
        prefix,
        suffix,
        eos_id,
        pad_id,
        unk_id: unk_tok,
        legacy,
        cache_id,
    })
}

/// Field readers that name the file and field in their errors.
struct Cx<'a> {
    origin: &'a str,
}

impl Cx<'_> {
    fn object<'v>(&self, v: &'v Value, field: &str) -> Result<&'v Map<String, Value>, TokenizerError> {
        v.as_object().ok_or_else(|| TokenizerError::invalid(self.origin, field, v, "expected an object"))
    }

    fn str<'v>(&self, v: &'v Value, field: &str) -> Result<&'v str, TokenizerError> {
        v.as_str().ok_or_else(|| TokenizerError::invalid(self.origin, field, v, "expected a string"))
    }

    fn get<'v>(&self, o: &'v Map<String, Value>, key: &str, field: &str) -> Result<&'v Value, TokenizerError> {
        o.get(key).ok_or_else(|| TokenizerError::missing(self.origin, format!("{field}.{key}")))
    }

    fn bool_or(&self, o: &Map<String, Value>, key: &str, field: &str, default: bool) -> Result<bool, TokenizerError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                TokenizerError::invalid(self.origin, format!("{field}.{key}"), v, "expected true or false")
            }),
        }
    }

    fn type_of<'v>(&self, o: &'v Map<String, Value>, field: &str) -> Result<&'v str, TokenizerError> {
        let t = self.get(o, "type", field)?;
        self.str(t, &format!("{field}.type"))
    }

    fn char_of(&self, o: &Map<String, Value>, key: &str, field: &str) -> Result<char, TokenizerError> {
        let f = format!("{field}.{key}");
        let s = self.str(self.get(o, key, field)?, &f)?;
        let mut it = s.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(TokenizerError::invalid(self.origin, f, format!("{s:?}"), "expected one character")),
        }
    }

    fn normalizer(&self, v: &Value, field: &str, steps: &mut Vec<NormStep>) -> Result<(), TokenizerError> {
        let o = self.object(v, field)?;
        let ty = self.type_of(o, field)?;
        match ty {
            "Sequence" => {
                let list = self.get(o, "normalizers", field)?;
                let Value::Array(list) = list else {
                    return Err(TokenizerError::invalid(
                        self.origin,
                        format!("{field}.normalizers"),
                        list,
                        "expected a list",
                    ));
                };
                for (i, n) in list.iter().enumerate() {
                    self.normalizer(n, &format!("{field}.normalizers[{i}]"), steps)?;
                }
            }
            "Precompiled" => {
                let f = format!("{field}.precompiled_charsmap");
                match o.get("precompiled_charsmap") {
                    None | Some(Value::Null) => {}
                    Some(s) => {
                        let s = self.str(s, &f)?;
                        let blob = base64_decode(s)
                            .ok_or_else(|| TokenizerError::invalid(self.origin, &f, s, "not valid base64"))?;
                        if !blob.is_empty() {
                            steps.push(NormStep::Precompiled(Box::new(CharsMap::parse(&blob, self.origin, &f)?)));
                        }
                    }
                }
            }
            "Strip" => steps.push(NormStep::Strip {
                left: self.bool_or(o, "strip_left", field, true)?,
                right: self.bool_or(o, "strip_right", field, true)?,
            }),
            "Replace" => {
                let pf = format!("{field}.pattern");
                let p = self.object(self.get(o, "pattern", field)?, &pf)?;
                let pattern = if let Some(s) = p.get("String") {
                    Pattern::Literal(self.str(s, &format!("{pf}.String"))?.to_string())
                } else if let Some(r) = p.get("Regex") {
                    let r = self.str(r, &format!("{pf}.Regex"))?;
                    parse_simple_regex(r)
                        .ok_or_else(|| TokenizerError::unsupported(self.origin, format!("{pf}.Regex"), r))?
                } else {
                    return Err(TokenizerError::invalid(self.origin, pf, p.len(), "expected `String` or `Regex`"));
                };
                let content = self.str(self.get(o, "content", field)?, &format!("{field}.content"))?;
                steps.push(NormStep::Replace { pattern, content: content.to_string() });
            }
            "Prepend" => {
                let p = self.str(self.get(o, "prepend", field)?, &format!("{field}.prepend"))?;
                steps.push(NormStep::Prepend(p.to_string()));
            }
            "Lowercase" => steps.push(NormStep::Lowercase),
            other => return Err(TokenizerError::unsupported(self.origin, format!("{field}.type"), other)),
        }
        Ok(())
    }

    fn prepend_scheme(&self, o: &Map<String, Value>, field: &str) -> Result<PrependScheme, TokenizerError> {
        let mut scheme = match o.get("prepend_scheme") {
            None | Some(Value::Null) => PrependScheme::Always,
            Some(v) => match self.str(v, &format!("{field}.prepend_scheme"))? {
                "always" => PrependScheme::Always,
                "first" => PrependScheme::First,
                "never" => PrependScheme::Never,
                other => {
                    return Err(TokenizerError::invalid(
                        self.origin,
                        format!("{field}.prepend_scheme"),
                        other,
                        "expected always, first or never",
                    ))
                }
            },
        };
        // Older files: `add_prefix_space: false` means never.
        if !self.bool_or(o, "add_prefix_space", field, true)? {
            scheme = PrependScheme::Never;
        }
        Ok(scheme)
    }

    fn pre_tokenizer(&self, v: &Value, field: &str, steps: &mut Vec<PreStep>) -> Result<(), TokenizerError> {
        let o = self.object(v, field)?;
        match self.type_of(o, field)? {
            "Sequence" => {
                let list = self.get(o, "pretokenizers", field)?;
                let Value::Array(list) = list else {
                    return Err(TokenizerError::invalid(
                        self.origin,
                        format!("{field}.pretokenizers"),
                        list,
                        "expected a list",
                    ));
                };
                for (i, p) in list.iter().enumerate() {
                    self.pre_tokenizer(p, &format!("{field}.pretokenizers[{i}]"), steps)?;
                }
            }
            "Metaspace" => steps.push(PreStep::Metaspace {
                replacement: self.char_of(o, "replacement", field)?,
                prepend: self.prepend_scheme(o, field)?,
                split: self.bool_or(o, "split", field, true)?,
            }),
            "WhitespaceSplit" => steps.push(PreStep::WhitespaceSplit),
            other => return Err(TokenizerError::unsupported(self.origin, format!("{field}.type"), other)),
        }
        Ok(())
    }

    fn decoder(&self, v: &Value, field: &str) -> Result<Decoder, TokenizerError> {
        let o = self.object(v, field)?;
        match self.type_of(o, field)? {
            "Metaspace" => Ok(Decoder::Metaspace {
                replacement: self.char_of(o, "replacement", field)?,
                strip_first: self.prepend_scheme(o, field)? != PrependScheme::Never,
            }),
            other => Err(TokenizerError::unsupported(self.origin, format!("{field}.type"), other)),
        }
    }

    fn added_token(&self, v: &Value, field: &str) -> Result<AddedToken, TokenizerError> {
        let o = self.object(v, field)?;
        let idv = self.get(o, "id", field)?;
        let id = idv
            .as_u64()
            .filter(|&i| i < u64::from(u32::MAX))
            .ok_or_else(|| TokenizerError::invalid(self.origin, format!("{field}.id"), idv, "expected a token id"))?;
        Ok(AddedToken {
            content: self.str(self.get(o, "content", field)?, &format!("{field}.content"))?.to_string(),
            id: id as u32,
            special: self.bool_or(o, "special", field, false)?,
            lstrip: self.bool_or(o, "lstrip", field, false)?,
            rstrip: self.bool_or(o, "rstrip", field, false)?,
            single_word: self.bool_or(o, "single_word", field, false)?,
            normalized: self.bool_or(o, "normalized", field, true)?,
        })
    }

    /// A `TemplateProcessing` post-processor's single-sequence template, as the ids that go
    /// before and after the text.
    fn template(&self, v: &Value, field: &str) -> Result<(Vec<u32>, Vec<u32>), TokenizerError> {
        let o = self.object(v, field)?;
        let ty = self.type_of(o, field)?;
        if ty != "TemplateProcessing" {
            return Err(TokenizerError::unsupported(self.origin, format!("{field}.type"), ty));
        }
        let sf = format!("{field}.single");
        let single = self.get(o, "single", field)?;
        let Value::Array(single) = single else {
            return Err(TokenizerError::invalid(self.origin, sf, single, "expected a list"));
        };
        let specials = o.get("special_tokens").and_then(Value::as_object);
        let (mut prefix, mut suffix) = (Vec::new(), Vec::new());
        let mut seen_sequence = false;
        for (i, item) in single.iter().enumerate() {
            let f = format!("{sf}[{i}]");
            let io = self.object(item, &f)?;
            if io.contains_key("Sequence") {
                seen_sequence = true;
            } else if let Some(st) = io.get("SpecialToken") {
                let name = self.str(self.get(self.object(st, &f)?, "id", &f)?, &format!("{f}.SpecialToken.id"))?;
                let ids = specials
                    .and_then(|s| s.get(name))
                    .and_then(|s| s.get("ids"))
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        TokenizerError::missing(self.origin, format!("{field}.special_tokens.{name}.ids"))
                    })?;
                for idv in ids {
                    let id = idv.as_u64().filter(|&i| i < u64::from(u32::MAX)).ok_or_else(|| {
                        TokenizerError::invalid(
                            self.origin,
                            format!("{field}.special_tokens.{name}.ids"),
                            idv,
                            "expected token ids",
                        )
                    })? as u32;
                    if seen_sequence {
                        suffix.push(id);
                    } else {
                        prefix.push(id);
                    }
                }
            } else {
                return Err(TokenizerError::invalid(self.origin, f, item, "expected `Sequence` or `SpecialToken`"));
            }
        }
        Ok((prefix, suffix))
    }
}

/// The regexes SentencePiece converters emit: `c{n,}`, `c+`, or a plain literal.
fn parse_simple_regex(r: &str) -> Option<Pattern> {
    const META: &[char] = &['\\', '.', '^', '$', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}'];
    let mut chars = r.chars();
    let c = chars.next()?;
    let rest = chars.as_str();
    if !META.contains(&c) {
        if rest == "+" {
            return Some(Pattern::Run { ch: c, min: 1 });
        }
        if let Some(n) = rest.strip_prefix('{').and_then(|x| x.strip_suffix(",}")) {
            let min: usize = n.parse().ok()?;
            return Some(Pattern::Run { ch: c, min: min.max(1) });
        }
    }
    if !r.is_empty() && !r.contains(META) {
        return Some(Pattern::Literal(r.to_string()));
    }
    None
}

/// Standard base64 (with or without `=` padding); `None` if malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | val(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => {
                acc <<= 6;
                out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8]);
            }
            2 => {
                acc <<= 12;
                out.push((acc >> 16) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a$==").is_none());
    }

    #[test]
    fn simple_regexes() {
        assert!(matches!(parse_simple_regex(" {2,}"), Some(Pattern::Run { ch: ' ', min: 2 })));
        assert!(matches!(parse_simple_regex("x+"), Some(Pattern::Run { ch: 'x', min: 1 })));
        assert!(matches!(parse_simple_regex("abc"), Some(Pattern::Literal(_))));
        assert!(parse_simple_regex("\\s+").is_none());
        assert!(parse_simple_regex("[ab]").is_none());
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = build(r#"{"model": {"type": "BPE", "vocab": {}}}"#, "t.json").unwrap_err();
        assert_eq!(e.to_string(), "t.json: field `model.type` = BPE is not supported by t0-tokenizer");
        let e = build(r#"{"model": {"type": "Unigram", "vocab": [["a", "x"]], "unk_id": 0}}"#, "t.json").unwrap_err();
        assert!(e.to_string().contains("model.vocab[0]"), "{e}");
        let e = build(r#"{"model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 5}}"#, "t.json").unwrap_err();
        assert!(e.to_string().contains("model.unk_id"), "{e}");
        let e = build(
            r#"{"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["</s>", 0.0]], "unk_id": 0},
                "normalizer": {"type": "NFKC"}}"#,
            "t.json",
        )
        .unwrap_err();
        assert!(e.to_string().contains("normalizer.type"), "{e}");
        assert!(matches!(build("{", "t.json"), Err(TokenizerError::Json { .. })));
    }

    #[test]
    fn minimal_unigram_works() {
        let inner = build(
            r#"{"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["</s>", 0.0], ["\u2581a", -1.0], ["b", -2.0]], "unk_id": 0},
                "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": true},
                "decoder": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": true}}"#,
            "t.json",
        )
        .unwrap();
        let tok = crate::Tokenizer::from_inner(inner);
        assert_eq!(tok.encode_with("ab c", false), [2, 3, 0]);
        assert_eq!(tok.eos_id(), 1);
        assert_eq!(tok.decode(&[2, 3, 2], false), "ab a");
    }
}
