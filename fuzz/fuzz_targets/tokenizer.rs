//! T5's real tokenizer on any text (encode) and any id sequence (decode): no panic, and
//! encoding gives ids inside the vocabulary that end with `</s>`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use t0_tokenizer::Tokenizer;

static SPIECE: &[u8] = include_bytes!("../../tests/fixtures/t5-tokenizer/spiece.model");

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| match Tokenizer::from_spiece_bytes(SPIECE) {
        Ok(t) => t,
        Err(e) => panic!("the fixture spiece.model does not load: {e}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let tok = tokenizer();
    let text = String::from_utf8_lossy(data);
    let ids = tok.encode(&text);
    assert_eq!(ids.last(), Some(&tok.eos_id()));
    let vocab = tok.vocab_size() as u32;
    assert!(ids.iter().all(|&id| id < vocab), "{ids:?}");
    let _ = tok.encode_with(&text, false);
    let _ = tok.tokens(&ids);
    let _ = tok.decode(&ids, true);
    // The bytes as little-endian ids (mostly outside the vocabulary: they must be skipped).
    let raw: Vec<u32> = data.chunks(4).map(|c| c.iter().rev().fold(0u32, |a, &b| a << 8 | u32::from(b))).collect();
    let small: Vec<u32> =
        data.chunks(2).map(|c| c.iter().fold(0u32, |a, &b| a << 8 | u32::from(b)) % (vocab + 8)).collect();
    for ids in [&raw, &small] {
        let _ = tok.decode(ids, true);
        let _ = tok.decode(ids, false);
        let _ = tok.decode_legacy(ids, true);
        let _ = tok.tokens(ids);
    }
});
