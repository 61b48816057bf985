//! Load test for `t0 serve` (loopback only, bounded): sends the same requests first one at a
//! time, then from N concurrent clients, and reports tokens/s and latency percentiles of both.
//! Every concurrent answer must equal the answer the same request got alone (exit code 1 if not).
//!
//! ```text
//! cargo run --release -p t0-serve --example load_test -- --model tests/fixtures/models/t0-tiny
//! cargo run --release -p t0-serve --example load_test -- --addr 127.0.0.1:8080 --clients 8
//! ```
//!
//! Prompts are token ids (so any model works, with or without a tokenizer) of mixed lengths;
//! even-numbered requests decode greedily, odd-numbered ones sample with their own seed.
//! `min_new_tokens = max_new_tokens` by default so that every request generates the same
//! number of tokens and the two phases do the same work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use t0_model::{LoadOptions, PackDType, T0};
use t0_serve::client::post_json;
use t0_serve::{RunningServer, ServeOptions};

#[derive(Debug, Parser)]
struct Args {
    /// Start a server in this process for this model directory (on a free loopback port).
    #[arg(long, conflicts_with = "addr")]
    model: Option<PathBuf>,
    /// Or test a running server at this loopback address (host:port).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// With --model: convert weights at load (f32, bf16, int8).
    #[arg(long, value_parser = parse_dtype)]
    dtype: Option<PackDType>,
    /// With --model: the server's --max-batch.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests in each phase (default: one per client).
    #[arg(long)]
    requests: Option<usize>,
    /// Tokens generated per request.
    #[arg(long, default_value_t = 16)]
    max_new_tokens: usize,
    /// Let requests stop at `</s>` (default: all generate exactly --max-new-tokens).
    #[arg(long)]
    free_length: bool,
    /// Prompt lengths, used in turn.
    #[arg(long, value_delimiter = ',', default_value = "7,23,12,48,3,31,16,9")]
    prompt_lens: Vec<usize>,
    /// Skip the sequential phase (then answers are not checked).
    #[arg(long)]
    no_sequential: bool,
}

fn parse_dtype(s: &str) -> Result<PackDType, String> {
    match s {
        "f32" => Ok(PackDType::F32),
        "bf16" => Ok(PackDType::Bf16),
        "int8" => Ok(PackDType::Int8),
        _ => Err(format!("`{s}` is not f32, bf16 or int8")),
    }
}

/// Request `i`: prompt ids from a fixed LCG, mixed lengths, greedy or sampling.
fn request(i: usize, a: &Args, vocab: u32) -> serde_json::Value {
    let len = a.prompt_lens[i % a.prompt_lens.len()].max(1);
    let mut x = 0x9E37_79B9u64.wrapping_mul(i as u64 + 1);
    let mut ids: Vec<u32> = (0..len - 1)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            2 + ((x >> 33) % (vocab as u64 - 2)) as u32
        })
        .collect();
    ids.push(1);
    let mut v = json!({"input_ids": ids, "max_new_tokens": a.max_new_tokens});
    if !a.free_length {
        v["min_new_tokens"] = a.max_new_tokens.into();
    }
    if i % 2 == 1 {
        v["seed"] = (i as u64).into();
        v["top_k"] = 40.into();
    }
    v
}

struct Phase {
    wall: Duration,
    latencies: Vec<Duration>,
    tokens: usize,
    answers: Vec<String>,
}

