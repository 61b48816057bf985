//! The library side of docs/errors.md: bad files and arguments give typed errors (the variant
//! and its fields, not only the text), and nothing panics.

mod common;

use std::path::{Path, PathBuf};

use t0_model::random_init::write_random_model;
use t0_model::{GenerationConfig, LoadOptions, ModelError, PackDType, T5Config, T5Model, Tokenizer, T0};
use t0_tensor::{DType, SafeTensorsFile, TensorError};
use t0_tokenizer::TokenizerError;

const CONFIG: &str = r#"{"vocab_size": 64, "d_model": 8, "d_kv": 4, "d_ff": 12, "num_layers": 2,
  "num_heads": 2, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false, "model_type": "t5"}"#;

fn model_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let c = T5Config::from_json_str(CONFIG, "config.json".as_ref()).unwrap();
    write_random_model(&c, CONFIG, &dir, 3, DType::F32, |_, _, _| {}).unwrap();
    (tmp, dir)
}

fn load(dir: &Path) -> Result<T5Model, ModelError> {
    T5Model::load(dir, LoadOptions::default())
}

#[test]
fn missing_dir_is_missing_file() {
    let err = load(Path::new("/nonexistent/model")).unwrap_err();
    assert!(matches!(&err, ModelError::MissingFile { dir, .. } if dir == Path::new("/nonexistent/model")), "{err:?}");
}

#[test]
fn config_errors_name_the_key() {
    let (_t, dir) = model_dir();
    for (json, key) in [
        ("{", "(file)"),
        (r#"{"vocab_size": 64}"#, "d_model"),
        (&CONFIG.replace("\"d_ff\": 12", "\"d_ff\": 0"), "d_ff"),
        (&CONFIG.replace("\"num_heads\": 2", "\"num_heads\": \"2\""), "num_heads"),
    ] {
        std::fs::write(dir.join("config.json"), json).unwrap();
        match load(&dir).unwrap_err() {
            ModelError::Config { path, key: k, .. } => {
                assert_eq!(path, dir.join("config.json"));
                assert_eq!(k, key);
            }
            e => panic!("{json}: {e:?}"),
        }
    }
}

#[test]
fn truncated_weights_are_a_tensor_error() {
    let (_t, dir) = model_dir();
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tensor(TensorError::InvalidFile { path, reason }) if *path == p && reason.contains("truncated")),
        "{err:?}"
    );
    // Every prefix of a valid file is an error, never a fault.
    for cut in (0..bytes.len()).step_by(97) {
        let e = SafeTensorsFile::from_bytes(&p, &bytes[..cut]).unwrap_err();
        assert!(matches!(e, TensorError::InvalidFile { .. }), "cut {cut}: {e:?}");
    }
}

#[test]
fn wrong_shape_names_file_and_tensor() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("config.json"), CONFIG.replace("\"d_ff\": 12", "\"d_ff\": 16")).unwrap();
    match load(&dir).unwrap_err() {
        ModelError::Shape { file, name, expected, found } => {
            assert_eq!(file, dir.join("model.safetensors"));
            assert_eq!(name, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight");
            assert_eq!((expected, found), (vec![16, 8], vec![12, 8]));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn missing_tensor_is_typed() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("config.json"), CONFIG.replace("\"num_layers\": 2", "\"num_layers\": 3")).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(matches!(&err, ModelError::MissingTensor { name, .. } if name.starts_with("encoder.block.2.")), "{err:?}");
}

#[test]
fn garbage_spiece_is_a_tokenizer_error() {
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("spiece.model"), [0xffu8; 64]).unwrap();
    let err = T0::from_dir(&dir).unwrap_err();
    assert!(matches!(err, ModelError::Tokenizer(TokenizerError::Protobuf { .. })), "{err:?}");
    let err = Tokenizer::from_spiece_bytes(&[]).unwrap_err();
    assert!(matches!(err, TokenizerError::Invalid { ref field, .. } if field == "pieces"), "{err:?}");
}

#[test]
fn ids_outside_the_vocabulary() {
    let (_t, dir) = model_dir();
    let m = load(&dir).unwrap();
    let err = m.generate(&[vec![5, 64, 1]], &GenerationConfig::greedy(2)).unwrap_err();
    assert!(matches!(err, ModelError::TokenOutOfRange { id: 64, vocab_size: 64 }), "{err:?}");
    let err = m.classify(&[5, 1], &[vec![70, 1]], false).unwrap_err();
    assert!(matches!(err, ModelError::TokenOutOfRange { id: 70, .. }), "{err:?}");
}

