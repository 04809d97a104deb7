//! `fedser simulate` and `fedser demo`: a federated run in-process, written to a run
//! directory (config.toml, run.json, metrics.jsonl, global.safetensors, checkpoints/,
//! clients/, report.html) that `--resume` can continue.

mod client;
mod config;
mod data;
mod rundir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use fedser_core::Metrics;
use fedser_fl::simulation::Progress;
use fedser_fl::strategy::LocalTraining;
use fedser_fl::{ClientPipeline, FedStrategy, RoundRecord, Sampling, Server, Simulation, Strategy};
use fedser_model::model::train_device;
use fedser_model::{EmotionModel, TrainConfig};

use self::client::{SpeechClients, evaluate_examples, model_with};
use self::config::RunConfig;
use crate::cli::{DemoCmd, SimulateCmd};
use crate::commands::evaluate::print_metrics;
use crate::commands::train::{META_FRONT_END, META_NORM, META_TRAIN};
use crate::progress;
use crate::report::RunInfo;

/// Options that change how a run is carried out but not its results.
struct Options {
    cache: Option<PathBuf>,
    quiet: bool,
    json: bool,
    report: bool,
    stop_after: Option<u32>,
}

pub fn run(cmd: SimulateCmd, quiet: bool) -> Result<ExitCode> {
    let opts = Options {
        cache: cmd.cache.clone().or_else(data::default_cache),
        quiet,
        json: cmd.json,
        report: !cmd.no_report,
        stop_after: cmd.stop_after,
    };
    if let Some(dir) = &cmd.resume {
        let cfg = RunConfig::load(&dir.join("config.toml"))
            .with_context(|| format!("{} is not a resumable run directory", dir.display()))?;
        cfg.validate()?;
        return execute(cfg, dir, true, &opts);
    }
    let out = cmd.out.clone().context("--out is required")?;
    let mut cfg = match &cmd.config {
        Some(path) => RunConfig::load(path)?,
        None => RunConfig::default(),
    };
    if cmd.name.is_none() && cfg.name == RunConfig::default().name {
        cfg.name = rundir::default_name(&out);
    }
    cfg.apply_flags(&cmd);
    cfg.absolutise_paths();
    cfg.validate()?;
    if rundir::has_run(&out) {
        bail!(
            "{} already holds a run; continue it with --resume {} or choose another --out",
            out.display(),
            out.display()
        );
    }
    execute(cfg, &out, false, &opts)
}

/// The demo: the built-in synthetic corpus, one client per speaker, the CNN and FedAvg.
pub fn demo(cmd: DemoCmd, quiet: bool) -> Result<ExitCode> {
    let mut cfg = RunConfig {
        name: "demo".into(),
        ..RunConfig::default()
    };
    cfg.federation.rounds = cmd.rounds;
    cfg.validate()?;
    if rundir::has_run(&cmd.out) {
        // Only ever a previous run's folder (config.toml + metrics.jsonl): a demo can be rerun.
        std::fs::remove_dir_all(&cmd.out)
            .with_context(|| format!("cannot replace {}", cmd.out.display()))?;
    } else if cmd.out.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} exists and is not a fedser run; choose another --out",
            cmd.out.display()
        );
    }
    eprintln!(
        "fedser demo: {} synthetic speakers, one client each, CNN, FedAvg, {} rounds",
        cfg.corpus.synthetic_speakers, cfg.federation.rounds
    );
    let opts = Options {
        cache: data::default_cache(),
        quiet,
        json: false,
        report: true,
        stop_after: None,
    };
    execute(cfg, &cmd.out, false, &opts)
}

