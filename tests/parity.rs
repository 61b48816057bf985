//! Parity with HF transformers on the committed fixture models (f32): encoder states, logits of
//! the first step and of a teacher-forced sequence, greedy ids and log-probabilities, a padded
//! batch. Tolerance 1e-4 absolute, ids identical.

mod common;

use common::*;
use t0_model::{GenerationConfig, T5Model};

const TOL: f32 = 1e-4;

fn for_each_model(f: impl Fn(&str, &T5Model, &Expected)) {
    for dir in fixture_models() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = T5Model::from_dir(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let exp = Expected::load(&dir);
        f(&name, &model, &exp);
    }
}

#[test]
fn encoder_hidden_states() {
    for_each_model(|name, model, exp| {
        for (i, case) in exp.cases().iter().enumerate() {
            let input = ids(&case["input_ids"]);
            let enc = model.encode(&[&input]).unwrap();
            let want = exp.array(&format!("case{i}.encoder_hidden"));
            assert_close(&enc.hidden, &want, TOL, &format!("{name} case {i} encoder"));
        }
    });
}

#[test]
fn first_step_and_teacher_forced_logits() {
    for_each_model(|name, model, exp| {
        let start = model.config().decoder_start_token_id;
        for (i, case) in exp.cases().iter().enumerate() {
            let input = ids(&case["input_ids"]);
            let enc = model.encode(&[&input]).unwrap();
            let cross = model.cross_cache(&enc);

            let mut state = model.decoder_state(cross.clone(), vec![0]).unwrap();
            let logits = model.decode(&mut state, &[start], 1).unwrap();
            assert_close(&logits, &exp.array(&format!("case{i}.first_logits")), TOL, &format!("{name} case {i} first"));

            // The whole teacher-forced sequence in one call, and the same one token at a time.
            let teacher = ids(&case["teacher"]["decoder_input_ids"]);
            let want = exp.array(&format!("case{i}.teacher_logits"));
            let mut state = model.decoder_state(cross.clone(), vec![0]).unwrap();
            let all = model.decode(&mut state, &teacher, teacher.len()).unwrap();
            assert_close(&all, &want, TOL, &format!("{name} case {i} teacher (one call)"));
            let mut state = model.decoder_state(cross, vec![0]).unwrap();
            let mut stepwise = Vec::new();
            for &t in &teacher {
                stepwise.extend(model.decode(&mut state, &[t], 1).unwrap());
            }
            assert_close(&stepwise, &want, TOL, &format!("{name} case {i} teacher (stepwise)"));
        }
    });
}

#[test]
fn greedy_ids_and_logprobs() {
    for_each_model(|name, model, exp| {
        for (i, case) in exp.cases().iter().enumerate() {
            let input = ids(&case["input_ids"]);
            for key in ["greedy", "greedy_min"] {
                let g = &case[key];
                let opts = GenerationConfig {
                    max_new_tokens: g["max_new_tokens"].as_u64().unwrap() as usize,
                    min_new_tokens: g["min_new_tokens"].as_u64().unwrap() as usize,
                    ..Default::default()
                };
                let out = model.generate(std::slice::from_ref(&input), &opts).unwrap();
                let out = &out[0];
                assert_eq!(out[0].token_ids, ids(&g["token_ids"]), "{name} case {i} {key} ids");
                assert_close(
                    &out[0].token_logprobs,
                    &floats(&g["token_logprobs"]),
                    TOL,
                    &format!("{name} case {i} {key}"),
                );
            }
        }
    });
}

#[test]
fn padded_batch_matches_hf() {
    for_each_model(|name, model, exp| {
        let b = &exp.json["batch"];
        let rows: Vec<Vec<u32>> = b["input_ids"].as_array().unwrap().iter().map(ids).collect();
        let mask: Vec<u8> = b["attention_mask"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect::<Vec<_>>())
            .collect();
        let flat: Vec<u32> = rows.concat();
        let enc = model.encode_padded(&flat, &mask, rows.len()).unwrap();
        let want = exp.array("batch.encoder_hidden");
        // Compare the real tokens' states; padded positions are compared too, HF computes them
        // the same way (they attend to the real tokens).
        assert_close(&enc.hidden, &want, TOL, &format!("{name} batch encoder"));
        let cross = model.cross_cache(&enc);
        let mut state = model.decoder_state(cross, (0..rows.len()).collect()).unwrap();
        let start = vec![model.config().decoder_start_token_id; rows.len()];
        let logits = model.decode(&mut state, &start, 1).unwrap();
        assert_close(&logits, &exp.array("batch.first_logits"), TOL, &format!("{name} batch first logits"));
    });
}

