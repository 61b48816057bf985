//! Sharded checkpoints (`model.safetensors.index.json` + shards, as `save_pretrained` writes
//! them past `max_shard_size`): the tiny fixture model split into three shards loads and
//! generates exactly as the single file does; a broken index is a clear error.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use t0_model::inspect::ModelInfo;
use t0_model::{GenerationConfig, LoadOptions, ModelError, PackDType, T5Model};
use t0_tensor::{SafeTensorsFile, SafeTensorsWriter, TensorSpec};

const SHARDS: usize = 3;

fn shard_name(i: usize) -> String {
    format!("model-{:05}-of-{SHARDS:05}.safetensors", i + 1)
}

/// Copy `src` into `dst` with its weights split across [`SHARDS`] files and an index.
fn write_sharded(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for f in ["config.json", "generation_config.json", "spiece.model"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let file = SafeTensorsFile::open(&src.join("model.safetensors")).unwrap();
    let mut names: Vec<String> = file.names().map(String::from).collect();
    names.sort();
    let mut weight_map = BTreeMap::new();
    let mut total = 0usize;
    for (i, chunk) in names.chunks(names.len().div_ceil(SHARDS)).enumerate() {
        let specs: Vec<TensorSpec> = chunk
            .iter()
            .map(|n| {
                let (shape, dtype) = file.info(n).unwrap();
                TensorSpec::new(n.clone(), dtype, shape)
            })
            .collect();
        let mut w = SafeTensorsWriter::create(&dst.join(shard_name(i)), &specs, Default::default()).unwrap();
        for n in chunk {
            let t = file.tensor(n).unwrap();
            total += t.nbytes();
            w.write_tensor(n, t.bytes()).unwrap();
            weight_map.insert(n.clone(), shard_name(i));
        }
        w.finish().unwrap();
    }
    let index = serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
    std::fs::write(dst.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

fn tiny() -> std::path::PathBuf {
    common::fixtures().join("models").join("t0-tiny")
}

#[test]
fn sharded_model_generates_like_the_single_file() {
    let tmp = std::env::temp_dir().join(format!("t0-sharded-{}", std::process::id()));
    write_sharded(&tiny(), &tmp);
    assert!(!tmp.join("model.safetensors").exists());
    let single = T5Model::from_dir(&tiny()).unwrap();
    let sharded = T5Model::from_dir(&tmp).unwrap();
    let inputs = vec![vec![27, 7, 48, 1], vec![100, 200, 1]];
    let cfg = GenerationConfig::greedy(12);
    assert_eq!(sharded.generate(&inputs, &cfg).unwrap(), single.generate(&inputs, &cfg).unwrap());
    // Converting at load works across shards too.
    let bf16 = T5Model::load(&tmp, LoadOptions::with_dtype(PackDType::Bf16)).unwrap();
    assert_eq!(bf16.generate(&inputs, &cfg).unwrap().len(), 2);

    let info = ModelInfo::from_dir(&tmp).unwrap();
    assert!(info.sharded);
    assert_eq!(info.files.len(), SHARDS);
    assert_eq!(info.files.iter().map(|f| f.tensors).sum::<usize>(), 52);
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn missing_shard_is_named() {
    let tmp = std::env::temp_dir().join(format!("t0-sharded-missing-{}", std::process::id()));
    write_sharded(&tiny(), &tmp);
    std::fs::remove_file(tmp.join(shard_name(1))).unwrap();
    let err = T5Model::from_dir(&tmp).unwrap_err().to_string();
    assert!(err.contains(&shard_name(1)), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn index_pointing_outside_the_directory() {
    let tmp = std::env::temp_dir().join(format!("t0-sharded-escape-{}", std::process::id()));
    write_sharded(&tiny(), &tmp);
    let p = tmp.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&p).unwrap().replace(&shard_name(0), "../model.safetensors");
    std::fs::write(&p, text).unwrap();
    let err = T5Model::from_dir(&tmp).unwrap_err();
    assert!(matches!(err, ModelError::Config { ref key, .. } if key == "weight_map"), "{err}");
    assert!(err.to_string().contains("not a file in the model directory"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