fn execute(cfg: RunConfig, dir: &Path, resume: bool, opts: &Options) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if !resume {
        std::fs::write(dir.join("config.toml"), cfg.to_toml()?)
            .with_context(|| format!("cannot write {}", dir.join("config.toml").display()))?;
    }
    if cfg.split.norm == crate::cli::Norm::Global {
        tracing::warn!(
            "global normalisation pools feature statistics across all clients: fine for \
             comparisons, but it is not something a real federation could compute privately"
        );
    }
    let prepared = data::prepare(&cfg, dir, opts.cache.as_deref(), opts.quiet)?;
    cfg.check_against_clients(prepared.clients.len())?;
    let spec = cfg.model_spec()?;
    let initial = EmotionModel::new(spec.clone(), cfg.seed, &train_device())?;
    let statistics = initial.statistic_names();
    let info = RunInfo {
        name: cfg.name.clone(),
        corpus: prepared.corpus_name.clone(),
        arch: cfg.model.arch.name().to_string(),
        strategy: String::new(), // filled in below, from the strategy itself
        rounds_planned: cfg.federation.rounds,
        parameters: initial.num_params() as u64,
        clients: prepared.clients.clone(),
        test_speakers: prepared.test_speakers.clone(),
        test_utterances: prepared.test.len(),
        emotion_counts: prepared.emotion_counts,
        example_audio: prepared.example_audio.clone(),
    };

    let strategy = FedStrategy::new(
        cfg.strategy()?,
        Sampling {
            fraction_fit: cfg.federation.fraction_fit,
            min_fit_clients: cfg.federation.min_fit_clients,
            fraction_evaluate: cfg.federation.fraction_evaluate,
            min_evaluate_clients: cfg.federation.min_evaluate_clients,
        },
        LocalTraining {
            epochs: cfg.local.epochs,
            batch_size: cfg.local.batch_size,
            learning_rate: cfg.local.learning_rate,
        },
        cfg.seed,
    )
    .with_statistics(statistics);
    let info = RunInfo {
        strategy: strategy.describe(),
        ..info
    };
    std::fs::write(dir.join("run.json"), serde_json::to_string_pretty(&info)?)?;
    let n_clients = prepared.clients.len();
    let mut server = Server::new(
        strategy,
        initial.params()?,
        (0..n_clients).collect(),
        cfg.federation.min_fit_results,
    );
    let mut first_round = 1;
    if resume && let Some((cp, global, state)) = rundir::latest_checkpoint(dir)? {
        server
            .global
            .check_same_layout(&global)
            .with_context(|| format!("{} does not fit the model", cp.path.display()))?;
        server.global = global;
        server.strategy.restore(state);
        first_round = cp.round + 1;
        eprintln!("resuming {} after round {}", dir.display(), cp.round);
    }
    rundir::truncate_metrics(dir, first_round - 1)?;

    let factory = SpeechClients {
        run_dir: dir.to_path_buf(),
        spec: spec.clone(),
        train: TrainConfig {
            weight_decay: cfg.local.weight_decay,
            optimizer: cfg.local.optimizer,
            class_weights: cfg.local.class_weights,
            ..TrainConfig::default()
        },
    };
    let workers = cfg.workers();
    let rounds = cfg.federation.rounds;
    let round_bar = progress::bar(rounds as u64, "rounds", opts.quiet);
    round_bar.set_position((first_round - 1) as u64);
    // Clients done with their training task in the current round, beside the round bar.
    let done = AtomicUsize::new(0);
    let on_progress = |p: Progress| {
        if matches!(p, Progress::Fit(_)) {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            round_bar.set_message(format!("rounds (clients this round: {n})"));
        }
    };
    let mut sim = Simulation::new(&factory, cfg.fl_simulation(workers), ClientPipeline::new())
        .on_progress(&on_progress);
    let test = prepared.test;
    let mut central = |params: &fedser_core::ParamSet| -> Result<fedser_fl::EvalOutcome, String> {
        let model = model_with(&spec, params)?;
        Ok(evaluate_examples(&model, &test))
    };
    let mut meta = BTreeMap::new();
    meta.insert(
        META_FRONT_END.to_string(),
        serde_json::to_string(&cfg.features)?,
    );
    meta.insert(
        META_NORM.to_string(),
        serde_json::to_string(&prepared.norm)?,
    );
    meta.insert(META_TRAIN.to_string(), serde_json::to_string(&cfg.local)?);

    let mut records: Vec<RoundRecord> = rundir::read_metrics(dir)?;
    for round in first_round..=rounds {
        done.store(0, Ordering::Relaxed);
        let central_eval: Option<&mut fedser_fl::server::CentralEval<'_>> = if test.is_empty() {
            None
        } else {
            Some(&mut central)
        };
        let record = server
            .run_round(round, &mut sim, central_eval)
            .map_err(anyhow::Error::msg)?;
        rundir::append_metrics(dir, &record)?;
        rundir::save_checkpoint(dir, round, &server.global, &server.strategy.state())?;
        model_with(&spec, &server.global)
            .map_err(anyhow::Error::msg)?
            .save(&dir.join("global.safetensors"), &meta)?;
        let line = round_line(&record, rounds, n_clients);
        round_bar.inc(1);
        if !opts.quiet {
            round_bar.suspend(|| eprintln!("{line}"));
        }
        records.push(record);
        if opts.stop_after == Some(round) && round < rounds {
            round_bar.finish_and_clear();
            eprintln!(
                "stopped after round {round}; continue with --resume {}",
                dir.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    round_bar.finish_and_clear();

    let last = records
        .last()
        .and_then(|r| r.central.clone().or(r.federated.clone()));
    if opts.json {
        let metrics = last.as_ref().map(|s| s.confusion.metrics());
        println!("{}", serde_json::to_string(&metrics)?);
    } else {
        print_summary(&records);
        if let Some(s) = &last {
            let m: Metrics = s.confusion.metrics();
            if test.is_empty() {
                println!("\nfinal global model on the clients' pooled validation data:");
            } else {
                println!("\nfinal global model on held-out speakers:");
            }
            print_metrics(&m);
        }
    }
    if opts.report {
        let html = crate::report::write_report(dir)?;
        if !opts.json {
            println!("report: {}", html.display());
        }
    }
    if !opts.json {
        println!(
            "run directory: {} ({:.1} s)",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn round_line(r: &RoundRecord, rounds: u32, clients: usize) -> String {
    let mut line = format!("round {:>3}/{rounds}", r.round);
    if let Some(c) = &r.central {
        line += &format!(
            "  acc {:.3}  UA {:.3}  F1 {:.3}",
            c.accuracy, c.ua, c.macro_f1
        );
    }
    if let Some(f) = &r.federated {
        line += &format!("  (clients' val UA {:.3})", f.ua);
    }
    if let Some(l) = r.train_loss {
        line += &format!("  loss {l:.3}");
    }
    line += &format!(
        "  {}/{} updates of {clients} clients  {:.1} s",
        r.accepted, r.selected, r.seconds
    );
    if let Some(n) = &r.note {
        line += &format!("  [{n}]");
    }
    line
}

/// The per-round table: every round when there are few, else about twenty evenly spaced.
fn print_summary(records: &[RoundRecord]) {
    println!(
        "{:>5}  {:>8}  {:>6}  {:>8}  {:>10}  {:>8}",
        "round", "accuracy", "UA", "macro-F1", "train loss", "seconds"
    );
    let step = records.len().div_ceil(20).max(1);
    for (i, r) in records.iter().enumerate() {
        if i % step != 0 && i + 1 != records.len() {
            continue;
        }
        let (acc, ua, f1) = r
            .central
            .as_ref()
            .or(r.federated.as_ref())
            .map_or((f64::NAN, f64::NAN, f64::NAN), |c| {
                (c.accuracy, c.ua, c.macro_f1)
            });
        println!(
            "{:>5}  {acc:>8.3}  {ua:>6.3}  {f1:>8.3}  {:>10.3}  {:>8.1}",
            r.round,
            r.train_loss.unwrap_or(f64::NAN),
            r.seconds
        );
    }
}
