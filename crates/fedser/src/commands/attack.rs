//! `fedser attack RUN_DIR --kind gender|membership`: what an honest-but-curious server learns
//! from a run. Gender: the server re-trains shadow speakers of known sex from each round's
//! global model, fits a linear classifier on their updates (Feng et al., Interspeech 2021) and
//! predicts the sex of every client from the update it recorded (`--record-updates`).
//! Membership: given a speaker's recordings, did that speaker train the final model? Scored by
//! the final model's loss on them (loss threshold) and by offline LiRA (reference models
//! trained on halves of the shadow speakers, never on the candidate). Results go to
//! `RUN_DIR/attacks/KIND.json`; `fedser report` shows them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use fedser_client::{Held, LocalData, NormRecord, SpeechClient, evaluate_examples, store};
use fedser_core::ParamSet;
use fedser_data::Gender;
use fedser_fl::pipeline::RecordUpdates;
use fedser_fl::run_dir::{RunDir, load_checkpoint, read_metrics};
use fedser_fl::{ClientPipeline, ConfigValue, FitInstructions, RoundRecord, flat, seed};
use fedser_model::model::train_device;
use fedser_model::{EmotionModel, Example, ModelSpec, TrainConfig};
use fedser_privacy::attack::{
    LinearAttack, lira_offline_score, roc_auc, scaled_confidence, tpr_at_fpr, uar,
};
use fedser_privacy::dp::{CLIP_KEY, NOISE_KEY};
use fedser_privacy::{DpClientStage, DpMode};
use rayon::prelude::*;
use serde_json::json;

use super::dataset;
use super::simulate::config::RunConfig;
use crate::cli::{AttackCmd, AttackKind, CorpusArgs};
use crate::report::RunInfo;

/// A run as the attacker finds it.
struct Run {
    dir: PathBuf,
    cfg: RunConfig,
    info: RunInfo,
    spec: ModelSpec,
    norm: NormRecord,
    rounds: BTreeMap<u32, RoundRecord>,
}

/// A speaker outside the federation whose sex the attacker knows.
struct Shadow {
    name: String,
    gender: Option<Gender>,
    examples: Vec<Example>,
}

