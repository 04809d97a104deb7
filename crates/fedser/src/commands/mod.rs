//! One module per subcommand.

mod attack;
mod bench;
pub(crate) mod corpus;
mod dataset;
mod deploy;
mod evaluate;
mod features;
mod mfcc;
mod predict;
mod privacy;
pub(crate) mod simulate;
mod synth;
mod train;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::{BenchWhat, Command};

/// Runs a parsed command.
pub fn run(command: Command, quiet: bool) -> Result<ExitCode> {
    match command {
        Command::Mfcc(cmd) => mfcc::run(cmd),
        Command::Features(cmd) => features::run(cmd, quiet),
        Command::Synth(cmd) => synth::run(cmd),
        Command::Corpus(cmd) => corpus::run(cmd, quiet),
        Command::Train(cmd) => train::run(cmd, quiet),
        Command::Evaluate(cmd) => evaluate::run(cmd, quiet),
        Command::Predict(cmd) => predict::run(cmd),
        Command::Simulate(cmd) => simulate::run(*cmd, quiet),
        Command::Report(cmd) => {
            let html = crate::report::write_report(&cmd.run_dir)?;
            println!("report: {}", html.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(cmd) => simulate::demo(cmd, quiet),
        Command::Privacy(cmd) => privacy::run(cmd.what),
        Command::Attack(cmd) => attack::run(cmd, quiet),
        Command::Keygen(cmd) => deploy::keygen(cmd),
        Command::TlsCert(cmd) => deploy::tls_cert(cmd),
        Command::Server(cmd) => deploy::server(*cmd, quiet),
        Command::Client(cmd) => deploy::client(cmd, quiet),
        Command::Load(cmd) => deploy::load(cmd),
        Command::Status(cmd) => deploy::status(cmd),
        Command::Bench(cmd) => match cmd.what {
            BenchWhat::Mfcc {
                dir,
                runs,
                parallel,
                style,
                json,
            } => bench::mfcc(&dir, runs, parallel, style, json),
            BenchWhat::Train {
                archs,
                batch,
                frames,
                reps,
                peer_lstm,
                json,
            } => bench::train(&archs, batch, frames, reps, peer_lstm, json),
            BenchWhat::Secagg {
                clients,
                neighbours,
                dim,
                dropout,
                full_graph_max,
                json,
            } => bench::secagg(&clients, neighbours, dim, dropout, full_graph_max, json),
        },
    }
}

/// File extensions treated as audio when scanning folders.
const AUDIO_EXTENSIONS: [&str; 5] = ["wav", "flac", "ogg", "mp3", "oga"];

/// Every audio file under `dir`, recursively, in sorted order (deterministic across runs).
pub fn audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    collect(dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}