#[test]
fn batched_generation_equals_one_by_one() {
    for_each_model(|name, model, exp| {
        let inputs: Vec<Vec<u32>> = exp.cases().iter().map(|c| ids(&c["input_ids"])).collect();
        let opts = GenerationConfig::greedy(12);
        let batched = model.generate(&inputs, &opts).unwrap();
        for (i, input) in inputs.iter().enumerate() {
            let one = model.generate(std::slice::from_ref(input), &opts).unwrap();
            assert_eq!(batched[i][0].token_ids, one[0][0].token_ids, "{name} input {i}");
            let what = format!("{name} input {i}");
            assert_close(&batched[i][0].token_logprobs, &one[0][0].token_logprobs, TOL, &what);
        }
    });
}

#[test]
fn relative_position_buckets_match_hf() {
    let text = std::fs::read_to_string(fixtures().join("buckets.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let bi = case["bidirectional"].as_bool().unwrap();
        let nb = case["num_buckets"].as_u64().unwrap() as usize;
        let md = case["max_distance"].as_u64().unwrap() as usize;
        let min = case["min_relative"].as_i64().unwrap();
        for (k, want) in case["buckets"].as_array().unwrap().iter().enumerate() {
            let rel = min + k as i64;
            let got = t0_kernels::relative_position_bucket(rel, bi, nb, md);
            assert_eq!(got as u64, want.as_u64().unwrap(), "bidirectional={bi} buckets={nb} max={md} rel={rel}");
        }
    }
}

#[test]
fn beam_search_matches_hf() {
    for_each_model(|name, model, exp| {
        for (i, case) in exp.cases().iter().enumerate() {
            let input = ids(&case["input_ids"]);
            let b = &case["beam4"];
            let cfg = GenerationConfig { max_new_tokens: 12, num_beams: 4, ..Default::default() };
            let out = model.generate(std::slice::from_ref(&input), &cfg).unwrap();
            assert_eq!(out[0][0].token_ids, ids(&b["token_ids"]), "{name} case {i} beam4 ids");
            let score = out[0][0].score.unwrap();
            let want = b["sequence_score"].as_f64().unwrap() as f32;
            assert!((score - want).abs() <= TOL, "{name} case {i} beam4 score {score} vs {want}");

            let b = &case["beam4_ret2"];
            let cfg = GenerationConfig { num_return_sequences: 2, ..cfg };
            let out = model.generate(std::slice::from_ref(&input), &cfg).unwrap();
            let want_scores = floats(&b["sequence_scores"]);
            for (j, want_ids) in b["token_ids"].as_array().unwrap().iter().enumerate() {
                assert_eq!(out[0][j].token_ids, ids(want_ids), "{name} case {i} beam4 ret {j} ids");
                let s = out[0][j].score.unwrap();
                assert!((s - want_scores[j]).abs() <= TOL, "{name} case {i} ret {j} score {s} vs {}", want_scores[j]);
            }
        }
    });
}

/// Greedy and beam search with logits processors at work (repetition penalties above and below
/// 1, n-gram bans, minimum lengths) give HF's ids, log-probs and scores, each model's cases
/// decoded as one batch.
#[test]
fn logits_processors_match_hf() {
    for dir in fixture_models() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = T5Model::from_dir(&dir).unwrap();
        check_processor_runs(&dir, TOL, &name, |inputs, cfg| model.generate(inputs, cfg).unwrap());
    }
}

