//! The report of a federated run: figures (PNG and SVG under `RUN_DIR/plots/`) and one
//! self-contained `RUN_DIR/report.html` that embeds the SVGs, so the page can be mailed or
//! archived on its own.
//!
//! A run directory holds `run.json` ([`RunInfo`], written when the run starts),
//! `metrics.jsonl` (one [`RoundRecord`] per line, appended after each round) and
//! `config.toml` (the resolved configuration). Figures whose data is missing are skipped and
//! the page says why; unreadable or corrupt files are errors naming the file.

mod figures;
mod html;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fedser_core::Emotion;
use fedser_fl::{ClientId, EvalSummary, RoundRecord};
use serde::{Deserialize, Serialize};

/// What a run is, as recorded in `run.json` before the first round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's name (shown as the report's title).
    pub name: String,
    /// The corpus the clients' data comes from.
    pub corpus: String,
    /// The model architecture.
    pub arch: String,
    /// The federated strategy, as described by `Strategy::describe`.
    pub strategy: String,
    /// Rounds the configuration asked for (fewer may have run).
    pub rounds_planned: u32,
    /// Trainable parameters of the model.
    pub parameters: u64,
    /// The clients, in id order.
    pub clients: Vec<ClientInfo>,
    /// Speakers held out for the central evaluation.
    pub test_speakers: Vec<String>,
    /// Utterances of the held-out speakers.
    pub test_utterances: usize,
    /// Utterances per emotion in the whole corpus, in [`Emotion::ALL`] order.
    pub emotion_counts: [usize; Emotion::COUNT],
    /// A recording whose waveform the report shows, if any.
    pub example_audio: Option<ExampleAudio>,
}

/// One client of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The id the round records use for this client.
    pub id: ClientId,
    /// A readable name (e.g. the speaker or the partition).
    pub name: String,
    /// Training utterances the client holds.
    pub train: usize,
    /// Validation utterances the client holds.
    pub val: usize,
    /// The speakers whose recordings the client holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub speakers: Vec<String>,
    /// The client's sex where all its speakers share one (the ground truth an attribute
    /// attack is scored against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<fedser_data::Gender>,
}

/// The recording shown as a waveform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleAudio {
    /// The audio file, relative to the run directory or absolute.
    pub path: PathBuf,
    /// The utterance id (shown in the figure's title).
    pub utterance: String,
}

/// The evaluation whose confusion matrix and per-class figures the report shows.
#[derive(Debug, Clone, Copy)]
pub struct FinalEval<'a> {
    pub round: u32,
    /// True for the central evaluation (held-out speakers), false for the pooled federated
    /// one (the fallback when no round was evaluated centrally).
    pub central: bool,
    pub eval: &'a EvalSummary,
}

impl FinalEval<'_> {
    /// Where the numbers come from, for captions.
    pub fn source(&self) -> &'static str {
        if self.central {
            "central evaluation (held-out speakers)"
        } else {
            "federated evaluation (clients' validation data, pooled)"
        }
    }
}

/// Writes the figures into `RUN_DIR/plots/` and the page into `RUN_DIR/report.html`, whose
/// path it returns.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    let info = read_run_info(&run_dir.join("run.json"))?;
    let rounds = read_rounds(&run_dir.join("metrics.jsonl"))?;
    let config = read_config(&run_dir.join("config.toml"))?;
    let attacks = read_attacks(&run_dir.join("attacks"))?;
    let plots = run_dir.join("plots");
    std::fs::create_dir_all(&plots)
        .with_context(|| format!("cannot create {}", plots.display()))?;
    let figures = figures::draw_all(&plots, run_dir, &info, &rounds, &attacks)?;
    let page = html::page(&html::Page {
        info: &info,
        rounds: &rounds,
        config: config.as_deref(),
        figures: &figures,
        final_eval: final_eval(&rounds),
        attacks: &attacks,
    });
    let path = run_dir.join("report.html");
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The results `fedser attack` wrote (none when it was never run).
fn read_attacks(dir: &Path) -> Result<Vec<serde_json::Value>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not an attack result", p.display()))
        })
        .collect()
}

