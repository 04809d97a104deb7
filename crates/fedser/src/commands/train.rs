//! `fedser train`: the centralised baseline on a speaker-independent split.

use std::process::ExitCode;

use anyhow::{Context, Result};
use fedser_audio::FrontEndConfig;
use fedser_client::ModelMeta;
use fedser_data::partition::{TestSpeakers, speaker_split, train_val_split};
use fedser_model::model::train_device;
use fedser_model::train::train_observed;
use fedser_model::{EmotionModel, ModelSpec, TrainConfig, evaluate};

use super::dataset::{self, examples};
use super::evaluate::print_metrics;
use crate::cli::TrainCmd;
use crate::progress;

pub fn run(cmd: TrainCmd, quiet: bool) -> Result<ExitCode> {
    let base = cmd.front_end.config();
    let front = FrontEndConfig {
        trim_silence: base.trim_silence || cmd.trim,
        denoise: cmd.denoise,
        ..base
    };
    let mut spec = ModelSpec::new(cmd.arch);
    if let Some(h) = cmd.hidden {
        spec.hidden = h;
    }
    spec.dropout = cmd.dropout;
    spec.bidirectional = !cmd.unidirectional;
    if let Some(frames) = cmd.max_frames {
        spec.max_frames = frames;
    }
    spec.validate().map_err(anyhow::Error::msg)?;
    if !cmd.augment_kinds.is_empty() && cmd.augment_chains == 0 {
        anyhow::bail!("--augment-kinds chooses chains for --augment-chains N: give N");
    }
    let cfg = TrainConfig {
        epochs: cmd.epochs,
        batch_size: cmd.batch_size,
        learning_rate: cmd.lr,
        weight_decay: cmd.weight_decay,
        optimizer: cmd.optimizer,
        patience: cmd.patience,
        class_weights: !cmd.no_class_weights,
        random_crop: true,
        augment: cmd.augment.then(fedser_model::batch::Augment::default),
        seed: cmd.corpus.seed,
    };

    let mut data = dataset::load(&cmd.corpus, &front, cmd.cache.as_deref(), quiet)?;
    let test = if cmd.test_speakers.is_empty() {
        TestSpeakers::Fraction(cmd.test_fraction)
    } else {
        TestSpeakers::Named(cmd.test_speakers.clone())
    };
    let (train_idx, test_idx) = speaker_split(&data.corpus.utterances, &test, cmd.corpus.seed)?;
    if test_idx.is_empty() {
        anyhow::bail!(
            "train needs held-out speakers to report on: give --test-fraction above 0 or \
             --test-speakers"
        );
    }
    let (mut fit_idx, val_idx) = train_val_split(
        &data.corpus.utterances,
        &train_idx,
        cmd.val_fraction,
        cmd.corpus.seed,
    );
    let mut train_idx = train_idx;
    if cmd.augment_chains > 0 {
        let cache = dataset::open_cache(cmd.cache.as_deref())?;
        let added = fedser_client::robustness::augment_with_chains(
            &mut data,
            &fit_idx,
            &front,
            cache.as_ref(),
            cmd.augment_chains,
            &cmd.augment_kinds,
            cmd.corpus.seed,
        )?;
        fit_idx.extend(&added);
        train_idx.extend(&added);
    }
    let norm = dataset::normalise(&mut data, cmd.norm, &train_idx);
    let test_speakers = dataset::speakers(&data.corpus, &test_idx);
    eprintln!(
        "{} {}: {} training, {} validation, {} test utterances (test speakers: {})",
        data.corpus.name,
        cmd.arch,
        fit_idx.len(),
        val_idx.len(),
        test_idx.len(),
        test_speakers.join(",")
    );

    // The model reads as many coefficients as the front end makes.
    spec.n_features = data.features[0].coeffs();
    let model = EmotionModel::new(spec, cmd.corpus.seed, &train_device())?;
    let started = std::time::Instant::now();
    let bar = progress::bar(cfg.epochs as u64, "epochs", quiet);
    let mut on_epoch = |r: &fedser_model::train::EpochRecord| {
        let val = r
            .val_ua
            .map_or_else(String::new, |ua| format!(", validation UA {ua:.3}"));
        bar.set_message(format!("epochs (loss {:.4}{val})", r.train_loss));
        bar.inc(1);
    };
    let (model, history) = train_observed(
        model,
        &examples(&data, &fit_idx),
        &examples(&data, &val_idx),
        &cfg,
        None,
        &mut on_epoch,
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let metrics = evaluate(&model, &examples(&data, &test_idx), 64).metrics();

    std::fs::create_dir_all(&cmd.out)
        .with_context(|| format!("cannot create {}", cmd.out.display()))?;
    let meta = ModelMeta::new(front, norm, &cfg, test_speakers.clone());
    let model_path = cmd.out.join("model.safetensors");
    fedser_client::model_file::save(&model, &model_path, &meta)?;
    let report = serde_json::json!({
        "corpus": data.corpus.name,
        "arch": cmd.arch.name(),
        "test_speakers": test_speakers,
        "train_utterances": fit_idx.len(),
        "val_utterances": val_idx.len(),
        "test_utterances": test_idx.len(),
        "parameters": model.num_params(),
        "train_seconds": seconds,
        "history": history,
        "test": metrics,
    });
    std::fs::write(
        cmd.out.join("metrics.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    if cmd.json {
        println!("{}", serde_json::to_string(&metrics)?);
    } else {
        print_metrics(&metrics);
        println!(
            "trained {} epochs (kept epoch {}) in {seconds:.1} s, {:.0} utterances/s; model: {}",
            history.epochs.len(),
            history.best_epoch,
            history.examples_per_second,
            model_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
