//! `t0`: run T0 / T5 models from the command line. Thin: parsing and printing only; the work
//! happens in `t0-model`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(unix)]
mod cleanup_on_signal;
mod commands;
mod ui;

/// Run T0 / T5 encoder-decoder models on the CPU.
#[derive(Debug, Parser)]
#[command(name = "t0", version, about)]
struct Cli {
    /// No progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Log what happens to stderr: -v info, -vv debug, -vvv trace.
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate text: greedy, beam search or sampling, from text prompts or token ids.
    Generate(commands::generate::Args),
    /// Score answer choices for a prompt (T0's rank classification) and pick the best.
    Score(commands::score::Args),
    /// Show how the model's tokenizer splits a text.
    Tokenize(commands::tokenize::Args),
    /// Show a model's config, parameter count, dtypes, memory per dtype and tokenizer.
    Inspect(commands::inspect::Args),
    /// Time the encoder and decode steps of a model (random inputs).
    Bench(commands::bench::Args),
    /// Write a model directory with random weights of a config's exact shapes.
    RandomInit(commands::random_init::Args),
    /// Convert a model's weights to f32, bf16 or int8 once and write the packed result as a new
    /// model directory, which loads with no conversion and is read in place from the map.
    Convert(commands::convert::Args),
    /// Serve the model over HTTP (POST /generate, POST /score, GET /health, GET /metrics).
    Serve(commands::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ui::init(cli.quiet, cli.verbose);
    // Output piped into `head` (or any reader that stops early) ends the process quietly, as
    // for other Unix tools, instead of a panic in `println!` on the broken pipe. Not for the
    // server: a script may read its first line (the address) and close the pipe.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_)) {
        // SAFETY: restoring the default action of SIGPIPE before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Generate(a) => commands::generate::run(a),
        Command::Score(a) => commands::score::run(a),
        Command::Tokenize(a) => commands::tokenize::run(a),
        Command::RandomInit(a) => commands::random_init::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Serve(a) => commands::serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `outer: inner: ...`, leaving out a cause whose text
/// is already part of the message (errors that name their source in their own text).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out.replace(['\n', '\r'], " ")
}