pub fn run(cmd: AttackCmd, quiet: bool) -> Result<ExitCode> {
    if !cmd.run_dir.join("config.toml").is_file() {
        bail!(
            "{} is not a run directory (no config.toml)",
            cmd.run_dir.display()
        );
    }
    // The attack writes into the run directory: never while a run is writing it.
    let _lock = RunDir::lock(&cmd.run_dir, "fedser attack")?;
    let run = load_run(&cmd.run_dir)?;
    let shadows = shadow_speakers(&cmd, &run, quiet)?;
    let report = match cmd.kind {
        AttackKind::Gender => gender(&cmd, &run, &shadows)?,
        AttackKind::Membership => membership(&run, &shadows, cmd.references)?,
    };
    let dir = run.dir.join("attacks");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = report["kind"].as_str().unwrap_or("attack").to_string();
    let path = dir.join(format!("{name}.json"));
    fedser_fl::run_dir::write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    // The report shows attack results: bring an existing one up to date.
    if run.dir.join("report.html").is_file() {
        crate::report::write_report(&run.dir)?;
    }
    if cmd.json {
        println!("{report}");
    } else {
        print_report(&report);
        println!("written: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &serde_json::Value) {
    match r["kind"].as_str() {
        Some("gender") => println!(
            "gender inference from updates: UAR {:.3} (chance 0.5) over {} clients x {} rounds, \
             {} shadow speakers, layer {}",
            r["uar"].as_f64().unwrap_or(f64::NAN),
            r["clients"],
            r["rounds"],
            r["shadow_speakers"],
            r["layer"].as_str().unwrap_or("?")
        ),
        _ => {
            println!(
                "speaker membership (loss threshold): AUC {:.3} (chance 0.5), TPR at 1% FPR \
                 {:.3}; {} members, {} non-members",
                r["auc"].as_f64().unwrap_or(f64::NAN),
                r["tpr_at_1pct_fpr"].as_f64().unwrap_or(f64::NAN),
                r["members"],
                r["non_members"]
            );
            if let Some(l) = r.get("lira") {
                println!(
                    "speaker membership (offline LiRA, {} reference models): AUC {:.3}, TPR at \
                     1% FPR {:.3}",
                    l["reference_models"],
                    l["auc"].as_f64().unwrap_or(f64::NAN),
                    l["tpr_at_1pct_fpr"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
    }
}

fn load_run(dir: &Path) -> Result<Run> {
    let cfg = RunConfig::load(&dir.join("config.toml"))
        .with_context(|| format!("{} is not a run directory", dir.display()))?;
    let text = std::fs::read_to_string(dir.join("run.json"))
        .with_context(|| format!("cannot read {}", dir.join("run.json").display()))?;
    let info: RunInfo = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid run.json", dir.join("run.json").display()))?;
    let (_, meta) = fedser_client::model_file::load(dir)?;
    let rounds = read_metrics(&dir.join(fedser_fl::run_dir::METRICS))?
        .records
        .into_iter()
        .map(|r| (r.round, r))
        .collect();
    Ok(Run {
        dir: dir.to_path_buf(),
        spec: cfg.model_spec()?,
        cfg,
        info,
        norm: meta.norm,
        rounds,
    })
}

/// Speakers of the shadow corpus who are not in the federation, each normalised with their
/// own statistics as a device would.
fn shadow_speakers(cmd: &AttackCmd, run: &Run, quiet: bool) -> Result<Vec<Shadow>> {
    let args = CorpusArgs {
        corpus: cmd.shadow_corpus,
        data: cmd.shadow_data.clone(),
        crema_voice_labels: false,
        iemocap_improvised_only: false,
        iemocap_keep_excited_apart: false,
        synthetic_speakers: run.cfg.corpus.synthetic_speakers,
        synthetic_per_emotion: run.cfg.corpus.synthetic_per_emotion,
        seed: run.cfg.seed,
    };
    let featured = dataset::load(&args, &run.cfg.features, cmd.cache.as_deref(), quiet)?;
    let members: std::collections::BTreeSet<&str> = run
        .info
        .clients
        .iter()
        .flat_map(|c| c.speakers.iter().map(String::as_str))
        .collect();
    let all: Vec<usize> = (0..featured.features.len()).collect();
    let mut shadows = Vec::new();
    for group in dataset::by_speaker(&featured.corpus, &all) {
        let u = &featured.corpus.utterances[group[0]];
        if members.contains(u.speaker.as_str()) {
            continue;
        }
        let data = LocalData {
            train: group
                .iter()
                .map(|&i| Held {
                    example: dataset::examples(&featured, &[i]).remove(0),
                    speaker: Some(u.speaker.clone()),
                })
                .collect(),
            val: Vec::new(),
        };
        let (examples, _) = data.normalise(&run.norm);
        shadows.push(Shadow {
            name: u.speaker.clone(),
            gender: u.gender,
            examples,
        });
    }
    if shadows.is_empty() {
        bail!("the shadow corpus has no speaker outside the federation");
    }
    Ok(shadows)
}

/// The flat range of the layer the gender attack reads: `--layer`, or the first weight
/// matrix of the model (a first layer sees the voice most directly).
fn layer_range(layout: &ParamSet, name: Option<&str>) -> Result<(String, std::ops::Range<usize>)> {
    let mut offset = 0;
    for (n, t) in layout.iter() {
        let len = t.data.len();
        let chosen = match name {
            Some(want) => n == want,
            None => t.shape.len() >= 2,
        };
        if chosen {
            return Ok((n.to_string(), offset..offset + len));
        }
        offset += len;
    }
    let names: Vec<&str> = layout.iter().map(|(n, _)| n).collect();
    bail!(
        "no layer {} in the model (its tensors: {})",
        name.unwrap_or("of rank 2 or more"),
        names.join(", ")
    )
}

/// The global model a round sent: the checkpoint of the round before, or the initial model.
fn global_sent(run: &Run, round: u32) -> Result<ParamSet> {
    if round <= 1 {
        let model = EmotionModel::new(run.spec.clone(), run.cfg.seed, &train_device())?;
        return Ok(model.params()?);
    }
    let path = run
        .dir
        .join(fedser_fl::run_dir::CHECKPOINTS)
        .join(format!("round-{:04}.safetensors", round - 1));
    Ok(load_checkpoint(&path)?.global)
}

/// The rounds whose updates were recorded.
fn recorded_rounds(dir: &Path) -> Result<Vec<u32>> {
    let view = dir.join("attacker");
    let entries = std::fs::read_dir(&view).with_context(|| {
        format!(
            "{} holds no recorded updates: run the federation with --record-updates",
            dir.display()
        )
    })?;
    let mut rounds: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("round-")?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()
        })
        .collect();
    rounds.sort_unstable();
    if rounds.is_empty() {
        bail!("{}: no recorded round", view.display());
    }
    Ok(rounds)
}

/// A shadow speaker's update in `round`, made exactly as a client of the run would make it.
fn shadow_update(
    run: &Run,
    shadow: &Shadow,
    index: usize,
    round: u32,
    global: &ParamSet,
) -> Result<Vec<f32>> {
    let cfg = &run.cfg;
    let train = TrainConfig {
        weight_decay: cfg.local.weight_decay,
        optimizer: cfg.local.optimizer,
        class_weights: cfg.local.class_weights,
        ..TrainConfig::default()
    };
    let data = LocalData {
        train: shadow
            .examples
            .iter()
            .map(|e| Held {
                example: e.clone(),
                speaker: None,
            })
            .collect(),
        val: Vec::new(),
    };
    // Already normalised per speaker: `None` keeps them as they are.
    let mut client = SpeechClient::new(run.spec.clone(), train, data, &NormRecord::None);
    let mut config = fedser_fl::ConfigMap::new();
    let mut pipeline = ClientPipeline::new();
    if let Some(p) = run
        .rounds
        .get(&round)
        .and_then(|r| r.stage_records.get("privacy"))
    {
        if let Some(clip) = p["clip"].as_f64() {
            config.insert(CLIP_KEY.into(), ConfigValue::Float(clip));
        }
        if p["mode"] == json!(DpMode::Local)
            && let Some(std) = p["noise_std"].as_f64()
        {
            config.insert(NOISE_KEY.into(), ConfigValue::Float(std));
        }
        pipeline = pipeline.with_stage(Box::new(DpClientStage));
    }
    let ins = FitInstructions {
        round,
        epochs: cfg.local.epochs,
        batch_size: cfg.local.batch_size,
        learning_rate: cfg.local.learning_rate,
        proximal_mu: cfg.strategy()?.proximal_mu,
        seed: seed::derive(cfg.seed, round, 1_000_000 + index as u64, "shadow-fit"),
        config,
    };
    let update = pipeline
        .fit(&mut client, 1_000_000 + index, global, &ins)
        .map_err(|e| anyhow::anyhow!("shadow speaker {}: {e}", shadow.name))?;
    Ok(flat::flatten(&update.delta))
}

fn gender(cmd: &AttackCmd, run: &Run, shadows: &[Shadow]) -> Result<serde_json::Value> {
    let shadows: Vec<&Shadow> = shadows.iter().filter(|s| s.gender.is_some()).collect();
    let sexes = |g: Gender| shadows.iter().filter(|s| s.gender == Some(g)).count();
    if sexes(Gender::Male) == 0 || sexes(Gender::Female) == 0 {
        bail!(
            "the gender attack needs shadow speakers of both sexes outside the federation \
             ({} male, {} female found)",
            sexes(Gender::Male),
            sexes(Gender::Female)
        );
    }
    let truth: BTreeMap<usize, bool> = run
        .info
        .clients
        .iter()
        .filter_map(|c| Some((c.id, c.gender? == Gender::Male)))
        .collect();
    if truth.is_empty() {
        bail!("no client of this run has a known sex (run.json records none)");
    }
    let rounds = recorded_rounds(&run.dir)?;
    let layout = global_sent(run, 1)?;
    let (layer, range) = layer_range(&layout, cmd.layer.as_deref())?;
    let window = cmd.window.clamp(1, 1000) as u32;
    // Shadow features per round, kept for the window.
    let mut shadow_rows: BTreeMap<u32, Vec<(Vec<f32>, bool)>> = BTreeMap::new();
    let (mut all_truth, mut all_pred) = (Vec::new(), Vec::new());
    let mut per_round = Vec::new();
    for &round in &rounds {
        let global = global_sent(run, round)?;
        let rows: Vec<(Vec<f32>, bool)> = shadows
            .par_iter()
            .enumerate()
            .map(|(i, s)| {
                let flat = shadow_update(run, s, i, round, &global)?;
                Ok((flat[range.clone()].to_vec(), s.gender == Some(Gender::Male)))
            })
            .collect::<Result<_>>()?;
        shadow_rows.insert(round, rows);
        let (xs, ys): (Vec<Vec<f32>>, Vec<bool>) = shadow_rows
            .range(round.saturating_sub(window - 1)..=round)
            .flat_map(|(_, rows)| rows.iter().cloned())
            .unzip();
        let attack = LinearAttack::fit(&xs, &ys, 1.0)?;
        let (set, _) =
            ParamSet::load(&RecordUpdates::round_file(&run.dir.join("attacker"), round))?;
        let (mut t, mut p) = (Vec::new(), Vec::new());
        for (name, tensor) in set.iter() {
            let Some(id) = name
                .strip_prefix("client-")
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let (Some(&is_male), Some(features)) = (truth.get(&id), tensor.data.get(range.clone()))
            else {
                continue;
            };
            t.push(is_male);
            p.push(attack.predict(features));
        }
        if let Some(u) = uar(&t, &p) {
            per_round.push(json!({"round": round, "uar": u, "clients": t.len()}));
        }
        all_truth.extend(t);
        all_pred.extend(p);
    }
    let pooled =
        uar(&all_truth, &all_pred).context("no recorded update of a client of known sex")?;
    Ok(json!({
        "kind": "gender",
        "uar": pooled,
        "uar_per_round": per_round,
        "rounds": rounds.len(),
        "clients": truth.len(),
        "shadow_speakers": shadows.len(),
        "layer": layer,
        "window": window,
        "classifier": "ridge-regularised linear classifier on standardised layer updates",
    }))
}

/// A speaker's mean scaled confidence (LiRA's statistic) under `model`.
fn confidence(model: &EmotionModel, examples: &[Example]) -> f64 {
    let probs = fedser_model::predict(model, examples, 64);
    let total: f64 = examples
        .iter()
        .zip(&probs)
        .map(|(e, p)| scaled_confidence(f64::from(p.get(e.label).copied().unwrap_or(0.0))))
        .sum();
    total / examples.len().max(1) as f64
}

/// Reference models for offline LiRA: each trained centrally, with the run's local settings
/// for as many epochs as a client trains over the whole run, on a seeded half of the shadow
/// speakers; returns each model with the shadow speakers it did *not* see.
fn reference_models(
    run: &Run,
    shadows: &[Shadow],
    count: usize,
) -> Result<Vec<(EmotionModel, Vec<bool>)>> {
    let cfg = &run.cfg;
    (0..count)
        .into_par_iter()
        .map(|k| {
            let s = seed::derive(cfg.seed, 0, k as u64, "lira-reference");
            // Half of the shadows, chosen by the seed (at least one in, one out).
            let mut order: Vec<usize> = (0..shadows.len()).collect();
            order.sort_by_key(|&i| seed::derive(s, 0, i as u64, "lira-half"));
            let half = (shadows.len() / 2).max(1);
            let mut inside = vec![false; shadows.len()];
            order[..half].iter().for_each(|&i| inside[i] = true);
            let train: Vec<Example> = shadows
                .iter()
                .zip(&inside)
                .filter(|(_, inside)| **inside)
                .flat_map(|(sh, _)| sh.examples.iter().cloned())
                .collect();
            let tc = TrainConfig {
                epochs: cfg.local.epochs * cfg.federation.rounds as usize,
                batch_size: cfg.local.batch_size,
                learning_rate: cfg.local.learning_rate,
                weight_decay: cfg.local.weight_decay,
                optimizer: cfg.local.optimizer,
                class_weights: cfg.local.class_weights,
                seed: s,
                ..TrainConfig::default()
            };
            let model = EmotionModel::new(run.spec.clone(), s, &train_device())?;
            let (model, _) = fedser_model::train(model, &train, &[], &tc)?;
            Ok((model, inside.iter().map(|i| !i).collect()))
        })
        .collect()
}

fn membership(run: &Run, shadows: &[Shadow], references: usize) -> Result<serde_json::Value> {
    let (model, _) = fedser_client::model_file::load(&run.dir)?;
    let mut members: Vec<Vec<Example>> = Vec::new();
    for c in &run.info.clients {
        let data = store::read(&store::client_file(&run.dir, c.id))?;
        let (mut train, val) = data.normalise(&run.norm);
        train.extend(val);
        members.push(train);
    }
    let loss = |examples: &[Example]| -evaluate_examples(&model, examples).loss;
    let loss_members: Vec<f64> = members.iter().map(|e| loss(e)).collect();
    let loss_others: Vec<f64> = shadows.iter().map(|s| loss(&s.examples)).collect();
    let mut report = json!({
        "kind": "membership",
        "attack": "loss threshold (speaker level: mean loss over the speaker's recordings)",
        "auc": roc_auc(&loss_members, &loss_others).context("no members or no non-members")?,
        "tpr_at_1pct_fpr": tpr_at_fpr(&loss_members, &loss_others, 0.01),
        "members": loss_members.len(),
        "non_members": loss_others.len(),
    });
    if references >= 2 && shadows.len() >= 2 {
        let refs = reference_models(run, shadows, references)?;
        // Members were never in a reference model's data: every reference is OUT for them.
        let lira_members: Vec<f64> = members
            .iter()
            .filter_map(|ex| {
                let out: Vec<f64> = refs.iter().map(|(m, _)| confidence(m, ex)).collect();
                lira_offline_score(confidence(&model, ex), &out)
            })
            .collect();
        let lira_others: Vec<f64> = shadows
            .iter()
            .enumerate()
            .filter_map(|(i, sh)| {
                let out: Vec<f64> = refs
                    .iter()
                    .filter(|(_, outside)| outside[i])
                    .map(|(m, _)| confidence(m, &sh.examples))
                    .collect();
                lira_offline_score(confidence(&model, &sh.examples), &out)
            })
            .collect();
        report["lira"] = json!({
            "attack": "offline LiRA (Carlini et al. 2022): Gaussian fit of reference models trained without the candidate",
            "reference_models": references,
            "auc": roc_auc(&lira_members, &lira_others),
            "tpr_at_1pct_fpr": tpr_at_fpr(&lira_members, &lira_others, 0.01),
            "members": lira_members.len(),
            "non_members": lira_others.len(),
        });
    }
    Ok(report)
}
