//! Generate answers to text prompts: greedy, then beam search with several returned sequences.
//!
//! ```sh
//! cargo run --release --example generate                       # the tiny model the repo ships
//! cargo run --release --example generate -- bigscience/T0_3B   # a directory or a hub id in the HF cache
//! ```
//!
//! The tiny model has random weights: its answers are gibberish, but the code is the same for
//! T0_3B.

use t0_model::{GenerationConfig, T0};

/// The model used when none is given on the command line.
pub const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/t0-tiny");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&std::env::args().nth(1).unwrap_or_else(|| TINY.to_string()))
}

/// Load `model` (a directory or a hub id) and generate.
pub fn run(model: &str) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = T0::from_pretrained(model)?;
    let prompts = [
        "Is this review positive or negative? Review: this is the best cast iron skillet you will ever buy",
        "A is the son of B's uncle. What is the family relationship between A and B?",
    ];

    // Greedy, both prompts in one batch.
    let greedy = t0.generate_text(&prompts, &GenerationConfig::greedy(16))?;
    for (prompt, answers) in prompts.iter().zip(&greedy) {
        let a = &answers[0];
        println!("{prompt}\n  greedy: {:?} (ids {:?})", a.text, a.generated.token_ids);
    }

    // Beam search with HF's option names; two answers per prompt, best first.
    let beam = GenerationConfig { num_beams: 4, num_return_sequences: 2, max_new_tokens: 16, ..Default::default() };
    let out = t0.generate_text(&prompts[..1], &beam)?;
    for (i, a) in out[0].iter().enumerate() {
        println!("  beam #{i}: {:?} (score {:.4})", a.text, a.generated.score.unwrap_or(f32::NAN));
    }
    Ok(())
}
