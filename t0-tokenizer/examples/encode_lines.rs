//! Reads JSON lines `{"text": ...}` on stdin and prints, per line, `{"ids": [...], "decoded":
//! ..., "decoded_keep": ...}`: a harness for comparing with HF on many texts.
//!
//! `cargo run --release -p t0-tokenizer --example encode_lines -- MODEL_DIR < texts.jsonl`

use std::io::{BufRead, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: encode_lines MODEL_DIR < texts.jsonl")?;
    let tok = t0_tokenizer::Tokenizer::from_dir(std::path::Path::new(&dir))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        let text = v["text"].as_str().ok_or("each line needs a \"text\" string")?;
        let ids = tok.encode(text);
        let rec = serde_json::json!({
            "ids": ids,
            "decoded": tok.decode(&ids, true),
            "decoded_keep": tok.decode(&ids, false),
        });
        writeln!(out, "{rec}")?;
    }
    Ok(())
}
