//! The files of a federated run that a server can trust across days and restarts: an
//! exclusive lock held for the run's whole life (a second process is refused and told who
//! holds it), the fingerprint of the settings that define the experiment (a resume that would
//! change them is refused, naming each one), `metrics.jsonl` (one [`RoundRecord`] a line) and
//! per-round checkpoints (global model, server optimiser state and the state of other stages
//! such as a privacy accountant). Every file is written with fsync + rename or an fsynced
//! append, so a crash never leaves a half-written file in place of a good one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fedser_core::{ParamSet, ParamTensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::server::RoundRecord;
use crate::server_opt::ServerOptState;

pub const METRICS: &str = "metrics.jsonl";
pub const LOCK: &str = ".fedser.lock";
pub const FINGERPRINT: &str = "fingerprint.json";
pub const EVENTS: &str = "events.jsonl";
pub const CHECKPOINTS: &str = "checkpoints";

const SERVER_M: &str = "fedser.server.m";
const SERVER_V: &str = "fedser.server.v";
const META_ROUND: &str = "fedser.round";
const META_STEP: &str = "fedser.server_step";
const META_EXTRA: &str = "fedser.extra.";

/// What went wrong with a run directory; every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is in use by another fedser process ({holder}); wait for it to end or stop it \
         before using this run directory"
    )]
    Busy { path: PathBuf, holder: String },
    #[error("{path} line {line}: not a round record ({reason})")]
    Metrics {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Params(#[from] fedser_core::ParamError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Who holds a run directory's lock (written into the lock file).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    command: String,
    started_unix: u64,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An open run directory, locked for as long as this value lives.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

impl RunDir {
    /// Creates `path` if needed and takes its exclusive lock; `command` describes this process
    /// to whoever is refused (e.g. "fedser simulate"). The lock is released when the value is
    /// dropped or the process ends, however it ends.
    pub fn lock(path: &Path, command: &str) -> Result<Self, RunDirError> {
        std::fs::create_dir_all(path).map_err(io(path))?;
        let lock_path = path.join(LOCK);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<Holder>(&t).ok())
                    .map_or_else(
                        || "holder unknown".to_string(),
                        |h| {
                            format!(
                                "pid {}, `{}`, started {} s ago",
                                h.pid,
                                h.command,
                                now_unix().saturating_sub(h.started_unix)
                            )
                        },
                    );
                return Err(RunDirError::Busy {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let holder = Holder {
            pid: std::process::id(),
            command: command.to_string(),
            started_unix: now_unix(),
        };
        file.set_len(0).map_err(io(&lock_path))?;
        file.write_all(
            serde_json::to_string(&holder)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(io(&lock_path))?;
        file.sync_data().map_err(io(&lock_path))?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who holds `path`'s lock now (`None`: no process is using the run directory). Reads
    /// only: a free lock is released again at once.
    pub fn holder(path: &Path) -> Result<Option<String>, RunDirError> {
        let lock_path = path.join(LOCK);
        let file = match std::fs::File::open(&lock_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&lock_path)(e)),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(None),
            Err(std::fs::TryLockError::WouldBlock) => {
                let text = std::fs::read_to_string(&lock_path).unwrap_or_default();
                Ok(Some(match serde_json::from_str::<Holder>(&text) {
                    Ok(h) => format!(
                        "pid {}, `{}`, started {} s ago",
                        h.pid,
                        h.command,
                        now_unix().saturating_sub(h.started_unix)
                    ),
                    Err(_) => "holder unknown".into(),
                }))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(&lock_path)(e)),
        }
    }

    /// Whether `path` already holds a run (its metrics file exists).
    pub fn has_run(path: &Path) -> bool {
        path.join(METRICS).is_file()
    }

    /// Writes `name` inside the run directory: to a temporary file, fsynced, renamed over.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), RunDirError> {
        write_atomic(&self.path.join(name), bytes)
    }

    /// The rounds recorded so far (empty before the first).
    pub fn read_metrics(&self) -> Result<Vec<RoundRecord>, RunDirError> {
        let path = self.path.join(METRICS);
        if !path.exists() {
            return Ok(Vec::new());
        }
        Ok(read_metrics(&path)?.records)
    }

    /// Keeps the lines of rounds up to `last_round` (a resumed run rewrites what came after
    /// its checkpoint; a partly written last line is dropped).
    pub fn truncate_metrics(&self, last_round: u32) -> Result<(), RunDirError> {
        let path = self.path.join(METRICS);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if last_round > 0 {
                    return Err(RunDirError::Invalid {
                        path,
                        reason: format!("missing, but the checkpoints reach round {last_round}"),
                    });
                }
                return write_atomic(&path, b"");
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let mut kept = String::new();
        let mut expected = 1;
        for line in text.lines() {
            match serde_json::from_str::<RoundRecord>(line) {
                Ok(r) if r.round == expected && r.round <= last_round => {
                    kept.push_str(line);
                    kept.push('\n');
                    expected += 1;
                }
                _ => {}
            }
        }
        if expected - 1 != last_round {
            return Err(RunDirError::Invalid {
                path,
                reason: format!(
                    "rounds 1..={} recorded in order but the checkpoint is of round {last_round}",
                    expected - 1
                ),
            });
        }
        write_atomic(&path, kept.as_bytes())
    }

    /// Appends one round's line and flushes it to disk.
    pub fn append_metrics(&self, record: &RoundRecord) -> Result<(), RunDirError> {
        let path = self.path.join(METRICS);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let line = serde_json::to_string(record).map_err(|e| RunDirError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        writeln!(f, "{line}").map_err(io(&path))?;
        f.sync_data().map_err(io(&path))
    }

    /// Appends an event (a resume, a changed setting, a stop) to `events.jsonl`.
    pub fn record_event(&self, kind: &str, detail: serde_json::Value) -> Result<(), RunDirError> {
        let path = self.path.join(EVENTS);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let line = serde_json::json!({"time_unix": now_unix(), "event": kind, "detail": detail});
        writeln!(f, "{line}").map_err(io(&path))?;
        f.sync_data().map_err(io(&path))
    }

    /// The fingerprint recorded when the run started (or last resumed), if any.
    pub fn fingerprint(&self) -> Result<Option<Fingerprint>, RunDirError> {
        let path = self.path.join(FINGERPRINT);
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| RunDirError::Invalid {
                    path,
                    reason: format!("not a fingerprint: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    pub fn write_fingerprint(&self, fp: &Fingerprint) -> Result<(), RunDirError> {
        let text = serde_json::to_string_pretty(fp).unwrap_or_default();
        self.write_file(FINGERPRINT, text.as_bytes())
    }

    fn checkpoint_path(&self, round: u32) -> PathBuf {
        self.path
            .join(CHECKPOINTS)
            .join(format!("round-{round:04}.safetensors"))
    }

    /// Writes round `cp.round`'s checkpoint.
    pub fn save_checkpoint(&self, cp: &Checkpoint) -> Result<(), RunDirError> {
        let mut set = cp.global.clone();
        for (name, values) in [(SERVER_M, &cp.server.m), (SERVER_V, &cp.server.v)] {
            if !values.is_empty() {
                set.push(name, ParamTensor::new(vec![values.len()], values.clone())?)?;
            }
        }
        let mut meta = BTreeMap::new();
        meta.insert(META_ROUND.to_string(), cp.round.to_string());
        meta.insert(META_STEP.to_string(), cp.server.step.to_string());
        for (k, v) in &cp.extra {
            meta.insert(format!("{META_EXTRA}{k}"), v.clone());
        }
        let path = self.checkpoint_path(cp.round);
        let dir = self.path.join(CHECKPOINTS);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(set.save(&path, &meta)?)
    }

    /// The latest checkpoint that can be read and holds only finite numbers; an unreadable
    /// or non-finite newer one is reported and skipped (the rounds after the returned one are
    /// then run again).
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, RunDirError> {
        let dir = self.path.join(CHECKPOINTS);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut found: Vec<(u32, PathBuf)> = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            let round = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("round-"))
                .and_then(|n| n.strip_suffix(".safetensors"))
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(round) = round {
                found.push((round, path));
            }
        }
        found.sort_by_key(|(round, _)| std::cmp::Reverse(*round));
        for (round, path) in found {
            match load_checkpoint(&path) {
                Ok(cp) if cp.round == round => return Ok(Some(cp)),
                Ok(cp) => tracing::warn!(
                    "skipping checkpoint {}: it says round {}",
                    path.display(),
                    cp.round
                ),
                Err(e) => tracing::warn!("skipping checkpoint: {e}"),
            }
        }
        Ok(None)
    }
}

/// Writes `path` through a temporary file beside it, fsynced, then renamed over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let tmp = path.with_extension("partial");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A round's saved state.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub round: u32,
    pub global: ParamSet,
    pub server: ServerOptState,
    /// State of other stages, as text (e.g. the privacy accountant as JSON).
    pub extra: BTreeMap<String, String>,
}

/// Reads and checks a checkpoint file: readable, with a round and a step, every number finite.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, RunDirError> {
    let (set, meta) = ParamSet::load(path)?;
    let invalid = |reason: String| RunDirError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let number = |key: &str| -> Result<u64, RunDirError> {
        meta.get(key)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("no {key} recorded")))
    };
    let round = u32::try_from(number(META_ROUND)?).map_err(|e| invalid(e.to_string()))?;
    let mut server = ServerOptState {
        step: number(META_STEP)?,
        ..ServerOptState::default()
    };
    let mut global = ParamSet::new();
    for (name, t) in set.iter() {
        match name {
            SERVER_M => server.m = t.data.clone(),
            SERVER_V => server.v = t.data.clone(),
            _ => global.push(name, t.clone())?,
        }
    }
    global
        .check_finite()
        .map_err(|e| invalid(format!("not finite: {e}")))?;
    if server.m.iter().chain(&server.v).any(|v| !v.is_finite()) {
        return Err(invalid("server optimiser state is not finite".into()));
    }
    let extra = meta
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(META_EXTRA)?.to_string(), v.clone())))
        .collect();
    Ok(Checkpoint {
        round,
        global,
        server,
        extra,
    })
}

