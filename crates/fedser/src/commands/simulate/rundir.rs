//! The files of a run directory that make it resumable: `metrics.jsonl` (one line per round,
//! appended and flushed as each round ends) and `checkpoints/round-NNNN.safetensors` (the
//! global model plus the server optimiser's state, written atomically).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedser_core::{ParamSet, ParamTensor};
use fedser_fl::RoundRecord;
use fedser_fl::server_opt::ServerOptState;

const METRICS: &str = "metrics.jsonl";
const SERVER_M: &str = "fedser.server.m";
const SERVER_V: &str = "fedser.server.v";
const META_ROUND: &str = "fedser.round";
const META_STEP: &str = "fedser.server_step";

/// A run's name from its folder.
pub fn default_name(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
}

/// Whether `dir` already holds a run.
pub fn has_run(dir: &Path) -> bool {
    dir.join("config.toml").is_file() && dir.join(METRICS).is_file()
}

pub struct Checkpoint {
    pub round: u32,
    pub path: PathBuf,
}

fn checkpoint_path(dir: &Path, round: u32) -> PathBuf {
    dir.join("checkpoints")
        .join(format!("round-{round:04}.safetensors"))
}

/// The latest checkpoint that can be read, with what it holds; an unreadable newer one is
/// reported and skipped (the rounds after the returned one are then run again).
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(Checkpoint, ParamSet, ServerOptState)>> {
    let Ok(entries) = std::fs::read_dir(dir.join("checkpoints")) else {
        return Ok(None);
    };
    let mut found: Vec<Checkpoint> = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let round = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("round-"))
            .and_then(|n| n.strip_suffix(".safetensors"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(round) = round {
            found.push(Checkpoint { round, path });
        }
    }
    found.sort_by_key(|c| std::cmp::Reverse(c.round));
    for cp in found {
        match load_checkpoint(&cp.path) {
            Ok((global, state)) => return Ok(Some((cp, global, state))),
            Err(e) => tracing::warn!("skipping an unreadable checkpoint: {e:#}"),
        }
    }
    Ok(None)
}

/// Writes round `round`'s checkpoint.
pub fn save_checkpoint(
    dir: &Path,
    round: u32,
    global: &ParamSet,
    state: &ServerOptState,
) -> Result<()> {
    let mut set = global.clone();
    for (name, values) in [(SERVER_M, &state.m), (SERVER_V, &state.v)] {
        if !values.is_empty() {
            set.push(name, ParamTensor::new(vec![values.len()], values.clone())?)?;
        }
    }
    let mut meta = BTreeMap::new();
    meta.insert(META_ROUND.to_string(), round.to_string());
    meta.insert(META_STEP.to_string(), state.step.to_string());
    let path = checkpoint_path(dir, round);
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    set.save(&path, &meta)
        .with_context(|| format!("cannot write checkpoint {}", path.display()))
}

/// The global model and server state stored in a checkpoint.
pub fn load_checkpoint(path: &Path) -> Result<(ParamSet, ServerOptState)> {
    let (set, meta) = ParamSet::load(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let step = meta
        .get(META_STEP)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{}: no server step recorded", path.display()))?;
    let mut global = ParamSet::new();
    let mut state = ServerOptState {
        step,
        ..ServerOptState::default()
    };
    for (name, t) in set.iter() {
        match name {
            SERVER_M => state.m = t.data.clone(),
            SERVER_V => state.v = t.data.clone(),
            _ => global.push(name, t.clone())?,
        }
    }
    Ok((global, state))
}

/// The rounds recorded so far.
pub fn read_metrics(dir: &Path) -> Result<Vec<RoundRecord>> {
    let path = dir.join(METRICS);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a round record", path.display(), i + 1))
        })
        .collect()
}

/// Keeps the lines of rounds up to `last_round` (a resumed run rewrites what came after its
/// checkpoint; a partly written last line is dropped).
pub fn truncate_metrics(dir: &Path, last_round: u32) -> Result<()> {
    let path = dir.join(METRICS);
    let Ok(text) = std::fs::read_to_string(&path) else {
        if last_round > 0 {
            bail!(
                "{} is missing but the checkpoints reach round {last_round}",
                path.display()
            );
        }
        return Ok(std::fs::write(&path, "")?);
    };
    let mut kept = String::new();
    for line in text.lines() {
        match serde_json::from_str::<RoundRecord>(line) {
            Ok(r) if r.round <= last_round => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => {}
        }
    }
    let rounds = kept.lines().count() as u32;
    if rounds != last_round {
        bail!(
            "{}: {rounds} rounds recorded but the checkpoint is of round {last_round}",
            path.display()
        );
    }
    // Written beside and renamed over, so a crash here cannot lose the recorded rounds.
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, kept).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Appends one round's line and flushes it to disk.
pub fn append_metrics(dir: &Path, record: &RoundRecord) -> Result<()> {
    let path = dir.join(METRICS);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(record)?)?;
    f.sync_data()?;
    Ok(())
}