#[test]
fn a_batch_of_classifications_names_the_bad_item() {
    let (_t, dir) = model_dir();
    let m = load(&dir).unwrap();
    let ok = [vec![5, 1], vec![6, 1]];
    let cases: [(&[t0_model::ClassifyItem], &str); 3] = [
        (&[(&[5, 1], &ok[..]), (&[6, 1], &[])], "item 1: no answer choices to score"),
        (&[(&[], &ok[..]), (&[6, 1], &ok[..])], "item 0: the prompt is empty"),
        (&[(&[5, 1], &ok[..]), (&[6, 1], &[vec![7, 1], vec![]])], "item 1: answer choice 1 has no tokens"),
    ];
    for (items, want) in cases {
        let err = m.classify_batch(items, false).unwrap_err();
        assert!(matches!(err, ModelError::InvalidArgument(ref s) if s.starts_with(want)), "{err:?}");
    }
    let err = m.classify_batch(&[(&[5, 1], &ok[..]), (&[6, 1], &[vec![99, 1]])], false).unwrap_err();
    assert!(matches!(err, ModelError::TokenOutOfRange { id: 99, .. }), "{err:?}");
    assert!(m.classify_batch(&[], false).unwrap().is_empty());
}

#[test]
fn empty_inputs_are_invalid_arguments_but_eos_alone_is_fine() {
    let (_t, dir) = model_dir();
    let m = load(&dir).unwrap();
    let err = m.generate(&[vec![1], vec![]], &GenerationConfig::greedy(2)).unwrap_err();
    assert!(matches!(err, ModelError::InvalidArgument(ref s) if s.starts_with("input 1 is empty")), "{err:?}");
    assert!(m.generate(&[vec![1]], &GenerationConfig::greedy(2)).is_ok());
    assert!(m.generate(&[], &GenerationConfig::greedy(2)).unwrap().is_empty());
    let zero = GenerationConfig { max_new_tokens: 0, ..GenerationConfig::default() };
    assert!(matches!(m.generate(&[vec![1]], &zero), Err(ModelError::InvalidArgument(_))));
}

#[test]
fn input_longer_than_the_limit() {
    let (_t, dir) = model_dir();
    let mut m = T5Model::load(&dir, LoadOptions { max_input_tokens: 8, ..LoadOptions::default() }).unwrap();
    assert_eq!(m.max_input_tokens(), 8);
    let long = vec![5u32; 9];
    let err = m.generate(&[vec![5, 1], long.clone()], &GenerationConfig::greedy(2)).unwrap_err();
    assert!(matches!(err, ModelError::InputTooLong { index: 1, tokens: 9, limit: 8 }), "{err:?}");
    let beam = GenerationConfig { num_beams: 2, ..GenerationConfig::greedy(2) };
    assert!(matches!(m.generate(std::slice::from_ref(&long), &beam), Err(ModelError::InputTooLong { .. })));
    assert!(matches!(m.classify(&long, &[vec![1]], false), Err(ModelError::InputTooLong { .. })));
    let one = [vec![1]];
    let err = m.classify_batch(&[(&[5, 1], &one[..]), (&long, &one[..])], false).unwrap_err();
    assert!(matches!(err, ModelError::InputTooLong { index: 1, tokens: 9, limit: 8 }), "{err:?}");
    m.set_max_input_tokens(9);
    assert!(m.generate(&[long], &GenerationConfig::greedy(2)).is_ok());
}

#[test]
fn too_little_memory_is_refused_before_reading_weights() {
    let (_t, dir) = model_dir();
    // About 10 TB of weights; the file stays the tiny one (it is never opened).
    let huge = r#"{"vocab_size": 32128, "d_model": 16384, "d_kv": 128, "d_ff": 65536, "num_layers": 256,
      "num_heads": 128, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false}"#;
    std::fs::write(dir.join("config.json"), huge).unwrap();
    let opts = LoadOptions::with_dtype(PackDType::Bf16);
    if t0_model::memory::MemInfo::current().is_some() {
        let err = T5Model::load(&dir, opts).unwrap_err();
        assert!(matches!(&err, ModelError::InsufficientMemory { dir: d, .. } if *d == dir), "{err:?}");
    }
    // Without the check, loading goes on to the weights (which do not match).
    let err = T5Model::load(&dir, LoadOptions { check_memory: false, ..opts }).unwrap_err();
    assert!(matches!(err, ModelError::Shape { .. }), "{err:?}");
}

