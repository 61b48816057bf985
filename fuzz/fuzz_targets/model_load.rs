//! Any bytes as the model.safetensors of a small, fixed config: `T5Model::load` returns a typed
//! error or a model that generates.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use t0_model::{GenerationConfig, LoadOptions, PackDType, T5Model};

const CONFIG: &str = r#"{"vocab_size": 64, "d_model": 8, "d_kv": 4, "d_ff": 12, "num_layers": 1,
  "num_heads": 2, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false, "model_type": "t5"}"#;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let d = base.join(format!("t0-fuzz-model-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        std::fs::write(d.join("config.json"), CONFIG).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let path = d.join("model.safetensors");
    if let Err(e) = std::fs::write(&path, data) {
        panic!("{}: {e}", path.display());
    }
    // As stored (zero-copy from the map) or converted at load, by the input's length.
    let dtype = [None, Some(PackDType::F32), Some(PackDType::Bf16), Some(PackDType::Int8)][data.len() % 4];
    let options = LoadOptions { dtype, ..LoadOptions::default() };
    let Ok(model) = T5Model::load(d, options) else { return };
    let _ = model.unused_tensors();
    let out = model.generate(&[vec![5, 6, 1]], &GenerationConfig::greedy(2));
    assert!(out.is_ok(), "{out:?}");
    let _ = model.classify(&[5, 1], &[vec![7, 1], vec![1]], true);
});
