//! `t0 inspect`: what a model directory holds, without loading the weights.

use anyhow::{Context, Result};
use t0_model::ModelInfo;

/// Options of `t0 inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: super::model_arg::ModelArg,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Bytes in the largest binary unit that keeps the number at least 1.
fn size(bytes: usize) -> String {
    let b = bytes as f64;
    match bytes {
        n if n >= 1 << 30 => format!("{:.2} GiB", b / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2} MiB", b / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", b / 1024.0),
        n => format!("{n} B"),
    }
}

fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

pub fn run(a: Args) -> Result<()> {
    let dir = a.model.dir()?;
    let info = ModelInfo::from_dir(&dir).with_context(|| format!("inspecting {}", a.model.model))?;
    if a.json {
        println!("{}", serde_json::to_string(&info)?);
        if !info.problems.is_empty() {
            anyhow::bail!("{} problem(s) found: the model would not load", info.problems.len());
        }
        return Ok(());
    }
    let c = &info.config;
    println!("model            {}", info.dir.display());
    println!("variant          {}", info.variant);
    if let Some(arch) = &info.architecture {
        println!("architecture     {arch} ({})", info.model_type);
    }
    println!("layers           {} encoder, {} decoder", c.num_layers, c.num_decoder_layers);
    println!("d_model          {}", c.d_model);
    println!("heads            {} x d_kv {} (inner {})", c.num_heads, c.d_kv, c.num_heads * c.d_kv);
    println!("d_ff             {} ({})", c.d_ff, c.feed_forward_proj);
    println!("vocab            {}", c.vocab_size);
    let tied = match (c.tie_word_embeddings, c.scale_decoder_outputs) {
        (true, true) => "yes (LM head = embedding, decoder output scaled by d_model^-0.5)",
        (true, false) => "yes (LM head = embedding, decoder output not scaled: scale_decoder_outputs false)",
        (false, true) => "no (decoder output scaled by d_model^-0.5: scale_decoder_outputs true)",
        (false, false) => "no",
    };
    println!("tied embeddings  {tied}");
    println!(
        "relative buckets {} (max distance {})",
        c.relative_attention_num_buckets, c.relative_attention_max_distance
    );
    println!("parameters       {} ({})", count(info.parameters), info.parameters);
    let files: Vec<String> = info.files.iter().map(|f| format!("{} ({})", f.name, size(f.bytes as usize))).collect();
    println!("weight files     {}{}", files.join(", "), if info.sharded { " [sharded]" } else { "" });
    if let Some(d) = &info.packed {
        println!("converted        linear weights packed as {d} by `t0 convert` (loads as stored, read in place)");
    }
    for d in &info.stored_dtypes {
        println!("stored {:<9} {} tensors, {} parameters, {}", d.dtype, d.tensors, count(d.parameters), size(d.bytes));
    }
    println!("weight memory    (linear + embedding + lm head + norms/bias; activations and caches extra)");
    for m in &info.memory {
        let how = if m.dtype == "as stored" { "as stored".to_string() } else { format!("--dtype {}", m.dtype) };
        println!(
            "  {how:<12}   {:>11}  = {} + {} + {} + {}",
            size(m.total_bytes),
            size(m.linear_bytes),
            size(m.embedding_bytes),
            size(m.lm_head_bytes),
            size(m.small_bytes)
        );
    }
    println!(
        "KV cache         {} per token per sequence (self; cross the same per input token)",
        size(info.cache_bytes_per_token)
    );
    println!("tokenizer        {}", info.tokenizer.as_deref().unwrap_or("none (token ids only)"));
    println!("generation cfg   {}", if info.generation_config { "generation_config.json" } else { "none" });
    if info.problems.is_empty() {
        println!("check            every tensor present with the config's shape");
    } else {
        for p in &info.problems {
            println!("problem          {p}");
        }
    }
    if !info.problems.is_empty() {
        anyhow::bail!("{} problem(s) found: the model would not load", info.problems.len());
    }
    Ok(())
}
