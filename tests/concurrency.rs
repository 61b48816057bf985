//! One loaded model shared by many threads: every thread gets exactly the sequential results.

mod common;

use std::sync::Arc;

use t0_model::{GenerationConfig, T5Model};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn model_is_send_and_sync() {
    assert_send_sync::<T5Model>();
    assert_send_sync::<t0_model::T0>();
}

#[test]
fn threads_generating_and_scoring_get_sequential_results() {
    let model = Arc::new(T5Model::from_dir(&common::fixtures().join("models/t0-tiny")).unwrap());
    let inputs: Vec<Vec<u32>> = vec![vec![27, 7, 48, 1], vec![363, 19, 8, 1], vec![5, 1], vec![100, 200, 300, 400, 1]];
    let choices = vec![vec![1465, 1], vec![2841, 1], vec![7163, 1]];
    let greedy = GenerationConfig::greedy(8);
    let beam = GenerationConfig { num_beams: 3, max_new_tokens: 6, ..Default::default() };
    let expected: Vec<_> = inputs
        .iter()
        .map(|x| {
            let g = model.generate(std::slice::from_ref(x), &greedy).unwrap();
            let b = model.generate(std::slice::from_ref(x), &beam).unwrap();
            let s = model.classify(x, &choices, false).unwrap();
            (g, b, s)
        })
        .collect();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (model, inputs, choices, greedy, beam) =
                (model.clone(), inputs.clone(), choices.clone(), greedy.clone(), beam.clone());
            std::thread::spawn(move || {
                (0..inputs.len())
                    .map(|k| {
                        let x = &inputs[(k + t) % inputs.len()];
                        let g = model.generate(std::slice::from_ref(x), &greedy).unwrap();
                        let b = model.generate(std::slice::from_ref(x), &beam).unwrap();
                        let s = model.classify(x, &choices, false).unwrap();
                        ((k + t) % inputs.len(), (g, b, s))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for (i, got) in h.join().unwrap() {
            assert_eq!(got, expected[i], "input {i}");
        }
    }
}
