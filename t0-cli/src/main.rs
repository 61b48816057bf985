//! `t0`: run T0 / T5 models from the command line. Thin: parsing and printing only; the work
//! happens in `t0-model`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

/// Run T0 / T5 encoder-decoder models on the CPU.
#[derive(Debug, Parser)]
#[command(name = "t0", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate text (greedy) from token ids.
    Generate(commands::generate::Args),
    /// Write a model directory with random weights of a config's exact shapes.
    RandomInit(commands::random_init::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => commands::generate::run(a),
        Command::RandomInit(a) => commands::random_init::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
