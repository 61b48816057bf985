//! `t0 serve`: the HTTP inference server (the work happens in `t0-serve`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use t0_model::LoadOptions;
use t0_serve::{Metrics, ServeOptions};

/// Options of `t0 serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: super::model_arg::ModelArg,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Most sequences decoded together in one step (continuous batching).
    #[arg(long, default_value_t = ServeOptions::default().max_batch)]
    max_batch: usize,
    /// Most requests waiting for a place in the batch; more are answered 429 (Retry-After: 1).
    #[arg(long, default_value_t = ServeOptions::default().max_queue)]
    max_queue: usize,
    /// Largest request body in bytes; larger ones are answered 413.
    #[arg(long, default_value_t = ServeOptions::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Largest max_new_tokens a request may ask for.
    #[arg(long, default_value_t = ServeOptions::default().max_new_tokens)]
    max_new_tokens: usize,
    /// Longest prompt in tokens (and most answer-choice tokens of a score request: count × longest).
    #[arg(long, default_value_t = ServeOptions::default().max_input_tokens)]
    max_input_tokens: usize,
    /// Convert the linear weights at load: f32, bf16 or int8 (default: as stored, memory-mapped).
    #[arg(long, value_parser = super::parse_dtype)]
    dtype: Option<t0_model::PackDType>,
    /// Load even when this machine seems not to have the memory the weights need.
    #[arg(long)]
    no_memory_check: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.max_batch == 0 {
        anyhow::bail!("--max-batch must be at least 1");
    }
    if a.max_new_tokens == 0 {
        anyhow::bail!("--max-new-tokens must be at least 1");
    }
    let options = ServeOptions {
        max_batch: a.max_batch,
        max_queue: a.max_queue,
        max_body_bytes: a.max_body_bytes,
        max_new_tokens: a.max_new_tokens,
        max_input_tokens: a.max_input_tokens,
    };
    if a.max_input_tokens == 0 {
        anyhow::bail!("--max-input-tokens must be at least 1");
    }
    super::load_args::check_kernels_env()?;
    let load = LoadOptions {
        dtype: a.dtype,
        check_memory: !a.no_memory_check,
        // The server checks each request against the same limit first (a 400 naming it).
        max_input_tokens: a.max_input_tokens,
        ..LoadOptions::default()
    };
    let t0 = Arc::new(a.model.load(load)?);
    super::load_args::warn_unused(t0.model());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let addr = SocketAddr::new(a.host, a.port);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
        // The first line of stdout is the address (scripts and tests read it; --port 0 picks one).
        println!("listening on http://{}", listener.local_addr()?);
        let metrics = Arc::new(Metrics::new(options.max_queue, options.max_batch));
        let stop = async {
            shutdown_signal().await;
            eprintln!("shutting down: finishing the requests in flight");
        };
        t0_serve::serve(listener, t0, options, metrics, stop).await.context("serving")
    })
}

/// Ctrl-C (SIGINT) or, on Unix, SIGTERM (what container runtimes and systemd send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