fn run_phase(addr: SocketAddr, reqs: &[serde_json::Value], clients: usize) -> Result<Phase, String> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; reqs.len()]);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= reqs.len() {
                    return;
                }
                let t = Instant::now();
                let r = post_json(addr, "/generate", &reqs[i]).map_err(|e| e.to_string()).and_then(|r| {
                    if r.status == 200 {
                        Ok(r.text())
                    } else {
                        Err(format!("HTTP {}: {}", r.status, r.text()))
                    }
                });
                if let Ok(mut res) = results.lock() {
                    res[i] = Some((r, t.elapsed()));
                }
            });
        }
    });
    let wall = start.elapsed();
    let mut phase = Phase { wall, latencies: Vec::new(), tokens: 0, answers: Vec::new() };
    for (i, r) in results.into_inner().map_err(|_| "poisoned".to_string())?.into_iter().enumerate() {
        let (text, lat) = r.ok_or_else(|| format!("request {i} got no answer"))?;
        let text = text.map_err(|e| format!("request {i}: {e}"))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("request {i}: {e}"))?;
        phase.tokens += v["token_ids"].as_array().map_or(0, Vec::len);
        phase.latencies.push(lat);
        phase.answers.push(text);
    }
    phase.latencies.sort();
    Ok(phase)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64()
}

fn report(name: &str, p: &Phase) -> f64 {
    let tps = p.tokens as f64 / p.wall.as_secs_f64();
    println!(
        "{name:<11} {:>4} requests {:>6} tokens in {:>8.2} s: {:>9.2} tokens/s, latency p50 {:.3} s, p99 {:.3} s",
        p.answers.len(),
        p.tokens,
        p.wall.as_secs_f64(),
        tps,
        pct(&p.latencies, 0.5),
        pct(&p.latencies, 0.99)
    );
    tps
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, String> {
    let a = Args::parse();
    if a.clients == 0 || a.max_new_tokens == 0 || a.prompt_lens.is_empty() {
        return Err("--clients, --max-new-tokens and --prompt-lens must be positive".into());
    }
    let (_server, addr, vocab) = match (&a.model, a.addr) {
        (Some(dir), _) => {
            let t = Instant::now();
            let t0 =
                T0::load(dir, LoadOptions { dtype: a.dtype, ..LoadOptions::default() }).map_err(|e| e.to_string())?;
            eprintln!("loaded {} in {:.1} s", dir.display(), t.elapsed().as_secs_f64());
            let vocab = t0.model().config().vocab_size as u32;
            let options = ServeOptions { max_batch: a.max_batch, max_queue: 4096, ..ServeOptions::default() };
            let s = RunningServer::start(Arc::new(t0), options, "127.0.0.1:0".parse().map_err(|_| "addr")?)
                .map_err(|e| e.to_string())?;
            let addr = s.addr();
            (Some(s), addr, vocab)
        }
        (None, Some(addr)) if addr.ip().is_loopback() => (None, addr, 32000),
        (None, Some(addr)) => return Err(format!("{addr} is not a loopback address: this load test stays local")),
        (None, None) => return Err("give --model DIR or --addr HOST:PORT".into()),
    };
    let n = a.requests.unwrap_or(a.clients);
    let reqs: Vec<serde_json::Value> = (0..n).map(|i| request(i, &a, vocab)).collect();
    // Warm-up (page faults, allocator): one short request, not measured.
    let mut warm = reqs[0].clone();
    warm["max_new_tokens"] = 1.into();
    warm["min_new_tokens"] = 0.into();
    post_json(addr, "/generate", &warm).map_err(|e| e.to_string())?;

    let seq = if a.no_sequential { None } else { Some(run_phase(addr, &reqs, 1)?) };
    let conc = run_phase(addr, &reqs, a.clients)?;
    let seq_tps = seq.as_ref().map(|s| report("sequential", s));
    let conc_tps = report(&format!("{} clients", a.clients), &conc);
    let mut ok = true;
    if let (Some(seq), Some(seq_tps)) = (&seq, seq_tps) {
        println!("speed-up: {:.2}x tokens/s", conc_tps / seq_tps);
        let bad: Vec<usize> = (0..n).filter(|&i| seq.answers[i] != conc.answers[i]).collect();
        if bad.is_empty() {
            println!("all {n} concurrent answers equal the answers of the same requests sent alone");
        } else {
            println!("MISMATCH: requests {bad:?} answered differently under load");
            ok = false;
        }
    }
    Ok(ok)
}
