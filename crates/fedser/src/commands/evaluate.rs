//! `fedser evaluate`: a trained model's metrics on a corpus, with the features computed and
//! normalised exactly as the model file says.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use fedser_audio::{FrontEndConfig, Perturbation};
use fedser_core::{Emotion, Metrics};
use fedser_model::{EmotionModel, evaluate};

use super::dataset::{self, NormRecord, examples};
use crate::cli::EvaluateCmd;
use crate::{plots, progress};

/// A model and the feature settings recorded with it.
pub fn load_model(path: &Path) -> Result<(EmotionModel, FrontEndConfig, NormRecord)> {
    let (model, meta) = fedser_client::model_file::load(path)?;
    Ok((model, meta.front_end, meta.norm))
}

pub fn run(cmd: EvaluateCmd, quiet: bool) -> Result<ExitCode> {
    let (model, meta) = fedser_client::model_file::load(&cmd.model)?;
    let norm = meta.norm.clone();
    let mut data = dataset::load(&cmd.corpus, &meta.front_end, cmd.cache.as_deref(), quiet)?;
    let speakers = speakers_to_score(&cmd, &meta.test_speakers, &data.corpus)?;
    let mut indices: Vec<usize> = (0..data.features.len()).collect();
    if !speakers.is_empty() {
        indices.retain(|&i| speakers.contains(&data.corpus.utterances[i].speaker));
    }
    if let Some(list) = &cmd.perturb {
        return robustness(&cmd, list, &model, &meta, &data, &indices, quiet);
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

/// `--perturb`: the robustness table (and figure with `--report`).
fn robustness(
    cmd: &EvaluateCmd,
    list: &str,
    model: &EmotionModel,
    meta: &fedser_client::ModelMeta,
    data: &dataset::Featured,
    indices: &[usize],
    quiet: bool,
) -> Result<ExitCode> {
    let perturbations = if list.trim() == "standard" {
        Perturbation::standard_set()
    } else {
        Perturbation::parse_list(list)?
    };
    let cache = dataset::open_cache(cmd.cache.as_deref())?;
    let bar = progress::bar(perturbations.len() as u64, "perturbations", quiet);
    let table = fedser_client::robustness::score(
        model,
        data,
        indices,
        meta,
        cache.as_ref(),
        &perturbations,
        &|_| bar.inc(1),
    )?;
    bar.finish_and_clear();
    if let Some(dir) = &cmd.report {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fedser_fl::run_dir::write_atomic(
            &dir.join("robustness.json"),
            serde_json::to_string_pretty(&table)?.as_bytes(),
        )?;
        for ext in ["png", "svg"] {
            plots::robustness(&dir.join(format!("robustness.{ext}")), &table)?;
        }
    }
    if cmd.json {
        println!("{}", serde_json::to_string(&table)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<18}{:>8}{:>9}{:>10}{:>10}",
        "recording", "UA", "change", "accuracy", "macro-F1"
    );
    let c = &table.clean;
    println!(
        "{:<18}{:>8.3}{:>9}{:>10.3}{:>10.3}",
        "clean", c.ua, "", c.accuracy, c.macro_f1
    );
    for p in &table.perturbed {
        println!(
            "{:<18}{:>8.3}{:>+9.3}{:>10.3}{:>10.3}",
            p.perturbation, p.ua, -p.ua_drop, p.accuracy, p.macro_f1
        );
    }
    if let Some(dir) = &cmd.report {
        println!("figure: {}", dir.join("robustness.png").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Which speakers to score: those asked for (with a warning when some of them trained the
/// model), else the ones the model file records as held out, else all (saying that the
/// figures may include training speakers). Empty means all.
fn speakers_to_score(
    cmd: &EvaluateCmd,
    held_out: &[String],
    corpus: &fedser_data::Corpus,
) -> Result<Vec<String>> {
    let known = |s: &String| corpus.utterances.iter().any(|u| &u.speaker == s);
    if !cmd.speakers.is_empty() {
        if let Some(s) = cmd.speakers.iter().find(|s| !known(s)) {
            bail!("unknown speaker {s:?} in {}", corpus.name);
        }
        let trained: Vec<&String> = cmd
            .speakers
            .iter()
            .filter(|s| !held_out.is_empty() && !held_out.contains(s))
            .collect();
        if !trained.is_empty() && held_out.iter().any(known) {
            eprintln!(
                "WARNING: {} {} not held out from this model's training: these figures are not \
                 speaker-independent",
                trained
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if trained.len() == 1 { "was" } else { "were" }
            );
        }
        return Ok(cmd.speakers.clone());
    }
    let present: Vec<String> = held_out.iter().filter(|s| known(s)).cloned().collect();
    if cmd.all_speakers || held_out.is_empty() {
        if held_out.is_empty() {
            eprintln!(
                "WARNING: the model file records no held-out speakers: every speaker of the \
                 corpus is scored, including any the model trained on"
            );
        } else if !present.is_empty() {
            eprintln!(
                "WARNING: --all-speakers scores the model's training speakers too: these \
                 figures are not speaker-independent"
            );
        }
        return Ok(Vec::new());
    }
    if present.is_empty() {
        // Another corpus: none of its speakers trained the model.
        return Ok(Vec::new());
    }
    eprintln!(
        "evaluating on the {} speakers held out from training ({}; recorded in the model \
         file; --all-speakers scores every speaker)",
        present.len(),
        present.join(", ")
    );
    Ok(present)
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