#[test]
fn extra_tensors_are_reported_not_refused() {
    // A fixture whose file stores the tied embedding three times loads without a report.
    let m = T5Model::from_dir(&common::fixtures().join("models/tied-stored-thrice")).unwrap();
    assert!(m.unused_tensors().is_empty(), "{:?}", m.unused_tensors());
    // A model whose config has fewer layers than its file: the extra layer is reported.
    let (_t, dir) = model_dir();
    std::fs::write(dir.join("config.json"), CONFIG.replace("\"num_layers\": 2", "\"num_layers\": 1")).unwrap();
    let m = T5Model::load(&dir, LoadOptions::default());
    // num_decoder_layers follows num_layers, so both stacks lose their second block.
    let m = m.unwrap();
    let unused = m.unused_tensors();
    assert!(unused.iter().all(|n| n.contains(".block.1.")), "{unused:?}");
    assert!(unused.iter().any(|n| n.starts_with("encoder.")) && unused.iter().any(|n| n.starts_with("decoder.")));
}

/// Hostile values for every key t0 reads from `config.json` and `generation_config.json` (zero,
/// negative, huge, fractional, null, the wrong JSON type): loading the model, then a short
/// generation with the file's defaults, each gives a result or an error, never a panic.
#[test]
fn hostile_config_values_never_panic() {
    use serde_json::{json, Value};
    let (_t, dir) = model_dir();
    let read = |name: &str| -> Value {
        std::fs::read_to_string(dir.join(name)).map_or(json!({}), |t| serde_json::from_str(&t).unwrap())
    };
    let (config, generation) = (read("config.json"), read("generation_config.json"));
    let hostile = [
        json!(0),
        json!(1),
        json!(-1),
        json!(7),
        json!(4096),
        json!(u32::MAX),
        json!(u64::MAX),
        json!(-1e300),
        json!(1e300),
        json!(0.5),
        json!(null),
        json!("gated-gelu"),
        json!("x"),
        json!(true),
        json!([1]),
        json!({}),
    ];
    let config_keys = [
        "vocab_size",
        "d_model",
        "d_kv",
        "d_ff",
        "num_layers",
        "num_decoder_layers",
        "num_heads",
        "relative_attention_num_buckets",
        "relative_attention_max_distance",
        "layer_norm_epsilon",
        "feed_forward_proj",
        "dense_act_fn",
        "is_gated_act",
        "tie_word_embeddings",
        "scale_decoder_outputs",
        "eos_token_id",
        "pad_token_id",
        "decoder_start_token_id",
        "model_type",
        "architectures",
    ];
    let generation_keys = [
        "max_length",
        "max_new_tokens",
        "min_length",
        "min_new_tokens",
        "num_beams",
        "num_return_sequences",
        "do_sample",
        "temperature",
        "top_k",
        "top_p",
        "repetition_penalty",
        "no_repeat_ngram_size",
        "length_penalty",
        "early_stopping",
        "eos_token_id",
        "decoder_start_token_id",
        "pad_token_id",
    ];
    let run = |what: &str| {
        let outcome = std::panic::catch_unwind(|| {
            if let Ok(model) = load(&dir) {
                // The file's defaults, with a budget this test can afford.
                let mut cfg = model.generation_config().clone();
                cfg.max_new_tokens = cfg.max_new_tokens.min(4);
                let _ = model.generate(&[vec![5, 1]], &cfg);
            }
        });
        assert!(outcome.is_ok(), "{what} panicked");
    };
    for (file, base, keys) in
        [("config.json", &config, &config_keys[..]), ("generation_config.json", &generation, &generation_keys[..])]
    {
        for key in keys {
            for v in &hostile {
                let mut edited = base.clone();
                edited[*key] = v.clone();
                std::fs::write(dir.join(file), edited.to_string()).unwrap();
                run(&format!("{file}: {key} = {v}"));
            }
        }
        std::fs::write(dir.join(file), base.to_string()).unwrap();
    }
}
