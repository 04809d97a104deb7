//! `fedser train`: the centralised baseline on a speaker-independent split.

use std::process::ExitCode;

use anyhow::{Context, Result};
use fedser_audio::FrontEndConfig;
use fedser_client::ModelMeta;
use fedser_data::partition::{TestSpeakers, speaker_split, train_val_split};
use fedser_fl::run_dir::write_atomic;
use fedser_model::model::train_device;
use fedser_model::train::train_observed;
use fedser_model::{EmotionModel, ModelSpec, TrainConfig, evaluate};

use super::dataset::{self, examples};
use super::evaluate::print_metrics;
use crate::cli::TrainCmd;
use crate::progress;

/// Indices into the loaded data: fitting (with any augmented copies), validation, test, and
/// everything the normalisation may learn from (fitting + validation).
struct Split {
    fit: Vec<usize>,
    val: Vec<usize>,
    test: Vec<usize>,
    train: Vec<usize>,
}

pub fn run(cmd: TrainCmd, quiet: bool) -> Result<ExitCode> {
    let (front, mut spec, cfg) = settings(&cmd)?;
    let mut data = dataset::load(&cmd.corpus, &front, cmd.cache.as_deref(), quiet)?;
    let split = split(&cmd, &mut data, &front)?;
    let norm = dataset::normalise(&mut data, cmd.norm, &split.train);
    let test_speakers = dataset::speakers(&data.corpus, &split.test);
    eprintln!(
        "{} {}: {} training, {} validation, {} test utterances (test speakers: {})",
        data.corpus.name,
        cmd.arch,
        split.fit.len(),
        split.val.len(),
        split.test.len(),
        test_speakers.join(",")
    );

    // The model reads as many coefficients as the front end makes.
    spec.n_features = data.features[0].coeffs();
    let model = EmotionModel::new(spec, cmd.corpus.seed, &train_device())?;
    let started = std::time::Instant::now();
    let (model, history) = fit(model, &data, &split, &cfg, quiet)?;
    let seconds = started.elapsed().as_secs_f64();
    let metrics = evaluate(&model, &examples(&data, &split.test), 64).metrics();

    std::fs::create_dir_all(&cmd.out)
        .with_context(|| format!("cannot create {}", cmd.out.display()))?;
    // The model file records how it was trained: the training settings and the device-side
    // augmentation (runs record theirs through the run's local settings).
    let mut record = serde_json::to_value(&cfg)?;
    record["augment_chains"] = cmd.augment_chains.into();
    record["augment_kinds"] = serde_json::to_value(&cmd.augment_kinds)?;
    let meta = ModelMeta::new(front, norm, &record, test_speakers.clone())?;
    let model_path = cmd.out.join("model.safetensors");
    fedser_client::model_file::save(&model, &model_path, &meta)?;
    let report = serde_json::json!({
        "corpus": data.corpus.name,
        "arch": cmd.arch.name(),
        "test_speakers": test_speakers,
        "train_utterances": split.fit.len(),
        "val_utterances": split.val.len(),
        "test_utterances": split.test.len(),
        "parameters": model.num_params(),
        "train_seconds": seconds,
        "history": history,
        "test": metrics,
    });
    write_atomic(
        &cmd.out.join("metrics.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
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

/// The front end, model and training settings the flags ask for, checked before any data is
/// read.
fn settings(cmd: &TrainCmd) -> Result<(FrontEndConfig, ModelSpec, TrainConfig)> {
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
    Ok((front, spec, cfg))
}

/// Held-out speakers, the validation split of the rest, and the augmented copies of the
/// fitting recordings (appended to `data`).
fn split(cmd: &TrainCmd, data: &mut dataset::Featured, front: &FrontEndConfig) -> Result<Split> {
    let test = if cmd.test_speakers.is_empty() {
        TestSpeakers::Fraction(cmd.test_fraction)
    } else {
        TestSpeakers::Named(cmd.test_speakers.clone())
    };
    let (mut train, test) = speaker_split(&data.corpus.utterances, &test, cmd.corpus.seed)?;
    if test.is_empty() {
        anyhow::bail!(
            "train needs held-out speakers to report on: give --test-fraction above 0 or \
             --test-speakers"
        );
    }
    let (mut fit, val) = train_val_split(
        &data.corpus.utterances,
        &train,
        cmd.val_fraction,
        cmd.corpus.seed,
    );
    if cmd.augment_chains > 0 {
        let cache = dataset::open_cache(cmd.cache.as_deref())?;
        let added = fedser_client::robustness::augment_with_chains(
            data,
            &fit,
            front,
            cache.as_ref(),
            cmd.augment_chains,
            &cmd.augment_kinds,
            cmd.corpus.seed,
        )?;
        fit.extend(&added);
        train.extend(&added);
    }
    Ok(Split {
        fit,
        val,
        test,
        train,
    })
}

/// Trains on the fitting split, validating on the validation split, with an epoch bar.
fn fit(
    model: EmotionModel,
    data: &dataset::Featured,
    split: &Split,
    cfg: &TrainConfig,
    quiet: bool,
) -> Result<(EmotionModel, fedser_model::train::History)> {
    let bar = progress::bar(cfg.epochs as u64, "epochs", quiet);
    let mut on_epoch = |r: &fedser_model::train::EpochRecord| {
        let val = r
            .val_ua
            .map_or_else(String::new, |ua| format!(", validation UA {ua:.3}"));
        bar.set_message(format!("epochs (loss {:.4}{val})", r.train_loss));
        bar.inc(1);
    };
    let trained = train_observed(
        model,
        &examples(data, &split.fit),
        &examples(data, &split.val),
        cfg,
        None,
        &mut on_epoch,
    )?;
    bar.finish_and_clear();
    Ok(trained)
}
