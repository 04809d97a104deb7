//! `fedser simulate` and `fedser demo`: a federated run in-process, written to a run
//! directory (config.toml, run.json, metrics.jsonl, global.safetensors, checkpoints/,
//! clients/, report.html) that `--resume` can continue.

pub(crate) mod config;
pub(crate) mod data;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use fedser_client::store::StoredClients;
use fedser_client::{ModelMeta, evaluate_examples, model_with};
use fedser_core::{Metrics, ParamSet};
use fedser_fl::driver::{self, RoundHook};
use fedser_fl::pipeline::RecordUpdates;
use fedser_fl::run_dir::{Fingerprint, RunDir};
use fedser_fl::simulation::Progress;
use fedser_fl::strategy::LocalTraining;
use fedser_fl::{
    ClientPipeline, FedStrategy, RoundRecord, Sampling, Server, ServerPipeline, Simulation,
    Strategy,
};
use fedser_model::model::train_device;
use fedser_model::{EmotionModel, ModelSpec, TrainConfig};
use fedser_privacy::dp::AdaptiveSettings;
use fedser_privacy::{
    DpClientStage, DpMode, DpServerStage, DpSettings, SecAggParticipant, SecAggStage,
};

use self::config::RunConfig;
use crate::cli::{DemoCmd, SimulateCmd};
use crate::commands::evaluate::print_metrics;
use crate::progress;
use crate::report::RunInfo;

/// Options that change how a run is carried out but not its results.
pub(crate) struct Options {
    pub(crate) cache: Option<PathBuf>,
    pub(crate) quiet: bool,
    pub(crate) json: bool,
    pub(crate) report: bool,
    pub(crate) stop_after: Option<u32>,
}

/// Whether a run starts in an empty directory or continues the one it finds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Fresh,
    Resume,
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
        if !dir.is_dir() {
            bail!("{} is not a run directory (no such folder)", dir.display());
        }
        // Locked before anything is read, so a run still being written is refused as busy.
        let run = RunDir::lock(dir, "fedser simulate --resume")?;
        if !dir.join("config.toml").is_file() {
            bail!("{} is not a run directory (no config.toml)", dir.display());
        }
        let mut cfg = RunConfig::load(&dir.join("config.toml"))?;
        if let Some(rounds) = cmd.run.rounds {
            cfg.federation.rounds = rounds;
        }
        cfg.validate()?;
        return execute(cfg, run, Start::Resume, &opts);
    }
    let out = cmd.out.clone().context("--out is required")?;
    let mut cfg = match &cmd.config {
        Some(path) => RunConfig::load(path)?,
        None => RunConfig::default(),
    };
    if cmd.run.name.is_none() && cfg.name == RunConfig::default().name {
        cfg.name = default_name(&out);
    }
    cfg.apply_flags(&cmd.run);
    cfg.absolutise_paths();
    cfg.validate()?;
    let run = RunDir::lock(&out, "fedser simulate")?;
    if RunDir::has_run(&out) {
        bail!(
            "{} already holds a run; continue it with --resume {} or choose another --out",
            out.display(),
            out.display()
        );
    }
    execute(cfg, run, Start::Fresh, &opts)
}

/// A run's name from its folder.
pub(crate) fn default_name(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
}

/// The demo: the built-in synthetic corpus, one client per speaker, the CNN and FedAvg.
/// An existing `--out` is never touched: the demo then writes beside it (`runs/demo-2`, ...).
pub fn demo(cmd: DemoCmd, quiet: bool) -> Result<ExitCode> {
    let mut cfg = RunConfig {
        name: "demo".into(),
        ..RunConfig::default()
    };
    cfg.federation.rounds = cmd.rounds;
    cfg.validate()?;
    let out = free_beside(&cmd.out);
    if out != cmd.out {
        eprintln!(
            "{} already exists; writing this demo to {} (nothing is deleted)",
            cmd.out.display(),
            out.display()
        );
    }
    let run = RunDir::lock(&out, "fedser demo")?;
    let test =
        ((cfg.corpus.synthetic_speakers as f64 * cfg.split.test_fraction).round() as usize).max(1);
    eprintln!(
        "fedser demo: {} synthetic speakers ({} held out for testing, one client for each of the \
         other {}), CNN, FedAvg, {} rounds",
        cfg.corpus.synthetic_speakers,
        test,
        cfg.corpus.synthetic_speakers.saturating_sub(test),
        cfg.federation.rounds
    );
    let opts = Options {
        cache: data::default_cache(),
        quiet,
        json: false,
        report: true,
        stop_after: None,
    };
    execute(cfg, run, Start::Fresh, &opts)
}

