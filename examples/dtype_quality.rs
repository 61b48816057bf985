//! How far bf16 and int8 weights move a model's outputs from its f32 weights: teacher-forced
//! logits on random inputs, as max and mean |Δlogit|, mean KL(p_f32 ‖ p_dtype) per position and
//! the share of positions whose top-1 token is unchanged.
//!
//! ```text
//! cargo run --release --example dtype_quality -- MODEL_DIR [INPUTS] [INPUT_TOKENS] [DECODER_TOKENS]
//! ```
//!
//! Defaults: 4 inputs of 64 tokens, 16 teacher-forced decoder tokens (all random ids, seed 0).
//! The figures for the T0_3B-shaped model are in docs/performance.md. Run with no argument, it
//! uses the tiny model the repository ships.

use std::path::PathBuf;

use t0_model::{LoadOptions, PackDType, T5Model};

/// Random ids in `[2, vocab)`, a SplitMix-style generator (fixed seed: same ids every run).
fn random_ids(n: usize, vocab: u32, state: &mut u64) -> Vec<u32> {
    (0..n)
        .map(|_| {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            2 + ((z ^ (z >> 31)) % (vocab as u64 - 2)) as u32
        })
        .collect()
}

/// Teacher-forced logits of every case, concatenated (`[cases · decoder tokens, vocab]`).
fn logits(model: &T5Model, cases: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<f32>, t0_model::ModelError> {
    let mut all = Vec::new();
    for (input, teacher) in cases {
        let cross = model.cross_cache(&model.encode(&[input])?);
        let mut state = model.decoder_state(cross, vec![0])?;
        all.extend(model.decode(&mut state, teacher, teacher.len())?);
    }
    Ok(all)
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let mx = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let lse = row.iter().map(|&x| (x as f64 - mx).exp()).sum::<f64>().ln() + mx;
    row.iter().map(|&x| x as f64 - lse).collect()
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("tests/fixtures/models/t0-tiny"));
    let mut num = |default: usize| -> Result<usize, String> {
        args.next().map_or(Ok(default), |s| s.parse().map_err(|_| format!("`{s}` is not a count")))
    };
    let (inputs, in_tokens, dec_tokens) = (num(4)?, num(64)?, num(16)?);

    let reference = T5Model::load(&dir, LoadOptions::default())?;
    let vocab = reference.config().vocab_size;
    let v = vocab.min(32000) as u32;
    let mut seed = 0u64;
    let cases: Vec<(Vec<u32>, Vec<u32>)> = (0..inputs)
        .map(|_| {
            let mut input = random_ids(in_tokens.saturating_sub(1), v, &mut seed);
            input.push(1);
            let mut teacher = vec![0];
            teacher.extend(random_ids(dec_tokens.saturating_sub(1), v, &mut seed));
            (input, teacher)
        })
        .collect();
    let want = logits(&reference, &cases)?;
    drop(reference);
    let rows = want.len() / vocab;
    let spread = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    println!("{}: {rows} positions, |logit| up to {spread:.2}", dir.display());
    println!("| dtype | max abs Δlogit | mean abs Δlogit | mean KL | top-1 kept |");
    println!("|---|---|---|---|---|");
    for dtype in [PackDType::Bf16, PackDType::Int8] {
        let model = T5Model::load(&dir, LoadOptions::with_dtype(dtype))?;
        let got = logits(&model, &cases)?;
        drop(model);
        let max = got.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let mean = got.iter().zip(&want).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / got.len() as f64;
        let (mut kl, mut kept) = (0.0f64, 0usize);
        for r in 0..rows {
            let (w, g) = (&want[r * vocab..][..vocab], &got[r * vocab..][..vocab]);
            let (p, q) = (log_softmax(w), log_softmax(g));
            kl += p.iter().zip(&q).map(|(lp, lq)| lp.exp() * (lp - lq)).sum::<f64>();
            kept += usize::from(argmax(w) == argmax(g));
        }
        println!(
            "| {dtype:?} | {max:.3} | {mean:.4} | {:.2e} | {:.1}% |",
            kl / rows as f64,
            100.0 * kept as f64 / rows as f64
        );
    }
    Ok(())
}