/// Beam search of all of a model's cases in one call (their beams decoded together, inputs of
/// different lengths, searches ending at different steps) gives each case HF's beams.
#[test]
fn batched_beam_search_matches_hf() {
    for_each_model(|name, model, exp| {
        let inputs: Vec<Vec<u32>> = exp.cases().iter().map(|c| ids(&c["input_ids"])).collect();
        let cfg = GenerationConfig { max_new_tokens: 12, num_beams: 4, num_return_sequences: 2, ..Default::default() };
        let out = model.generate(&inputs, &cfg).unwrap();
        for (i, (case, got)) in exp.cases().iter().zip(&out).enumerate() {
            let b = &case["beam4_ret2"];
            let want_scores = floats(&b["sequence_scores"]);
            for (j, want_ids) in b["token_ids"].as_array().unwrap().iter().enumerate() {
                assert_eq!(got[j].token_ids, ids(want_ids), "{name} case {i} of a batch: beam4 ret {j} ids");
                let s = got[j].score.unwrap();
                assert!((s - want_scores[j]).abs() <= TOL, "{name} case {i} of a batch: ret {j} score {s}");
            }
        }
    });
}

#[test]
fn choice_scores_match_hf_with_one_encoder_pass() {
    for_each_model(|name, model, exp| {
        for (i, case) in exp.cases().iter().enumerate() {
            let input = ids(&case["input_ids"]);
            let ch = &case["choices"];
            let choices: Vec<Vec<u32>> = ch["choices"].as_array().unwrap().iter().map(ids).collect();
            let before = model.encoder_passes();
            let r = model.classify(&input, &choices, false).unwrap();
            assert_eq!(model.encoder_passes() - before, 1, "{name}: one encoder pass for all choices");
            let sums: Vec<f32> = r.choices.iter().map(|c| c.sum).collect();
            let means: Vec<f32> = r.choices.iter().map(|c| c.mean).collect();
            assert_close(&sums, &floats(&ch["scores"]), TOL, &format!("{name} case {i} choice scores"));
            assert_close(&means, &floats(&ch["length_normalized"]), TOL, &format!("{name} case {i} normalized"));
            let best = (0..sums.len()).fold(0, |b, j| if sums[j] > sums[b] { j } else { b });
            assert_eq!(r.best, best);
        }
    });
}

/// All of a model's cases scored in one `classify_batch` call (prompts of different lengths
/// padded into one encoder batch, every choice of every case one decoder row reading its own
/// prompt's cache, choices of different lengths): each case's scores are HF's, and the batch
/// ran the encoder once.
#[test]
fn batched_choice_scores_match_hf() {
    for_each_model(|name, model, exp| {
        let cases = exp.cases();
        let prompts: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["input_ids"])).collect();
        let choices: Vec<Vec<Vec<u32>>> =
            cases.iter().map(|c| c["choices"]["choices"].as_array().unwrap().iter().map(ids).collect()).collect();
        // Reversed, so that the batch's order is not the fixture's.
        let items: Vec<t0_model::ClassifyItem> =
            prompts.iter().zip(&choices).rev().map(|(p, c)| (p.as_slice(), c.as_slice())).collect();
        let before = model.encoder_passes();
        let out = model.classify_batch(&items, false).unwrap();
        assert_eq!(model.encoder_passes() - before, 1, "{name}: one encoder pass for the batch");
        assert_eq!(out.len(), cases.len());
        for (i, (case, r)) in cases.iter().rev().zip(&out).enumerate() {
            let sums: Vec<f32> = r.choices.iter().map(|c| c.sum).collect();
            let ch = &case["choices"];
            assert_close(&sums, &floats(&ch["scores"]), TOL, &format!("{name} batch item {i} choice scores"));
            let best = (0..sums.len()).fold(0, |b, j| if sums[j] > sums[b] { j } else { b });
            assert_eq!(r.best, best, "{name} batch item {i}");
        }
    });
}

