//! Parity with HF transformers on the committed fixtures (see tests/fixtures/t5-tokenizer/).

use std::path::PathBuf;

use serde_json::Value;
use t0_tokenizer::Tokenizer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/t5-tokenizer")
}

fn load(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("fixture file");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture line is JSON"))
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().expect("list").iter().map(|x| x.as_str().expect("string").to_string()).collect()
}

fn spiece() -> Tokenizer {
    Tokenizer::from_spiece_file(&fixtures().join("spiece.model")).expect("spiece.model loads")
}

fn json() -> Tokenizer {
    Tokenizer::from_tokenizer_json(&fixtures().join("tokenizer.json")).expect("tokenizer.json loads")
}

/// Checks `check(case)` on every case; fails listing every mismatch.
fn all_match(cases: &[Value], what: &str, check: impl Fn(&Value) -> Option<String>) {
    let bad: Vec<String> = cases.iter().filter_map(&check).collect();
    assert!(bad.is_empty(), "{what}: {} of {} cases differ:\n{}", bad.len(), cases.len(), bad.join("\n"));
}

fn check_ids(tok: &Tokenizer, c: &Value) -> Option<String> {
    let text = c["text"].as_str().expect("text");
    let want = ids(&c["ids_fast"]);
    let got = tok.encode(text);
    (got != want).then(|| format!("{text:?}\n  got  {got:?}\n  want {want:?}"))
}

#[test]
fn shared_cases_ids_fast_from_spiece() {
    let cases = load("cases.jsonl");
    assert_eq!(cases.len(), 340);
    let tok = spiece();
    all_match(&cases, "ids_fast (spiece.model)", |c| check_ids(&tok, c));
}

#[test]
fn shared_cases_ids_fast_from_tokenizer_json() {
    let cases = load("cases.jsonl");
    let tok = json();
    all_match(&cases, "ids_fast (tokenizer.json)", |c| check_ids(&tok, c));
}

#[test]
fn extra_cases_ids_fast() {
    let cases = load("cases_extra.jsonl");
    assert!(cases.len() >= 150, "{}", cases.len());
    let (a, b) = (spiece(), json());
    all_match(&cases, "ids_fast (spiece.model)", |c| check_ids(&a, c));
    all_match(&cases, "ids_fast (tokenizer.json)", |c| check_ids(&b, c));
}

#[test]
fn shared_cases_slow_decode_matches_decoded() {
    // `decoded` is transformers' slow (sentencepiece) decode of ids_slow, skipping specials.
    let cases = load("cases.jsonl");
    let tok = spiece();
    all_match(&cases, "decode_legacy(ids_slow, skip)", |c| {
        let got = tok.decode_legacy(&ids(&c["ids_slow"]), true);
        let want = c["decoded"].as_str().expect("decoded");
        (got != want).then(|| format!("{:?}\n  got  {got:?}\n  want {want:?}", c["text"]))
    });
}

fn check_decodes(tok: &Tokenizer, c: &Value, ids_fast: &[u32], ids_slow: &[u32]) -> Option<String> {
    let checks = [
        ("decoded_fast", tok.decode(ids_fast, true)),
        ("decoded_fast_keep", tok.decode(ids_fast, false)),
        ("decoded_slow_keep", tok.decode_legacy(ids_slow, false)),
    ];
    let mut bad = String::new();
    for (field, got) in checks {
        let want = c[field].as_str().expect("decode field");
        if got != want {
            bad += &format!("{:?} {field}\n  got  {got:?}\n  want {want:?}\n", c["text"]);
        }
    }
    let tokens = tok.tokens(ids_fast);
    if tokens != strs(&c["tokens_fast"]) {
        bad += &format!("{:?} tokens\n  got  {tokens:?}\n  want {:?}\n", c["text"], c["tokens_fast"]);
    }
    (!bad.is_empty()).then_some(bad)
}

#[test]
fn shared_cases_decodes_and_tokens() {
    let cases = load("cases.jsonl");
    let decodes = load("decodes.jsonl");
    assert_eq!(cases.len(), decodes.len());
    let tok = spiece();
    let pairs: Vec<Value> = cases
        .iter()
        .zip(&decodes)
        .map(|(c, d)| {
            assert_eq!(c["text"], d["text"]);
            let mut m = d.clone();
            m["ids_fast"] = c["ids_fast"].clone();
            m["ids_slow"] = c["ids_slow"].clone();
            m
        })
        .collect();
    all_match(&pairs, "decodes", |c| check_decodes(&tok, c, &ids(&c["ids_fast"]), &ids(&c["ids_slow"])));
}

#[test]
fn extra_cases_decodes_and_tokens() {
    let cases = load("cases_extra.jsonl");
    for tok in [spiece(), json()] {
        all_match(&cases, "decodes", |c| {
            let mut bad = check_decodes(&tok, c, &ids(&c["ids_fast"]), &ids(&c["ids_slow"])).unwrap_or_default();
            let got = tok.decode_legacy(&ids(&c["ids_slow"]), true);
            if got != c["decoded"].as_str().expect("decoded") {
                bad += &format!("{:?} decoded\n  got  {got:?}\n  want {:?}\n", c["text"], c["decoded"]);
            }
            (!bad.is_empty()).then_some(bad)
        });
    }
}