/// The rounds in a `metrics.jsonl`, and the rounds that appear more than once.
#[derive(Debug, Clone, Default)]
pub struct Rounds {
    /// Each round once (its last line wins where a round repeats), in round order.
    pub records: Vec<RoundRecord>,
    /// Rounds written more than once (two processes on one directory, before the lock).
    pub duplicates: Vec<u32>,
}

/// Reads a `metrics.jsonl`; a malformed line (e.g. cut short by a crash mid-write) is an
/// error, since silently dropping rounds would misreport the run.
pub fn read_metrics(path: &Path) -> Result<Rounds, RunDirError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut by_round: BTreeMap<u32, RoundRecord> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: RoundRecord = serde_json::from_str(line).map_err(|e| RunDirError::Metrics {
            path: path.to_path_buf(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        let round = r.round;
        if by_round.insert(round, r).is_some() {
            duplicates.push(round);
        }
    }
    duplicates.sort_unstable();
    duplicates.dedup();
    Ok(Rounds {
        records: by_round.into_values().collect(),
        duplicates,
    })
}

/// The settings that define an experiment, flattened to dotted keys, and their digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// SHA-256 of the canonical JSON of `settings`.
    pub sha256: String,
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// One setting that differs between two fingerprints.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    pub was: Option<serde_json::Value>,
    pub now: Option<serde_json::Value>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .map_or_else(|| "(unset)".to_string(), |v| v.to_string())
        };
        write!(
            f,
            "{}: {} -> {}",
            self.key,
            show(&self.was),
            show(&self.now)
        )
    }
}