fn read_run_info(path: &Path) -> Result<RunInfo> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid run.json", path.display()))
}

/// Every round record, each round once; a malformed line (e.g. cut short by a crash
/// mid-write) is an error, since silently dropping rounds would misreport the run. Rounds
/// written twice (two processes on one directory, before fedser locked run directories) are
/// drawn once, with a warning.
fn read_rounds(path: &Path) -> Result<Vec<RoundRecord>> {
    let rounds = fedser_fl::run_dir::read_metrics(path)?;
    if !rounds.duplicates.is_empty() {
        let list: Vec<String> = rounds.duplicates.iter().map(u32::to_string).collect();
        eprintln!(
            "warning: {} records rounds {} more than once (two processes wrote this run); \
             the report shows each round's last record",
            path.display(),
            list.join(", ")
        );
    }
    Ok(rounds.records)
}

/// The configuration text; `None` when the run directory has none (older runs), which the
/// page mentions rather than failing over.
fn read_config(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The latest central evaluation.
pub fn latest_central(rounds: &[RoundRecord]) -> Option<(u32, &EvalSummary)> {
    rounds
        .iter()
        .rev()
        .find_map(|r| r.central.as_ref().map(|e| (r.round, e)))
}

/// The latest central evaluation, else the latest federated one.
pub fn final_eval(rounds: &[RoundRecord]) -> Option<FinalEval<'_>> {
    let central = latest_central(rounds).map(|(round, eval)| FinalEval {
        round,
        central: true,
        eval,
    });
    central.or_else(|| {
        rounds.iter().rev().find_map(|r| {
            r.federated.as_ref().map(|eval| FinalEval {
                round: r.round,
                central: false,
                eval,
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fedser_core::ConfusionMatrix;
    use fedser_fl::ClientFailure;
    use fedser_fl::server::ClientRecord;

    use super::*;

    fn eval(diagonal: u64, off: u64, clients: usize) -> EvalSummary {
        let mut confusion = ConfusionMatrix::new();
        for (t, row) in confusion.counts.iter_mut().enumerate() {
            row[t] = diagonal + t as u64;
            row[(t + 1) % Emotion::COUNT] = off;
        }
        let m = confusion.metrics();
        EvalSummary {
            clients,
            examples: confusion.total() as usize,
            loss: 1.0 / diagonal as f64,
            accuracy: m.accuracy,
            ua: m.ua,
            macro_f1: m.macro_f1,
            weighted_f1: m.weighted_f1,
            confusion,
        }
    }

    fn client(id: ClientId, round: u32) -> ClientRecord {
        let dropped = id == 2 && round == 2;
        ClientRecord {
            client: id,
            examples: if dropped { 0 } else { 40 },
            train_loss: (!dropped).then_some(1.5 / round as f64),
            seconds: (!dropped).then_some(0.3),
            failure: dropped.then_some(ClientFailure::Dropped),
            val_examples: Some(10),
            val_accuracy: Some(0.3 + 0.1 * round as f64 + 0.05 * id as f64),
            val_ua: Some(0.25 + 0.1 * round as f64),
        }
    }

    fn round(n: u32) -> RoundRecord {
        RoundRecord {
            round: n,
            selected: 3,
            accepted: if n == 2 { 2 } else { 3 },
            dropped: usize::from(n == 2),
            stragglers: 0,
            errors: 0,
            rejected: 0,
            aggregated: n != 3,
            note: (n == 3).then(|| "rule refused <all> updates".to_string()),
            train_loss: Some(1.5 / n as f64),
            // Round 3 has no central evaluation: the final one is round 2's.
            central: (n < 3).then(|| eval(5 * n as u64, 3, 1)),
            federated: Some(eval(4 * n as u64, 2, 3)),
            clients: (0..3).map(|id| client(id, n)).collect(),
            bytes_down: 4_000_000,
            bytes_up: 3_000_000,
            stages: BTreeMap::new(),
            stage_records: BTreeMap::new(),
            selected_by_rule: None,
            fit_seconds: 1.0,
            eval_seconds: 0.5,
            seconds: 1.5,
        }
    }

    fn run_info(example: Option<ExampleAudio>) -> RunInfo {
        RunInfo {
            name: "fedavg & friends".into(),
            corpus: "synthetic".into(),
            arch: "cnn".into(),
            strategy: "FedAvg (weighted mean)".into(),
            rounds_planned: 5,
            parameters: 123_456,
            clients: (0..3)
                .map(|id| ClientInfo {
                    id,
                    speakers: Vec::new(),
                    gender: None,
                    name: if id == 1 {
                        "<script>".into()
                    } else {
                        format!("spk{id}")
                    },
                    train: 40,
                    val: 10,
                })
                .collect(),
            test_speakers: vec!["s9".into()],
            test_utterances: 50,
            emotion_counts: [10, 20, 30, 25, 15],
            example_audio: example,
        }
    }

    fn write_wav(path: &Path) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..8_000 {
            let t = i as f32 / 16_000.0;
            w.write_sample(((t * 440.0 * std::f32::consts::TAU).sin() * 12_000.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
    }

    fn write_run(dir: &Path, info: &RunInfo, rounds: &[RoundRecord]) {
        std::fs::write(dir.join("run.json"), serde_json::to_string(info).unwrap()).unwrap();
        let lines: Vec<String> = rounds
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        std::fs::write(dir.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn writes_a_self_contained_escaped_report() {
        let dir = tempfile::tempdir().unwrap();
        write_wav(&dir.path().join("example.wav"));
        let info = run_info(Some(ExampleAudio {
            path: "example.wav".into(),
            utterance: "spk0_angry_01".into(),
        }));
        let rounds: Vec<RoundRecord> = (1..=3).map(round).collect();
        write_run(dir.path(), &info, &rounds);
        std::fs::write(dir.path().join("config.toml"), "name = \"a < b\"\n").unwrap();

        let path = write_report(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("report.html"));
        let page = std::fs::read_to_string(&path).unwrap();
        assert!(page.contains("<svg"));
        assert!(!page.contains("<?xml"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("a &lt; b"));
        assert!(page.contains("fedavg &amp; friends"));
        for file in [
            "curves.png",
            "curves.svg",
            "loss.png",
            "confusion.svg",
            "clients.png",
            "emotion_counts.png",
            "waveform.png",
        ] {
            assert!(dir.path().join("plots").join(file).is_file(), "{file}");
        }
    }

    #[test]
    fn missing_data_skips_figures_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let info = run_info(Some(ExampleAudio {
            path: "absent.wav".into(),
            utterance: "u".into(),
        }));
        write_run(dir.path(), &info, &[]);
        let page = std::fs::read_to_string(write_report(dir.path()).unwrap()).unwrap();
        assert!(page.contains("Not drawn"));
        assert!(page.contains("absent.wav"));
        assert!(!dir.path().join("plots/curves.png").exists());
        assert!(!dir.path().join("plots/waveform.png").exists());
        assert!(dir.path().join("plots/emotion_counts.svg").is_file());
    }

    #[test]
    fn corrupt_or_missing_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let rounds: Vec<RoundRecord> = (1..=2).map(round).collect();
        write_run(dir.path(), &run_info(None), &rounds);
        let metrics = dir.path().join("metrics.jsonl");
        let text = std::fs::read_to_string(&metrics).unwrap();
        // A crash mid-write leaves the last line cut short.
        std::fs::write(&metrics, &text[..text.len() - 20]).unwrap();
        let e = format!("{:#}", write_report(dir.path()).unwrap_err());
        assert!(e.contains("metrics.jsonl") && e.contains("line 2"), "{e}");

        std::fs::remove_file(dir.path().join("run.json")).unwrap();
        let e = format!("{:#}", write_report(dir.path()).unwrap_err());
        assert!(e.contains("run.json"), "{e}");
    }
}