#[test]
fn random_id_sequences_decode_like_hf() {
    let cases = load("decode_ids.jsonl");
    for tok in [spiece(), json()] {
        all_match(&cases, "decode_ids", |c| {
            let ids = ids(&c["ids"]);
            let checks = [
                ("fast_skip", tok.decode(&ids, true)),
                ("fast_keep", tok.decode(&ids, false)),
                ("slow_skip", tok.decode_legacy(&ids, true)),
                ("slow_keep", tok.decode_legacy(&ids, false)),
            ];
            let mut bad = String::new();
            for (field, got) in checks {
                let want = c[field].as_str().expect("field");
                if got != want {
                    bad += &format!("{ids:?} {field}\n  got  {got:?}\n  want {want:?}\n");
                }
            }
            if tok.tokens(&ids) != strs(&c["tokens"]) {
                bad += &format!("{ids:?} tokens differ\n");
            }
            (!bad.is_empty()).then_some(bad)
        });
    }
}

#[test]
fn from_dir_prefers_spiece_and_both_agree() {
    let dir = Tokenizer::from_dir(&fixtures()).expect("from_dir");
    let j = json();
    for tok in [&dir, &j] {
        assert_eq!(tok.vocab_size(), 32100);
        assert_eq!((tok.pad_id(), tok.eos_id(), tok.unk_id()), (0, 1, 2));
    }
    let text = "Premise: ＜pad＞ Ａ\u{301} \u{1f44d}\u{1f3fd} <extra_id_5>  x";
    assert_eq!(dir.encode(text), j.encode(text));
}

/// A model directory holding the fixture spiece.model and the given extra files.
fn model_dir(name: &str, files: &[(&str, PathBuf)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("t0-tok-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    for (file, from) in files {
        std::fs::copy(from, dir.join(file)).expect("copy fixture");
    }
    dir
}

#[test]
fn tokenizer_config_variants_match_hf() {
    let cases = load("configs.jsonl");
    assert!(cases.len() >= 40);
    let mut names: Vec<&str> = cases.iter().map(|c| c["config"].as_str().expect("config")).collect();
    names.dedup();
    for name in names {
        let dir = model_dir(
            name,
            &[
                ("spiece.model", fixtures().join("spiece.model")),
                ("tokenizer_config.json", fixtures().join("configs").join(name).join("tokenizer_config.json")),
            ],
        );
        let tok = Tokenizer::from_dir(&dir).expect("from_dir with tokenizer_config.json");
        let _ = std::fs::remove_dir_all(&dir);
        let mine: Vec<Value> = cases.iter().filter(|c| c["config"] == name).cloned().collect();
        all_match(&mine, name, |c| {
            let text = c["text"].as_str().expect("text");
            let want = ids(&c["ids_fast"]);
            let got = tok.encode(text);
            let mut bad = String::new();
            if got != want {
                bad += &format!("{text:?} ids\n  got  {got:?}\n  want {want:?}\n");
            }
            if tok.vocab_size() as u64 != c["vocab_size"].as_u64().expect("vocab_size") {
                bad += &format!("vocab_size {} want {}\n", tok.vocab_size(), c["vocab_size"]);
            }
            for (field, skip) in [("decoded_fast", true), ("decoded_fast_keep", false)] {
                let got = tok.decode(&want, skip);
                if got != c[field].as_str().expect("decode") {
                    bad += &format!("{text:?} {field}\n  got  {got:?}\n  want {:?}\n", c[field]);
                }
            }
            (!bad.is_empty()).then_some(bad)
        });
    }
}

#[test]
fn from_dir_falls_back_to_tokenizer_json() {
    let dir = std::env::temp_dir().join(format!("t0-tok-{}-json-only", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    std::fs::copy(fixtures().join("tokenizer.json"), dir.join("tokenizer.json")).expect("copy");
    let tok = Tokenizer::from_dir(&dir).expect("tokenizer.json only");
    assert_eq!(tok.encode("Hello world"), [8774, 296, 1]);
    std::fs::remove_file(dir.join("tokenizer.json")).expect("rm");
    let err = Tokenizer::from_dir(&dir).expect_err("empty dir");
    let msg = err.to_string();
    assert!(msg.contains("spiece.model") && msg.contains("tokenizer.json"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn random_unicode_cases_ids_fast() {
    let cases = load("cases_random.jsonl");
    assert_eq!(cases.len(), 1500);
    let (a, b) = (spiece(), json());
    all_match(&cases, "ids_fast (spiece.model)", |c| check_ids(&a, c));
    all_match(&cases, "ids_fast (tokenizer.json)", |c| check_ids(&b, c));
}

/// T0_3B's layout (spiece.model + the tokenizer_config.json whose `added_tokens_decoder` gives
/// the sentinels `lstrip`/`rstrip`): the sentinels eat any Unicode whitespace beside them, also
/// what T5's normaliser leaves alone (U+0085). Expected ids from
/// `AutoTokenizer.from_pretrained("tests/fixtures/models/t0-tiny")`, transformers 4.57.6.
/// (The plain-string `<extra_id_N>`s used to reset those flags; found with a vocabulary
/// trained with identity normalisation by tools/cross_check.py --spm-variants.)
#[test]
fn sentinel_flags_from_added_tokens_decoder_are_kept() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/t0-tiny");
    let tok = Tokenizer::from_dir(&dir).expect("t0-tiny tokenizer");
    for (text, want) in [
        ("<extra_id_0>\u{85}y", vec![32099, 3, 63, 1]),
        ("Fill in: x \u{85}<extra_id_1>\u{85}\u{85} y", vec![12607, 16, 10, 3, 226, 32098, 3, 63, 1]),
        ("<extra_id_0>\u{85}", vec![32099, 1]),
    ] {
        assert_eq!(tok.encode(text), want, "{text:?}");
    }
}
