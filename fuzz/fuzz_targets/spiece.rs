//! Any bytes as spiece.model: a typed error, or a tokenizer that encodes and decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t0_tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let _ = t0_tokenizer::model_proto::ModelProto::parse(data, "spiece.model");
    let Ok(tok) = Tokenizer::from_spiece_bytes(data) else { return };
    for text in ["", " ", "Hello world", "<extra_id_0> a  b</s>", "ünïcödé ▁ 日本語", "<unk><pad>"] {
        let ids = tok.encode(text);
        let _ = tok.tokens(&ids);
        let _ = tok.decode(&ids, true);
        let _ = tok.decode_legacy(&ids, false);
    }
    let n = tok.vocab_size() as u32;
    let ids: Vec<u32> = (0..n.min(64)).chain([n, n + 1, u32::MAX]).collect();
    let _ = tok.decode(&ids, false);
    let _ = tok.decode_legacy(&ids, true);
});
