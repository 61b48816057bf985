//! `ModelInfo`'s memory estimate is what the loader really holds, for every fixture model
//! (tied and untied heads, f32 and bf16 storage) at every load dtype.

mod common;

use t0_model::inspect::ModelInfo;
use t0_model::{LoadOptions, PackDType, T5Model};

#[test]
fn memory_estimate_matches_the_loaded_model() {
    for dir in common::fixture_models() {
        let info = ModelInfo::from_dir(&dir).unwrap();
        assert!(info.problems.is_empty(), "{}: {:?}", dir.display(), info.problems);
        assert_eq!(info.memory.len(), 4);
        for (m, dtype) in
            info.memory.iter().zip([None, Some(PackDType::F32), Some(PackDType::Bf16), Some(PackDType::Int8)])
        {
            let model = T5Model::load(&dir, LoadOptions { dtype, ..Default::default() }).unwrap();
            // `weight_bytes` counts the embedding, the linears and an untied head (a tied head
            // is the embedding itself, or a packed copy of it that `weight_bytes` leaves out).
            let head = if info.config.tie_word_embeddings { 0 } else { m.lm_head_bytes };
            assert_eq!(
                m.linear_bytes + m.embedding_bytes + head,
                model.weight_bytes(),
                "{} at {}",
                dir.display(),
                m.dtype
            );
            assert_eq!(m.total_bytes, m.linear_bytes + m.embedding_bytes + m.lm_head_bytes + m.small_bytes);
        }
        assert_eq!(info.parameters, T5Model::from_dir(&dir).unwrap().config().num_parameters());
    }
}

#[test]
fn stored_dtypes_and_variant() {
    let bf16 = ModelInfo::from_dir(&common::fixtures().join("models/bf16-stored")).unwrap();
    assert!(bf16.stored_dtypes.iter().any(|d| d.dtype == "bf16"), "{:?}", bf16.stored_dtypes);
    let tiny = ModelInfo::from_dir(&common::fixtures().join("models/t0-tiny")).unwrap();
    assert_eq!(tiny.variant, "T5 v1.1 / T0 / FLAN-T5 (gated-gelu FFN, untied head)");
    assert_eq!(tiny.stored_dtypes.len(), 1);
    assert_eq!(tiny.stored_dtypes[0].parameters, tiny.parameters);
    assert_eq!(tiny.tokenizer.as_deref(), Some("spiece.model"));
    assert!(tiny.generation_config);
    let relu = ModelInfo::from_dir(&common::fixtures().join("models/relu-tied-deepdec")).unwrap();
    assert_eq!(relu.tokenizer, None);
    assert!(relu.variant.starts_with("original T5"), "{}", relu.variant);
    assert_ne!(relu.config.num_layers, relu.config.num_decoder_layers);
}

#[test]
fn load_progress_reaches_its_total() {
    let dir = common::fixtures().join("models/t0-tiny");
    for dtype in [None, Some(PackDType::Bf16), Some(PackDType::Int8)] {
        let seen = std::cell::Cell::new((0, 0, 0));
        T5Model::load_with_progress(&dir, LoadOptions { dtype, ..Default::default() }, &|_, done, total| {
            let (calls, _, _) = seen.get();
            seen.set((calls + 1, done, total));
        })
        .unwrap();
        let (calls, done, total) = seen.get();
        assert!(total > 0 && done == total && calls == total, "{dtype:?}: {calls} calls, {done}/{total}");
    }
}