/// Models written by transformers 5.x (tools/gen_fixtures_tf5.py): every config says
/// `tie_word_embeddings: true`, and `scale_decoder_outputs` says whether the decoder output is
/// scaled before the (tied) head. Greedy ids are the same either way (a positive scale keeps
/// the argmax); the log-probs tell the two apart.
#[test]
fn transformers5_saved_models_match_hf() {
    for name in ["unscaled", "scaled"] {
        let dir = fixtures().join("transformers5").join(name);
        let model = T5Model::from_dir(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let exp: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        assert_eq!(model.config().scale_decoder_outputs, name == "scaled");
        assert!(model.config().tie_word_embeddings);
        let opts = GenerationConfig::greedy(exp["max_new_tokens"].as_u64().unwrap() as usize);
        for (i, case) in exp["cases"].as_array().unwrap().iter().enumerate() {
            let out = model.generate(&[ids(&case["input_ids"])], &opts).unwrap();
            let g = &case["greedy"];
            assert_eq!(out[0][0].token_ids, ids(&g["token_ids"]), "{name} case {i} ids");
            let want = floats(&g["token_logprobs"]);
            assert_close(&out[0][0].token_logprobs, &want, TOL, &format!("{name} case {i} log-probs"));
        }
    }
}

/// The logits processors and sampling warpers, row by row, against the list HF's `generate()`
/// builds for the same sampling settings (`tests/fixtures/logits_process.json`: 100 rows with
/// ties, −∞ and all-equal values; random temperatures, top-k, top-p, repetition penalties, n-gram
/// sizes, minimum lengths and decoder inputs): the same values kept, bit for bit, and the same
/// entries removed — except which of several *equal* entries top-p removes at its cut, which HF
/// leaves to torch's unstable sort (ours removes the lower indices first).
#[test]
fn logits_processors_and_warpers_match_hf_row_by_row() {
    use t0_model::logits_process::{process, warp};
    let text = std::fs::read_to_string(fixtures().join("logits_process.json")).unwrap();
    let exp: serde_json::Value = serde_json::from_str(&text).unwrap();
    let eos = exp["eos_token_id"].as_u64().unwrap() as usize;
    // −∞ is written as null.
    let row = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().map_or(f32::NEG_INFINITY, |f| f as f32)).collect()
    };
    let kept = |v: &[f32]| {
        let mut k: Vec<u32> = v.iter().filter(|x| x.is_finite()).map(|x| x.to_bits()).collect();
        k.sort_unstable();
        k
    };
    let cases = exp["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 100);
    let mut tie_cuts = 0;
    for (i, case) in cases.iter().enumerate() {
        let c = &case["config"];
        let cfg = GenerationConfig {
            do_sample: true,
            temperature: c["temperature"].as_f64().unwrap() as f32,
            top_k: c["top_k"].as_u64().unwrap() as usize,
            top_p: c["top_p"].as_f64().unwrap() as f32,
            repetition_penalty: c["repetition_penalty"].as_f64().unwrap() as f32,
            no_repeat_ngram_size: c["no_repeat_ngram_size"].as_u64().unwrap() as usize,
            min_new_tokens: c["min_new_tokens"].as_u64().unwrap() as usize,
            ..Default::default()
        };
        let what = format!("case {i} ({c}, {})", case["hf_processors"]);
        let mut got = row(&case["logits"]);
        process(&mut got, &ids(&case["decoder_input_ids"]), &cfg, eos);
        // What top-p cuts from: the row after the processors, the temperature and top-k.
        let mut before_p = got.clone();
        warp(&mut before_p, &GenerationConfig { top_p: 1.0, ..cfg.clone() });
        warp(&mut got, &cfg);
        let want = row(&case["processed"]);
        assert_eq!(kept(&got), kept(&want), "{what}: the values kept");
        let differ: Vec<usize> = (0..got.len()).filter(|&j| got[j].to_bits() != want[j].to_bits()).collect();
        for &j in &differ {
            let ties = before_p.iter().filter(|&&x| x == before_p[j]).count();
            assert!(
                cfg.top_p < 1.0 && ties > 1,
                "{what}: entry {j} is {}, HF {} (not a tie at the top-p cut)",
                got[j],
                want[j]
            );
        }
        tie_cuts += usize::from(!differ.is_empty());
    }
    // The fixture's all-equal and coarse-grid rows put ties at the cut now and then.
    assert!(tie_cuts < 10, "{tie_cuts} rows differ at a tie");
}
