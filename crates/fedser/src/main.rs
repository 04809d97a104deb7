//! `fedser`: privacy-preserving speech emotion recognition with federated learning.
//!
//! The binary is thin: it parses arguments and wires the library crates together.

mod alloc_tuning;
mod bitmap_text;
mod cli;
mod commands;
mod cputime;
mod matrix_io;
mod plots;
mod progress;
mod report;

use clap::Parser;

fn main() -> std::process::ExitCode {
    alloc_tuning::keep_freed_memory();
    let cli = cli::Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    match commands::run(cli.command, cli.quiet) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: a cause whose text its outer message already
/// contains (libraries' messages often quote their source) is not repeated.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text = format!("{text}: {c}");
        }
    }
    text
}

fn init_logging(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