/// `path` if it does not exist or is an empty folder, else the first free `path-N`.
fn free_beside(path: &Path) -> PathBuf {
    let free = |p: &Path| match p.read_dir() {
        Ok(mut d) => d.next().is_none(),
        Err(_) => !p.exists(),
    };
    if free(path) {
        return path.to_path_buf();
    }
    let name = default_name(path);
    (2..)
        .map(|n| path.with_file_name(format!("{name}-{n}")))
        .find(|p| free(p))
        .unwrap_or_else(|| path.to_path_buf())
}

/// Settings a resumed run may change (recorded as events); all others define the experiment.
pub(crate) const MAY_CHANGE: [&str; 4] = [
    "name",
    "federation.rounds",
    "simulation.workers",
    "privacy.record_updates",
];

/// The fingerprint of what defines this experiment: every setting plus the corpus content.
fn fingerprint(cfg: &RunConfig, corpus: &fedser_data::Corpus) -> Result<Fingerprint> {
    let utterances: Vec<(&str, &str, &str)> = corpus
        .utterances
        .iter()
        .map(|u| (u.id.as_str(), u.speaker.as_str(), u.emotion.name()))
        .collect();
    let mut settings = serde_json::to_value(cfg)?;
    settings["corpus_content"] = serde_json::json!({
        "utterances": utterances.len(),
        "sha256": Fingerprint::of(&serde_json::json!(utterances)).sha256,
    });
    Ok(Fingerprint::of(&settings))
}

/// Records the fingerprint of a fresh run, or checks a resumed run against it: a changed
/// setting that defines the experiment is refused (each one named); an allowed change is
/// recorded in `events.jsonl`.
pub(crate) fn check_fingerprint(run: &RunDir, now: &Fingerprint, start: Start) -> Result<()> {
    let recorded = match (start, run.fingerprint()?) {
        (Start::Fresh, _) | (Start::Resume, None) => {
            if start == Start::Resume {
                tracing::warn!(
                    "{} has no fingerprint (written before fedser recorded one); recording the \
                     current settings",
                    run.path().display()
                );
            }
            return Ok(run.write_fingerprint(now)?);
        }
        (Start::Resume, Some(fp)) => fp,
    };
    // A setting newer than the run (absent from its fingerprint) at its default value changes
    // nothing: runs started by an older fedser resume.
    let defaults = Fingerprint::of(&serde_json::to_value(RunConfig::default())?);
    let changes = recorded.changes(now);
    let (allowed, refused): (Vec<_>, Vec<_>) = changes
        .into_iter()
        .filter(|c| !(c.was.is_none() && c.now.as_ref() == defaults.settings.get(&c.key)))
        .partition(|c| MAY_CHANGE.contains(&c.key.as_str()));
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|c| format!("  {c}")).collect();
        bail!(
            "cannot resume {}: settings that define the experiment changed since it started:\n{}\n\
             restore them in config.toml, or start a new run with --out (only {} may change)",
            run.path().display(),
            list.join("\n"),
            MAY_CHANGE.join(", ")
        );
    }
    if !allowed.is_empty() {
        let changed: serde_json::Map<String, serde_json::Value> = allowed
            .iter()
            .map(|c| {
                (
                    c.key.clone(),
                    serde_json::json!({"was": c.was, "now": c.now}),
                )
            })
            .collect();
        for c in &allowed {
            eprintln!("resume changes {c}");
        }
        run.record_event("settings-changed", serde_json::Value::Object(changed))?;
        run.write_fingerprint(now)?;
    }
    Ok(())
}

