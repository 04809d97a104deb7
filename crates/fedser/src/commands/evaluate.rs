//! `fedser evaluate`: a trained model's metrics on a corpus, with the features computed and
//! normalised exactly as the model file says.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use fedser_audio::FrontEndConfig;
use fedser_core::{Emotion, Metrics};
use fedser_model::{EmotionModel, evaluate};

use super::dataset::{self, NormRecord, examples};
use crate::cli::EvaluateCmd;

/// A model and the feature settings recorded with it.
pub fn load_model(path: &Path) -> Result<(EmotionModel, FrontEndConfig, NormRecord)> {
    let (model, meta) = fedser_client::model_file::load(path)?;
    Ok((model, meta.front_end, meta.norm))
}

pub fn run(cmd: EvaluateCmd, quiet: bool) -> Result<ExitCode> {
    let (model, front, norm) = load_model(&cmd.model)?;
    let mut data = dataset::load(&cmd.corpus, &front, cmd.cache.as_deref(), quiet)?;
    let mut indices: Vec<usize> = (0..data.features.len()).collect();
    if !cmd.speakers.is_empty() {
        for s in &cmd.speakers {
            if !data.corpus.utterances.iter().any(|u| &u.speaker == s) {
                bail!("unknown speaker {s:?} in {}", data.corpus.name);
            }
        }
        indices.retain(|&i| cmd.speakers.contains(&data.corpus.utterances[i].speaker));
    }
    let groups = dataset::by_speaker(&data.corpus, &indices);
    dataset::apply_record(&mut data.features, &norm, &groups);
    let metrics = evaluate(&model, &examples(&data, &indices), 64).metrics();
    if cmd.json {
        println!("{}", serde_json::to_string(&metrics)?);
    } else {
        print_metrics(&metrics);
    }
    Ok(ExitCode::SUCCESS)
}

/// The metrics table: summary, per class, confusion matrix.
pub fn print_metrics(m: &Metrics) {
    println!(
        "accuracy {:.3}   UA {:.3}   macro-F1 {:.3}   weighted-F1 {:.3}",
        m.accuracy, m.ua, m.macro_f1, m.weighted_f1
    );
    println!(
        "{:<10}{:>10}{:>10}{:>10}{:>10}",
        "class", "precision", "recall", "F1", "support"
    );
    for c in &m.per_class {
        println!(
            "{:<10}{:>10.3}{:>10.3}{:>10.3}{:>10}",
            c.class.name(),
            c.precision,
            c.recall,
            c.f1,
            c.support
        );
    }
    let header: String = Emotion::ALL
        .iter()
        .map(|e| format!("{:>9}", e.name()))
        .collect();
    println!(
        "confusion (rows: truth, columns: prediction)\n{:<10}{header}",
        ""
    );
    for (e, row) in Emotion::ALL.iter().zip(&m.confusion.counts) {
        let cells: String = row.iter().map(|n| format!("{n:>9}")).collect();
        println!("{:<10}{cells}", e.name());
    }
}
