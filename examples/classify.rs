//! Rank classification, as T0 is evaluated: score each answer choice by the log-probability of
//! its tokens after the prompt and pick the best. The prompt is encoded once; all choices are
//! decoded together against its cached cross-attention keys and values.
//!
//! ```sh
//! cargo run --release --example classify                       # the tiny model the repo ships
//! cargo run --release --example classify -- bigscience/T0_3B   # a directory or a hub id in the HF cache
//! ```

use t0_model::T0;

/// The model used when none is given on the command line.
pub const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/t0-tiny");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&std::env::args().nth(1).unwrap_or_else(|| TINY.to_string()))
}

/// Load `model` (a directory or a hub id) and rank the choices.
pub fn run(model: &str) -> Result<(), Box<dyn std::error::Error>> {
    // T0's evaluation encodes prompts without the trailing `</s>`.
    let t0 = T0::from_pretrained(model)?.with_eos(false);
    let prompt = "Suppose \"The cat sat on the mat.\" Can we infer that \"An animal is sitting.\"? Yes, no, or maybe?";
    let choices = ["Yes", "No", "Maybe"];

    let r = t0.classify_text(prompt, &choices, false)?;
    for (i, (choice, s)) in choices.iter().zip(&r.choices).enumerate() {
        let mark = if i == r.best { "*" } else { " " };
        println!("{mark} {choice:<6} sum {:>9.4}  mean {:>8.4}  per token {:?}", s.sum, s.mean, s.token_logprobs);
    }
    println!("best: {}", choices[r.best]);

    // Length-normalised ranking (mean log-prob per token) is one flag away.
    let norm = t0.classify_text(prompt, &choices, true)?;
    println!("best by mean log-prob: {}", choices[norm.best]);
    Ok(())
}