impl Fingerprint {
    /// The fingerprint of `settings` (any JSON object; nested objects become dotted keys).
    pub fn of(settings: &serde_json::Value) -> Self {
        let mut flat = BTreeMap::new();
        flatten("", settings, &mut flat);
        let canonical = serde_json::to_string(&flat).unwrap_or_default();
        let sha256 = Sha256::digest(canonical.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            sha256,
            settings: flat,
        }
    }

    /// The settings that differ from `other`, in key order.
    pub fn changes(&self, other: &Fingerprint) -> Vec<Change> {
        let keys: std::collections::BTreeSet<&String> =
            self.settings.keys().chain(other.settings.keys()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let (was, now) = (self.settings.get(k), other.settings.get(k));
                (was != now).then(|| Change {
                    key: k.clone(),
                    was: was.cloned(),
                    now: now.cloned(),
                })
            })
            .collect()
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match v {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunDir::lock(dir.path(), "fedser simulate").unwrap();
        let err = RunDir::lock(dir.path(), "fedser simulate --resume").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RunDirError::Busy { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id()))
                && text.contains("`fedser simulate`"),
            "{text}"
        );
        let held = RunDir::holder(dir.path()).unwrap().unwrap();
        assert!(held.contains("`fedser simulate`"), "{held}");
        drop(first);
        assert_eq!(RunDir::holder(dir.path()).unwrap(), None);
        RunDir::lock(dir.path(), "again").unwrap();
    }

    #[test]
    fn fingerprints_list_each_changed_setting() {
        let a = Fingerprint::of(&serde_json::json!({"seed": 7, "corpus": {"kind": "x", "n": 3}}));
        let b = Fingerprint::of(&serde_json::json!({"seed": 8, "corpus": {"kind": "x"}}));
        assert_ne!(a.sha256, b.sha256);
        let changes: Vec<String> = a.changes(&b).iter().map(ToString::to_string).collect();
        assert_eq!(changes, vec!["corpus.n: 3 -> (unset)", "seed: 7 -> 8"]);
        assert!(a.changes(&a.clone()).is_empty());
    }

    #[test]
    fn a_checkpoint_full_of_nan_is_skipped_for_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::lock(dir.path(), "test").unwrap();
        let set = |v: f32| {
            let mut p = ParamSet::new();
            p.push("w", ParamTensor::new(vec![2], vec![v, v]).unwrap())
                .unwrap();
            p
        };
        let cp = |round, v| Checkpoint {
            round,
            global: set(v),
            server: ServerOptState::default(),
            extra: BTreeMap::from([("accountant".to_string(), format!("{{\"r\":{round}}}"))]),
        };
        run.save_checkpoint(&cp(1, 1.0)).unwrap();
        run.save_checkpoint(&cp(2, f32::NAN)).unwrap();
        let latest = run.latest_checkpoint().unwrap().unwrap();
        assert_eq!(latest, cp(1, 1.0));
    }
}
