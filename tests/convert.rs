//! `t0_model::convert`: a converted model computes exactly what its source computes when loaded
//! with the same dtype, reads its packed weights in place, and bad or mismatched converted files
//! are clear errors.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use t0_model::convert::convert;
use t0_model::weights::WeightFiles;
use t0_model::{GenerationConfig, LoadOptions, ModelError, ModelInfo, PackDType, T5Model};

fn temp_out(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("t0-convert-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn no_temp_left(out: &Path) {
    let parent = out.parent().unwrap();
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let left: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{name}.")))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn converted_models_match_loading_with_the_dtype() {
    for dir in fixture_models() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let exp = Expected::load(&dir);
        for dtype in [PackDType::F32, PackDType::Bf16, PackDType::Int8] {
            let out = temp_out(&format!("{name}-{dtype:?}"));
            let report = convert(&dir, dtype, &out, LoadOptions::default(), &|_, _, _| {}).unwrap();
            no_temp_left(&out);
            assert!(out.join("config.json").is_file());
            for f in ["spiece.model", "tokenizer_config.json"] {
                assert_eq!(dir.join(f).is_file(), out.join(f).is_file(), "{name}: {f} copied iff present");
            }
            assert_eq!(report.bytes, std::fs::metadata(out.join("model.safetensors")).unwrap().len());

            let files = WeightFiles::open(&out).unwrap();
            assert_eq!(files.packed_dtype().unwrap(), Some(dtype));
            let info = ModelInfo::from_dir(&out).unwrap();
            assert!(info.problems.is_empty(), "{name}: {:?}", info.problems);
            assert_eq!(info.packed.as_deref(), Some(t0_model::weights::dtype_name(dtype)));
            let direct = T5Model::load(&dir, LoadOptions::with_dtype(dtype)).unwrap();
            // With no dtype and with the stored one, the converted weights are used as stored.
            for opts in [LoadOptions::default(), LoadOptions::with_dtype(dtype)] {
                let converted = T5Model::load(&out, opts).unwrap();
                assert!(converted.unused_tensors().is_empty(), "{name}: unused {:?}", converted.unused_tensors());
                assert_eq!(converted.weight_bytes(), direct.weight_bytes(), "{name} {dtype:?}");
                for (i, case) in exp.cases().iter().enumerate() {
                    let want = teacher_logits(&direct, case);
                    let got = teacher_logits(&converted, case);
                    assert_eq!(got, want, "{name} {dtype:?} case {i}: converted logits differ");
                    let input = ids(&case["input_ids"]);
                    let cfg = GenerationConfig::greedy(10);
                    assert_eq!(
                        converted.generate(std::slice::from_ref(&input), &cfg).unwrap()[0][0].token_ids,
                        direct.generate(&[input], &cfg).unwrap()[0][0].token_ids
                    );
                }
            }
            std::fs::remove_dir_all(&out).unwrap();
        }
    }
}

#[test]
fn converted_f32_keeps_hf_parity() {
    let dir = fixtures().join("models/t0-tiny");
    let out = temp_out("parity");
    convert(&dir, PackDType::F32, &out, LoadOptions::default(), &|_, _, _| {}).unwrap();
    let model = T5Model::from_dir(&out).unwrap();
    let exp = Expected::load(&dir);
    for (i, case) in exp.cases().iter().enumerate() {
        let want = exp.array(&format!("case{i}.teacher_logits"));
        assert_close(&teacher_logits(&model, case), &want, 1e-4, &format!("converted t0-tiny case {i}"));
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn converting_again_or_onto_an_existing_directory() {
    let dir = fixtures().join("models/t0-tiny");
    let out = temp_out("again");
    convert(&dir, PackDType::Int8, &out, LoadOptions::default(), &|_, _, _| {}).unwrap();
    // An existing output is never overwritten.
    let err = convert(&dir, PackDType::Int8, &out, LoadOptions::default(), &|_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    // Converting a converted model to the same dtype reproduces it byte for byte.
    let again = temp_out("again2");
    convert(&out, PackDType::Int8, &again, LoadOptions::default(), &|_, _, _| {}).unwrap();
    let a = std::fs::read(out.join("model.safetensors")).unwrap();
    let b = std::fs::read(again.join("model.safetensors")).unwrap();
    assert!(a == b, "re-converting changed the file");
    // Another dtype than the stored one is refused, naming both.
    let err = T5Model::load(&out, LoadOptions::with_dtype(PackDType::Bf16)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::InvalidArgument(_)) && msg.contains("int8") && msg.contains("bf16"), "{msg}");
    for d in [&out, &again] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Rewrites the converted file's header with `edit`, keeping the data.
fn edit_header(file: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = std::fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(file, out).unwrap();
}

#[test]
fn broken_converted_files_are_clear_errors() {
    let dir = fixtures().join("models/t0-tiny");
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: [(&str, Edit, &str); 4] = [
        ("version", Box::new(|h| h["__metadata__"]["t0.packed_version"] = "99".into()), "packed layout version"),
        ("dtype", Box::new(|h| h["__metadata__"]["t0.packed_dtype"] = "int4".into()), "is not a packed dtype"),
        (
            "shape",
            Box::new(|h| {
                let t = &mut h["lm_head.t0_panels"];
                let s = t["shape"].as_array().unwrap().clone();
                let n: u64 = s.iter().map(|x| x.as_u64().unwrap()).product();
                t["shape"] = serde_json::json!([1, n]);
            }),
            "lm_head.t0_panels",
        ),
        (
            "missing",
            Box::new(|h| {
                let v =
                    h.as_object_mut().unwrap().remove("encoder.block.0.layer.0.SelfAttention.qkv.t0_panels").unwrap();
                h["renamed.t0_panels"] = v;
            }),
            "encoder.block.0.layer.0.SelfAttention.qkv.t0_panels",
        ),
    ];
    for (tag, edit, needle) in cases {
        let out = temp_out(&format!("broken-{tag}"));
        convert(&dir, PackDType::Int8, &out, LoadOptions::default(), &|_, _, _| {}).unwrap();
        edit_header(&out.join("model.safetensors"), edit);
        let err = T5Model::from_dir(&out).unwrap_err().to_string();
        assert!(err.contains(needle), "{tag}: {err}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}
