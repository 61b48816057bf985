//! Continuous batching at the model level: rows encoded at different times, of different input
//! lengths and at different positions, decoded together in one state, give exactly the logits
//! each gets alone.

mod common;

use common::{fixture_models, ids, max_abs_diff, Expected};
use t0_model::T5Model;

/// Greedy-decodes `steps` tokens for `input` alone, returning the logits of every step.
fn alone(model: &T5Model, input: &[u32], steps: usize) -> (Vec<Vec<f32>>, Vec<u32>) {
    let enc = model.encode(&[input]).unwrap();
    let mut state = model.decoder_state(model.cross_cache(&enc), vec![0]).unwrap();
    let (mut tok, mut all, mut toks) = (0u32, Vec::new(), Vec::new());
    for _ in 0..steps {
        let logits = model.decode(&mut state, &[tok], 1).unwrap();
        tok = argmax(&logits);
        toks.push(tok);
        all.push(logits);
    }
    (all, toks)
}

fn argmax(x: &[f32]) -> u32 {
    x.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32
}

#[test]
fn rows_joined_mid_generation_match_running_alone() {
    for dir in fixture_models() {
        let exp = Expected::load(&dir);
        let model = T5Model::from_dir(&dir).unwrap();
        let inputs: Vec<Vec<u32>> = exp.cases().iter().map(|c| ids(&c["input_ids"])).collect();
        let (a, b, c) = (&inputs[3], &inputs[1], &inputs[0]);
        let (ref_a, toks_a) = alone(&model, a, 6);
        let (ref_b, toks_b) = alone(&model, b, 4);
        let (ref_c, toks_c) = alone(&model, c, 2);

        // a runs 2 steps alone; b joins (fresh) for 2 steps; then c joins and a is dropped.
        let enc_a = model.encode(&[a.as_slice()]).unwrap();
        let mut state = model.decoder_state(model.cross_cache(&enc_a), vec![0]).unwrap();
        let v = model.config().vocab_size;
        let mut feed_a = 0u32;
        for s in 0..2 {
            let l = model.decode(&mut state, &[feed_a], 1).unwrap();
            assert!(max_abs_diff(&l, &ref_a[s], "a") < 1e-5);
            feed_a = toks_a[s];
        }
        let enc_b = model.encode(&[b.as_slice()]).unwrap();
        state.append(model.decoder_state(model.cross_cache(&enc_b), vec![0]).unwrap()).unwrap();
        assert_eq!(state.lens(), &[2, 0]);
        let mut feed_b = 0u32;
        for s in 0..2 {
            let l = model.decode(&mut state, &[feed_a, feed_b], 1).unwrap();
            assert!(max_abs_diff(&l[..v], &ref_a[2 + s], "a") < 1e-5, "{dir:?} a step {}", 2 + s);
            assert!(max_abs_diff(&l[v..], &ref_b[s], "b") < 1e-5, "{dir:?} b step {s}");
            feed_a = toks_a[2 + s];
            feed_b = toks_b[s];
        }
        let enc_c = model.encode(&[c.as_slice()]).unwrap();
        state.append(model.decoder_state(model.cross_cache(&enc_c), vec![0]).unwrap()).unwrap();
        state.select_rows(&[1, 2]).unwrap();
        assert_eq!(state.lens(), &[2, 0]);
        let mut feed_c = 0u32;
        for s in 0..2 {
            let l = model.decode(&mut state, &[feed_b, feed_c], 1).unwrap();
            assert!(max_abs_diff(&l[..v], &ref_b[2 + s], "b") < 1e-5, "{dir:?} b step {}", 2 + s);
            assert!(max_abs_diff(&l[v..], &ref_c[s], "c") < 1e-5, "{dir:?} c step {s}");
            feed_b = toks_b[2 + s];
            feed_c = toks_c[s];
        }
    }
}

#[test]
fn append_rejects_a_state_of_another_model() {
    let dirs = fixture_models();
    let m1 = T5Model::from_dir(&dirs[0]).unwrap();
    let other = dirs.iter().map(|d| T5Model::from_dir(d).unwrap()).find(|m| {
        let (a, b) = (m.config(), m1.config());
        (a.num_decoder_layers, a.num_heads, a.d_kv) != (b.num_decoder_layers, b.num_heads, b.d_kv)
    });
    let m2 = other.expect("two fixture models of different decoder shapes");
    let s1 = m1.decoder_state(m1.cross_cache(&m1.encode(&[&[1]]).unwrap()), vec![0]).unwrap();
    let mut s2 = m2.decoder_state(m2.cross_cache(&m2.encode(&[&[1]]).unwrap()), vec![0]).unwrap();
    let err = s2.append(s1).unwrap_err().to_string();
    assert!(err.contains("different models"), "{err}");
}