fn execute(cfg: RunConfig, run: RunDir, start: Start, opts: &Options) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let dir = run.path().to_path_buf();
    if cfg.split.norm == crate::cli::Norm::Global {
        tracing::warn!(
            "global normalisation pools feature statistics across all clients: fine for \
             comparisons, but it is not something a real federation could compute privately"
        );
    }
    let featured = data::load(&cfg, opts.cache.as_deref(), opts.quiet)?;
    check_fingerprint(&run, &fingerprint(&cfg, &featured.corpus)?, start)?;
    // On a resume this writes back the allowed changes (e.g. more rounds).
    run.write_file("config.toml", cfg.to_toml()?.as_bytes())?;
    let cache = crate::commands::dataset::open_cache(opts.cache.as_deref())?;
    let prepared = data::prepare(&cfg, featured, &dir, cache.as_ref())?;
    cfg.check_against_clients(prepared.clients.len())?;
    let spec = cfg.model_spec()?;
    let initial = EmotionModel::new(spec.clone(), cfg.seed, &train_device())?;
    let strategy = build_strategy(&cfg, initial.statistic_names())?;
    write_run_info(&run, &cfg, &prepared, &initial, &strategy, start)?;

    let (server_pipeline, client_pipeline) = privacy_pipelines(&cfg, prepared.clients.len(), &run)?;
    let (mut server, first_round) = round_server(
        &cfg,
        &run,
        start,
        strategy,
        &initial,
        prepared.clients.len(),
        server_pipeline,
    )?;

    let factory = StoredClients {
        run_dir: dir.clone(),
        spec: spec.clone(),
        train: TrainConfig {
            weight_decay: cfg.local.weight_decay,
            optimizer: cfg.local.optimizer,
            class_weights: cfg.local.class_weights,
            ..TrainConfig::default()
        },
        norm: prepared.norm.clone(),
    };
    let rounds = cfg.federation.rounds;
    let mut hook = Rounds {
        bar: progress::bar(rounds as u64, "rounds", opts.quiet),
        quiet: opts.quiet,
        rounds,
        clients: prepared.clients.len(),
        spec: spec.clone(),
        model_path: dir.join("global.safetensors"),
        meta: ModelMeta::new(
            cfg.features.clone(),
            prepared.norm.clone(),
            &cfg.local,
            prepared.test_speakers.clone(),
        )?,
        stop_after: opts.stop_after,
    };
    hook.bar.set_position((first_round - 1) as u64);
    // Clients done with their training task in the current round, beside the round bar.
    let done = AtomicUsize::new(0);
    let bar = hook.bar.clone();
    let on_progress = |p: Progress| {
        if matches!(p, Progress::Fit(_)) {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_message(format!("rounds (clients this round: {n})"));
        }
    };
    let mut sim = Simulation::new(&factory, cfg.fl_simulation(cfg.workers()), client_pipeline)
        .on_progress(&on_progress);
    if cfg.privacy.secagg {
        sim = sim.with_secure(&SecAggParticipant);
    }
    let test = &prepared.test;
    let mut central = |params: &ParamSet| -> Result<fedser_fl::EvalOutcome, String> {
        let model = model_with(&spec, params).map_err(|e| e.to_string())?;
        Ok(evaluate_examples(&model, test))
    };
    let central_eval: Option<&mut fedser_fl::server::CentralEval<'_>> =
        (!test.is_empty()).then_some(&mut central);
    let ran = driver::drive(
        &run,
        &mut server,
        first_round..=rounds,
        &mut sim,
        central_eval,
        &mut hook,
    )?;
    hook.bar.finish_and_clear();
    if let Some(reason) = &ran.refused {
        eprintln!("{reason}");
    } else if let Some(last) = ran.records.last()
        && last.round < rounds
    {
        eprintln!(
            "stopped after round {}; continue with --resume {}",
            last.round,
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    finish(&run, opts, test.is_empty(), started)
}

/// The server's round logic for `clients` clients, simulated or deployed: the strategy, the
/// server-side privacy stages (after the attacker's recording of the updates as they arrived,
/// when the run asks for it), secure aggregation, resumed from the run's last checkpoint.
/// Returns the server and the first round to run.
pub(crate) fn round_server(
    cfg: &RunConfig,
    run: &RunDir,
    start: Start,
    strategy: FedStrategy,
    initial: &EmotionModel,
    clients: usize,
    mut pipeline: ServerPipeline,
) -> Result<(Server<FedStrategy>, u32)> {
    let attacker = run.path().join("attacker");
    if cfg.privacy.record_updates {
        // First, so it keeps the updates as they arrived, before any stage changes them.
        pipeline = ServerPipeline::new()
            .with_stage(Box::new(RecordUpdates {
                dir: attacker.clone(),
            }))
            .then(pipeline);
    }
    let mut server = Server::new(
        strategy,
        initial.params()?,
        (0..clients).collect(),
        cfg.federation.min_fit_results,
    )
    .with_pipeline(pipeline);
    if let Some(settings) = cfg.secagg_settings() {
        let mut stage = SecAggStage::new(settings);
        if cfg.privacy.record_updates {
            stage = stage.recording(attacker);
        }
        server = server.with_secure(Box::new(stage));
    }
    let (first_round, _extra) = driver::resume(run, &mut server)?;
    if start == Start::Resume {
        eprintln!(
            "resuming {} after round {}",
            run.path().display(),
            first_round - 1
        );
        run.record_event(
            "resume",
            serde_json::json!({"after_round": first_round - 1, "rounds": cfg.federation.rounds}),
        )?;
    }
    Ok((server, first_round))
}

/// The DP stages on both sides when the run asks for DP, else empty pipelines.
pub(crate) fn privacy_pipelines(
    cfg: &RunConfig,
    clients: usize,
    run: &RunDir,
) -> Result<(ServerPipeline, ClientPipeline)> {
    let p = &cfg.privacy;
    let Some(mode) = p.dp else {
        return Ok((ServerPipeline::new(), ClientPipeline::new()));
    };
    let poisson = cfg.sampling_rate();
    let q = poisson.unwrap_or(cfg.federation.fraction_fit);
    let z = match (p.noise_multiplier, p.target_epsilon) {
        (Some(z), _) => z,
        (None, Some(target)) => {
            let accounted_q = if mode == DpMode::Local { 1.0 } else { q };
            let z = fedser_privacy::noise_multiplier_for(
                target,
                accounted_q,
                u64::from(cfg.federation.rounds),
                p.delta,
                fedser_privacy::accountant::DEFAULT_MAX_NOISE_MULTIPLIER,
            )?;
            eprintln!(
                "noise multiplier {z:.4} keeps epsilon within {target} after {} rounds \
                 (q = {accounted_q}, delta = {})",
                cfg.federation.rounds, p.delta
            );
            z
        }
        (None, None) => bail!("--dp needs --noise-multiplier or --target-epsilon"),
    };
    let settings = DpSettings {
        mode,
        clip: p.clip,
        noise_multiplier: z,
        delta: p.delta,
        sampling_rate: q,
        clients,
        adaptive: p.adaptive_clip.map(|quantile| AdaptiveSettings {
            quantile,
            learning_rate: fedser_privacy::adaptive::DEFAULT_LEARNING_RATE,
        }),
        target_epsilon: p.target_epsilon,
        poisson: poisson.is_some(),
        seed: noise_seed(cfg, run)?,
        reproducible_noise: p.reproducible_noise,
        min_contributors: min_contributors(cfg, clients),
    };
    let stage = DpServerStage::new(settings)?;
    Ok((
        ServerPipeline::new().with_stage(Box::new(stage)),
        ClientPipeline::new().with_stage(Box::new(DpClientStage)),
    ))
}

/// The fewest contributors a round can aggregate: the minimum of results, or under secure
/// aggregation its threshold if that is higher (a round with fewer is refused).
fn min_contributors(cfg: &RunConfig, clients: usize) -> usize {
    let f = &cfg.federation;
    let sampled =
        (((f.fraction_fit * clients as f64).floor() as usize).max(f.min_fit_clients)).min(clients);
    let threshold = cfg
        .secagg_settings()
        .and_then(|s| s.config(1, &(0..sampled).collect::<Vec<_>>(), 1).ok())
        .map_or(0, |c| c.threshold);
    f.min_fit_results.max(threshold).max(1)
}

/// The seed of the server's DP noise: a secret kept in the run directory (mode 0600, never in
/// config.toml, never sent to a client; read back on resume), or the run seed when the run
/// asked for reproducible noise, which voids the guarantee against anyone who knows the seed.
fn noise_seed(cfg: &RunConfig, run: &RunDir) -> Result<u64> {
    if cfg.privacy.reproducible_noise {
        eprintln!(
            "WARNING: --reproducible-noise draws the DP noise from the run seed: anyone who knows \
             the seed (clients receive it) can remove the noise; for exact reproduction only"
        );
        return Ok(cfg.seed);
    }
    let path = run.path().join("dp-noise.secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return text
            .trim()
            .parse()
            .with_context(|| format!("{}: not a noise secret", path.display()));
    }
    let secret = fedser_privacy::dp::noise_secret()?;
    run.write_file("dp-noise.secret", secret.to_string().as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    Ok(secret)
}

pub(crate) fn build_strategy(cfg: &RunConfig, statistics: Vec<String>) -> Result<FedStrategy> {
    Ok(FedStrategy::new(
        cfg.strategy()?,
        Sampling {
            fraction_fit: cfg.federation.fraction_fit,
            min_fit_clients: cfg.federation.min_fit_clients,
            fraction_evaluate: cfg.federation.fraction_evaluate,
            min_evaluate_clients: cfg.federation.min_evaluate_clients,
            poisson: cfg.sampling_rate(),
        },
        LocalTraining {
            epochs: cfg.local.epochs,
            batch_size: cfg.local.batch_size,
            learning_rate: cfg.local.learning_rate,
        },
        cfg.seed,
    )
    .with_statistics(statistics))
}

/// `run.json`: what the report says about the run. A resumed run keeps the one written at
/// its start (only the rounds planned may change).
fn write_run_info(
    run: &RunDir,
    cfg: &RunConfig,
    prepared: &data::Prepared,
    initial: &EmotionModel,
    strategy: &FedStrategy,
    start: Start,
) -> Result<()> {
    let path = run.path().join("run.json");
    let info = match (start, std::fs::read_to_string(&path)) {
        (Start::Resume, Ok(text)) => {
            let mut info: RunInfo = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a valid run.json", path.display()))?;
            info.rounds_planned = cfg.federation.rounds;
            info
        }
        _ => RunInfo {
            name: cfg.name.clone(),
            corpus: prepared.corpus_name.clone(),
            arch: cfg.model.arch.name().to_string(),
            strategy: strategy.describe(),
            rounds_planned: cfg.federation.rounds,
            parameters: initial.num_params() as u64,
            clients: prepared.clients.clone(),
            test_speakers: prepared.test_speakers.clone(),
            test_utterances: prepared.test.len(),
            emotion_counts: prepared.emotion_counts,
            example_audio: prepared.example_audio.clone(),
        },
    };
    Ok(run.write_file("run.json", serde_json::to_string_pretty(&info)?.as_bytes())?)
}

/// After each round: the global model file, the progress line, an early stop if asked.
pub(crate) struct Rounds {
    pub(crate) bar: indicatif::ProgressBar,
    pub(crate) quiet: bool,
    pub(crate) rounds: u32,
    pub(crate) clients: usize,
    pub(crate) spec: ModelSpec,
    pub(crate) model_path: PathBuf,
    pub(crate) meta: ModelMeta,
    pub(crate) stop_after: Option<u32>,
}

impl RoundHook for Rounds {
    fn after_round(
        &mut self,
        record: &RoundRecord,
        global: &ParamSet,
    ) -> Result<ControlFlow<()>, String> {
        let model = model_with(&self.spec, global).map_err(|e| e.to_string())?;
        fedser_client::model_file::save(&model, &self.model_path, &self.meta)
            .map_err(|e| e.to_string())?;
        self.bar.inc(1);
        if !self.quiet {
            let line = round_line(record, self.rounds, self.clients);
            self.bar.suspend(|| eprintln!("{line}"));
        }
        Ok(if self.stop_after == Some(record.round) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    }
}

/// The summary, the final metrics and the report of a run that has all its rounds.
pub(crate) fn finish(
    run: &RunDir,
    opts: &Options,
    no_test: bool,
    started: std::time::Instant,
) -> Result<ExitCode> {
    let records = run.read_metrics()?;
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
            if no_test {
                println!("\nfinal global model on the clients' pooled validation data:");
            } else {
                println!("\nfinal global model on held-out speakers:");
            }
            print_metrics(&m);
        }
    }
    if opts.report {
        let html = crate::report::write_report(run.path())?;
        if !opts.json {
            println!("report: {}", html.display());
        }
    }
    if !opts.json {
        println!(
            "run directory: {} ({:.1} s)",
            run.path().display(),
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
    if let Some(p) = r.stage_records.get("privacy") {
        line += &format!(
            "  eps {:.3}  clip {:.3}",
            p["epsilon"].as_f64().unwrap_or(f64::NAN),
            p["clip"].as_f64().unwrap_or(f64::NAN)
        );
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
