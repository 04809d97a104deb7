//! `fedser features DIR --out DIR`: MFCCs of a whole folder, in parallel on all cores.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use fedser_audio::FrontEnd;
use rayon::prelude::*;

use crate::cli::{FeaturesCmd, MatrixFormat};
use crate::{matrix_io, progress};

pub fn run(cmd: FeaturesCmd, quiet: bool) -> Result<ExitCode> {
    let config = cmd.front.config();
    // Fail on bad settings before touching any file.
    FrontEnd::new(config.clone()).context("invalid feature settings")?;
    let files = super::audio_files(&cmd.dir)?;
    if files.is_empty() {
        bail!(
            "no audio files (.wav, .flac, .ogg, .mp3) under {}",
            cmd.dir.display()
        );
    }
    std::fs::create_dir_all(&cmd.out)
        .with_context(|| format!("cannot create {}", cmd.out.display()))?;
    let extension = match cmd.format {
        MatrixFormat::Npy => "npy",
        MatrixFormat::Csv => "csv",
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cmd.jobs.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    let bar = progress::bar(files.len() as u64, "features", quiet);
    let failures: Vec<String> = pool.install(|| {
        files
            .par_iter()
            .map_init(
                || FrontEnd::new(config.clone()).expect("validated above"),
                |front, path| {
                    let result = extract_one(front, path, &cmd.dir, &cmd.out, extension);
                    bar.inc(1);
                    result.err().map(|e| format!("{e:#}"))
                },
            )
            .flatten()
            .collect()
    });
    bar.finish_and_clear();
    let manifest = serde_json::json!({
        "source": cmd.dir,
        "files": files.len(),
        "failed": failures.len(),
        "format": extension,
        "front_end": config,
    });
    std::fs::write(
        cmd.out.join("features.json"),
        serde_json::to_string_pretty(&manifest)?,
    )
    .with_context(|| format!("cannot write {}", cmd.out.join("features.json").display()))?;
    for failure in &failures {
        eprintln!("skipped {failure}");
    }
    eprintln!(
        "{} of {} recordings -> {} ({} failed)",
        files.len() - failures.len(),
        files.len(),
        cmd.out.display(),
        failures.len()
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn extract_one(
    front: &mut FrontEnd,
    path: &Path,
    root: &Path,
    out: &Path,
    extension: &str,
) -> Result<()> {
    let features = front.extract_file(path)?;
    let relative = path.strip_prefix(root).unwrap_or(path);
    let target: PathBuf = out.join(relative).with_extension(extension);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    matrix_io::write_matrix(&features, &target)
}
