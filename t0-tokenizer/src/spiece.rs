//! Building a tokenizer from `spiece.model`, as transformers' `T5TokenizerFast` does when a
//! model directory has no `tokenizer.json` (its `T5Converter`, then the special tokens).

use crate::added::{AddedToken, AddedVocab};
use crate::config::{T5Config, TokenSpec};
use crate::decode::{Decoder, LegacyDecode};
use crate::error::TokenizerError;
use crate::model_proto::{ModelProto, PieceType};
use crate::normalizer::{CharsMap, Normalizer};
use crate::pre_tokenizer::{PreStep, PreTokenizer, PrependScheme};
use crate::tokenizer::Inner;
use crate::unigram::Unigram;

/// Reads `bytes` (a serialized `ModelProto`) and assembles the tokenizer.
pub(crate) fn build(bytes: &[u8], origin: &str, config: &T5Config) -> Result<Inner, TokenizerError> {
    let proto = ModelProto::parse(bytes, origin)?;
    let trainer = &proto.trainer_spec;
    if trainer.model_type != 1 {
        let name = match trainer.model_type {
            2 => "2 (BPE)".to_string(),
            3 => "3 (WORD)".to_string(),
            4 => "4 (CHAR)".to_string(),
            n => n.to_string(),
        };
        return Err(TokenizerError::unsupported(origin, "trainer_spec.model_type", name));
    }
    let n = proto.pieces.len();
    let unk_id = usize::try_from(trainer.unk_id).ok().filter(|&u| u < n).ok_or_else(|| {
        TokenizerError::invalid(origin, "trainer_spec.unk_id", trainer.unk_id, format!("not an id of the {n} pieces"))
    })?;

    // Vocabulary: the pieces, then <extra_id_{N-1}> .. <extra_id_0> scored 0 (T5Converter).
    let mut vocab: Vec<(String, f32)> = proto.pieces.iter().map(|p| (p.piece.clone(), p.score)).collect();
    for i in (0..config.extra_ids).rev() {
        vocab.push((format!("<extra_id_{i}>"), 0.0));
    }
    // HF's `Unigram` ignores sentencepiece's byte_fallback for T5 (the converter does not
    // handle it), so neither do we.
    let model = Unigram::new(vocab, unk_id as u32, false);

    // Added tokens: control (special) and user-defined pieces in id order, then the special
    // tokens of the tokenizer; a token already in the vocabulary keeps its id, others get
    // new ids at the end.
    let mut added: Vec<AddedToken> = Vec::new();
    for (id, p) in proto.pieces.iter().enumerate() {
        if matches!(p.kind, PieceType::Control | PieceType::UserDefined) && !p.piece.is_empty() {
            let mut t = AddedToken::special(&p.piece, id as u32);
            t.special = p.kind == PieceType::Control;
            added.push(t);
        }
    }
    let mut next_id = model.len() as u32;
    let mut add = |spec: &TokenSpec, forced_id: Option<u32>, added: &mut Vec<AddedToken>| -> u32 {
        if let Some(t) = added.iter_mut().find(|t| t.content == spec.content) {
            // A token named by a plain string (`"eos_token": "</s>"`, the `<extra_id_N>`s)
            // keeps the flags it already has, e.g. from `added_tokens_decoder`, as transformers
            // maps such strings to the decoder's `AddedToken`s.
            if *spec != TokenSpec::plain(&spec.content) {
                apply_flags(t, spec);
            }
            return t.id;
        }
        let id = forced_id.or_else(|| model.id_of(&spec.content)).unwrap_or_else(|| {
            next_id += 1;
            next_id - 1
        });
        let mut t = AddedToken::special(&spec.content, id);
        apply_flags(&mut t, spec);
        added.push(t);
        id
    };
    for (id, spec) in &config.added_tokens_decoder {
        add(spec, Some(*id), &mut added);
    }
    let eos_id = add(&config.eos, None, &mut added);
    let unk_tok = add(&config.unk, None, &mut added);
    let pad_id = add(&config.pad, None, &mut added);
    for i in 0..config.extra_ids {
        add(&TokenSpec::plain(&format!("<extra_id_{i}>")), None, &mut added);
    }
    for spec in &config.additional {
        add(spec, None, &mut added);
    }

    let charsmap = if proto.normalizer_spec.precompiled_charsmap.is_empty() {
        None
    } else {
        Some(CharsMap::parse(
            &proto.normalizer_spec.precompiled_charsmap,
            origin,
            "normalizer_spec.precompiled_charsmap",
        )?)
    };
    let mut normalizer = Normalizer::spm(charsmap);
    let added = AddedVocab::new(added, |s| normalizer.normalize_owned(s));

    let prepend = match (config.add_prefix_space, config.legacy) {
        (false, _) => PrependScheme::Never,
        (true, true) => PrependScheme::Always,
        (true, false) => PrependScheme::First,
    };
    let mut pre = PreTokenizer {
        steps: vec![PreStep::Metaspace { replacement: '\u{2581}', prepend, split: true }],
        collapse_spaces: false,
    };
    crate::pre_tokenizer::fold_space_runs(&mut normalizer, &mut pre, added.has_normalized());
    let decoder = Decoder::Metaspace { replacement: '\u{2581}', strip_first: prepend != PrependScheme::Never };
    // T5Converter's post-processor: "$A </s>" with the id of "</s>".
    let eos_for_template = model.id_of("</s>").unwrap_or(eos_id);
    let legacy = LegacyDecode {
        control: proto.pieces.iter().map(|p| p.kind == PieceType::Control).collect(),
        unk_surface: trainer.unk_surface.clone(),
        strip_bos_space: proto.normalizer_spec.add_dummy_prefix || proto.normalizer_spec.remove_extra_whitespaces,
        add_prefix_space: config.add_prefix_space,
        sp_size: n,
    };
    Ok(Inner {
        model,
        added,
        normalizer,
        pre,
        decoder,
        prefix: Vec::new(),
        suffix: vec![eos_for_template],
        eos_id,
        pad_id,
        unk_id: unk_tok,
        legacy,
        cache_id: crate::cache::new_owner_id(),
    })
}

fn apply_flags(t: &mut AddedToken, spec: &TokenSpec) {
    t.special = spec.special;
    t.lstrip = spec.lstrip;
    t.rstrip = spec.rstrip;
    t.single_word = spec.single_word;
    t.normalized = spec.normalized;
}
