//! What the subcommands show on stderr besides results: progress bars (hidden with `--quiet`
//! or when stderr is not a terminal) and `-v` / `-vv` logs through `tracing`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Apply the global flags: `quiet` hides progress bars; `verbose` 1 logs at info level, 2 at
/// debug, 3 or more at trace (to stderr).
pub fn init(quiet: bool, verbose: u8) {
    QUIET.store(quiet, Ordering::Relaxed);
    let level = match verbose {
        0 => return,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// True when progress bars are drawn: no `--quiet`, and stderr is a terminal.
pub fn show_progress() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A progress bar of `len` steps on stderr with the indicatif `template`, or a hidden one.
pub fn bar(len: u64, template: &str) -> ProgressBar {
    if !show_progress() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}
