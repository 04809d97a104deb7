//! `fedser mfcc FILE`: the MFCCs of one recording.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use fedser_audio::FrontEnd;

use crate::cli::MfccCmd;
use crate::matrix_io;

pub fn run(cmd: MfccCmd) -> Result<ExitCode> {
    let mut front = FrontEnd::new(cmd.front.config()).context("invalid feature settings")?;
    let features = front.extract_file(&cmd.file)?;
    match &cmd.out {
        Some(path) => matrix_io::write_matrix(&features, path)?,
        None => {
            let stdout = std::io::stdout();
            let mut lock = std::io::BufWriter::new(stdout.lock());
            match matrix_io::write_csv(&features, &mut lock).and_then(|()| lock.flush()) {
                // The reader went away (`fedser mfcc f.wav | head`): not an error of ours.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("cannot write to standard output")?,
            }
        }
    }
    tracing::info!(
        "{}: {} frames x {} coefficients",
        cmd.file.display(),
        features.frames(),
        features.coeffs()
    );
    Ok(ExitCode::SUCCESS)
}
