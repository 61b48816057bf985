//! Property tests: no input panics, ids stay in the vocabulary, decode inverts encode on
//! plain text, and the spiece.model and tokenizer.json paths agree.

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use t0_tokenizer::Tokenizer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer")
}

fn spiece_bytes() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| std::fs::read(fixtures().join("spiece.model")).expect("spiece.model"))
}

fn tok() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_spiece_bytes(spiece_bytes()).expect("loads"))
}

fn tok_json() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_tokenizer_json(&fixtures().join("tokenizer.json")).expect("loads"))
}

/// Strings mixing every kind of character, with T5's special tokens and their look-alikes.
fn wild_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => any::<char>().prop_map(|c| c.to_string()),
        2 => "[\\x00-\\x1f\\x7f-\\x9f \t\r\n\u{a0}\u{2028}\u{3000}\u{200b}-\u{200d}\u{feff}\u{2581}]{1,4}",
        2 => "[a-zA-Z]{1,8}",
        1 => "[\u{300}-\u{36f}\u{1f3fb}-\u{1f3ff}\u{fe0f}\u{20e3}]{1,3}",
        1 => "[\u{ff01}-\u{ff5e}\u{ff61}-\u{ff9f}\u{1100}-\u{11ff}\u{ac00}-\u{ac10}]{1,3}",
        1 => Just("</s>".to_string()),
        1 => Just("<pad>".to_string()),
        1 => Just("<unk>".to_string()),
        1 => (0u32..120).prop_map(|n| format!("<extra_id_{n}>")),
        1 => Just("\u{ff1c}pad\u{ff1e}".to_string()),
        1 => Just("<extra_id_".to_string()),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn check_ids(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, TestCaseError> {
    let ids = tok.encode(text);
    prop_assert!(!ids.is_empty());
    prop_assert_eq!(*ids.last().unwrap(), tok.eos_id());
    for &id in &ids {
        prop_assert!((id as usize) < tok.vocab_size(), "id {} for {:?}", id, text);
    }
    Ok(ids)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_unicode_never_panics_and_ids_are_in_vocab(s in any::<String>()) {
        let ids = check_ids(tok(), &s)?;
        let _ = tok().decode(&ids, true);
        let _ = tok().decode_legacy(&ids, false);
        let _ = tok().tokens(&ids);
    }

    #[test]
    fn wild_text_never_panics_and_both_loaders_agree(s in wild_text()) {
        let ids = check_ids(tok(), &s)?;
        prop_assert_eq!(&ids, &tok_json().encode(&s), "text {:?}", s);
        let batch = tok().encode_batch(&[s.as_str(), "x"], true);
        prop_assert_eq!(&batch.ids[0][..batch.lengths[0]], &ids[..]);
    }

    #[test]
    fn arbitrary_ids_decode_without_panic(ids in proptest::collection::vec(any::<u32>(), 0..64),
                                          small in proptest::collection::vec(0u32..32110, 0..64)) {
        for v in [&ids, &small] {
            let _ = tok().decode(v, true);
            let _ = tok().decode(v, false);
            let _ = tok().decode_legacy(v, true);
            let _ = tok().decode_legacy(v, false);
            prop_assert_eq!(tok().tokens(v).len(), v.len());
        }
    }

    #[test]
    fn decode_inverts_encode_on_plain_text(words in proptest::collection::vec("[a-zA-Z0-9.,!?'():;-]{1,12}", 1..30)) {
        let text = words.join(" ");
        let ids = tok().encode(&text);
        prop_assert_eq!(tok().decode(&ids, true), text.clone());
        prop_assert_eq!(tok().decode_legacy(&ids, true), text);
    }

}

proptest! {
    // Each case parses and builds a whole 32k vocabulary: fewer cases.
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn corrupted_spiece_model_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                           cut in any::<prop::sample::Index>()) {
        let mut bytes = spiece_bytes().to_vec();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let len = bytes.len();
        for candidate in [&bytes[..], &bytes[..cut.index(len)]] {
            if let Ok(t) = Tokenizer::from_spiece_bytes(candidate) {
                let ids = t.encode("Hello wörld ＜pad＞ \u{ff21}\u{301} <extra_id_3>\r\n\u{1f44d}");
                prop_assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()));
                let _ = t.decode(&ids, false);
            }
        }
    }
}

#[test]
fn very_long_inputs() {
    let t = tok();
    let long_word = "a".repeat(200_000);
    let ids = t.encode(&long_word);
    assert!(ids.len() > 1 && ids.len() <= 200_002);
    let mixed: String = (0..20_000u32).filter_map(|i| char::from_u32(i * 7 % 0x2ffff)).collect();
    let ids = t.encode(&mixed);
    assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()));
    let spaces = " \t\n".repeat(50_000);
    assert_eq!(t.encode(&spaces), [1]);
    let specials = "</s><pad>".repeat(10_000);
    assert_eq!(t.encode(&specials).len(), 20_001);
}

#[test]
fn corrupted_tokenizer_json_never_panics() {
    let text = std::fs::read_to_string(fixtures().join("tokenizer.json")).expect("tokenizer.json");
    // Cut the file at many places, and replace a few known fields with wrong types.
    let dir = std::env::temp_dir().join(format!("t0-tok-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("tokenizer.json");
    let mut variants: Vec<String> =
        (1..20).map(|k| text[..text.floor_char_boundary_compat(text.len() * k / 20)].to_string()).collect();
    for (from, to) in [
        ("\"unk_id\": 2", "\"unk_id\": -1"),
        ("\"unk_id\": 2", "\"unk_id\": 999999"),
        ("\"type\": \"Unigram\"", "\"type\": \"BPE\""),
        ("\"type\": \"Metaspace\"", "\"type\": \"Whitespace\""),
        ("\"replacement\": \"\u{2581}\"", "\"replacement\": \"ab\""),
        ("\"precompiled_charsmap\": \"", "\"precompiled_charsmap\": \"!!"),
        ("\"precompiled_charsmap\": \"", "\"precompiled_charsmap\": \"AAAA"),
        ("\"id\": 0,", "\"id\": \"zero\","),
        ("[\"<pad>\", 0.0]", "[\"<pad>\"]"),
    ] {
        variants.push(text.replacen(from, to, 1));
    }
    for v in &variants {
        std::fs::write(&path, v).expect("write");
        if let Ok(t) = Tokenizer::from_tokenizer_json(&path) {
            let _ = t.encode("Hello world ＜pad＞");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
