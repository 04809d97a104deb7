//! The network deployment's commands: `keygen` (a client identity), `tls-cert` (a self-signed
//! server certificate for loopback experiments), `server` (the round loop of `simulate` over
//! enrolled clients connected by gRPC + TLS, writing the same run directory) and `client` (a
//! device training on its own recordings only).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fedser_client::dataset::{self as cdata, NormRecord};
use fedser_client::{Held, LocalData, ModelMeta, ParticipantSettings, SpeechClient};
use fedser_data::cache::FeatureCache;
use fedser_data::partition::train_val_split;
use fedser_fl::driver::{self, RoundHook};
use fedser_fl::run_dir::{Fingerprint, RunDir};
use fedser_fl::{ClientPipeline, FedStrategy, Server, Strategy};
use fedser_model::EmotionModel;
use fedser_model::model::train_device;
use fedser_net::client::{ClientOptions, Connection};
use fedser_net::identity::{Identity, Verifier};
use fedser_net::server::{NetServer, ServerOptions, ServerTls};
use fedser_privacy::{DpClientStage, SecAggParticipant};

use super::simulate::config::RunConfig;
use super::simulate::{self, Options, Rounds, Start};
use crate::cli::{ClientCmd, KeygenCmd, LoadCmd, Norm, ServerCmd, StatusCmd, TlsCertCmd};
use crate::progress;
use crate::report::{ClientInfo, RunInfo};

pub fn keygen(cmd: KeygenCmd) -> Result<ExitCode> {
    let id = Identity::generate()?;
    id.save(&cmd.out)?;
    println!("{}", id.public_hex());
    eprintln!(
        "identity written to {}; add the line above (also in {}) to the server's enrolled file",
        cmd.out.join(fedser_net::identity::KEY_FILE).display(),
        cmd.out.join(fedser_net::identity::PUB_FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn tls_cert(cmd: TlsCertCmd) -> Result<ExitCode> {
    let cert = rcgen::generate_simple_self_signed(cmd.names.clone())
        .context("cannot make a certificate for these names")?;
    std::fs::create_dir_all(&cmd.out)
        .with_context(|| format!("cannot create {}", cmd.out.display()))?;
    for (name, text) in [
        ("cert.pem", cert.cert.pem()),
        ("key.pem", cert.signing_key.serialize_pem()),
    ] {
        let path = cmd.out.join(name);
        if path.exists() {
            bail!(
                "{} exists; certificates are never overwritten",
                path.display()
            );
        }
        fedser_fl::run_dir::write_atomic(&path, text.as_bytes())?;
    }
    println!(
        "self-signed certificate for {} in {} (cert.pem is also the clients' --ca)",
        cmd.names.join(", "),
        cmd.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The server's round hook: the simulation's (model file, progress line), then `status.json`
/// for `fedser status`.
struct Status<'a> {
    inner: Rounds,
    net: &'a NetServer,
    run: &'a RunDir,
    enrolled: usize,
}

impl Status<'_> {
    fn write(&self, round: u32, ua: Option<f64>) -> Result<()> {
        let status = serde_json::json!({
            "round": round,
            "rounds": self.inner.rounds,
            "enrolled": self.enrolled,
            "connected": self.net.connected(),
            "listening": self.net.local_addr.to_string(),
            "last_ua": ua,
            "updated_unix": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        Ok(self.run.write_file(
            "status.json",
            serde_json::to_string_pretty(&status)?.as_bytes(),
        )?)
    }
}

impl RoundHook for Status<'_> {
    fn after_round(
        &mut self,
        record: &fedser_fl::RoundRecord,
        global: &fedser_core::ParamSet,
    ) -> std::result::Result<std::ops::ControlFlow<()>, String> {
        let flow = self.inner.after_round(record, global)?;
        let ua = record
            .central
            .as_ref()
            .or(record.federated.as_ref())
            .map(|e| e.ua);
        self.write(record.round, ua).map_err(|e| e.to_string())?;
        Ok(flow)
    }
}

/// `fedser status RUN_DIR`: a read-only view of a run, running or not.
pub fn status(cmd: StatusCmd) -> Result<ExitCode> {
    let dir = &cmd.run_dir;
    if !dir.join("config.toml").is_file() {
        bail!("{} is not a run directory (no config.toml)", dir.display());
    }
    let holder = RunDir::holder(dir)?;
    let rounds = fedser_fl::run_dir::read_metrics(&dir.join(fedser_fl::run_dir::METRICS))
        .map(|r| r.records)
        .unwrap_or_default();
    let planned = RunConfig::load(&dir.join("config.toml"))?.federation.rounds;
    let live: Option<serde_json::Value> = std::fs::read_to_string(dir.join("status.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let last = rounds.last();
    let ua = last.and_then(|r| r.central.as_ref().or(r.federated.as_ref()).map(|e| e.ua));
    let view = serde_json::json!({
        "running": holder.is_some(),
        "holder": holder,
        "rounds_done": last.map_or(0, |r| r.round),
        "rounds_planned": planned,
        "last_ua": ua,
        "epsilon": last.and_then(|r| r.stage_records.get("privacy")).map(|p| p["epsilon"].clone()),
        "connected": live.as_ref().map(|s| s["connected"].clone()),
        "enrolled": live.as_ref().map(|s| s["enrolled"].clone()),
    });
    if cmd.json {
        println!("{view}");
    } else {
        println!(
            "{}: {} ({}), round {} of {}{}{}",
            dir.display(),
            if view["running"] == true {
                "running"
            } else {
                "not running"
            },
            view["holder"].as_str().unwrap_or("no process holds it"),
            view["rounds_done"],
            planned,
            ua.map_or(String::new(), |u| format!(", last UA {u:.3}")),
            match (&view["connected"], &view["enrolled"]) {
                (serde_json::Value::Array(c), e) if !e.is_null() =>
                    format!(", {} of {e} clients connected at the last round", c.len()),
                _ => String::new(),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The server's own evaluation set: `--test-speakers` of `--corpus`, each speaker normalised
/// with their own statistics as a new device would be (none without `--test-speakers`).
fn central_test_set(
    cfg: &RunConfig,
    cache: Option<&std::path::Path>,
    quiet: bool,
) -> Result<Vec<fedser_model::Example>> {
    if cfg.split.test_speakers.is_empty() {
        return Ok(Vec::new());
    }
    let mut featured = super::dataset::load_speakers(
        &cfg.corpus_args(),
        &cfg.split.test_speakers,
        &cfg.features,
        cache
            .map(std::path::Path::to_path_buf)
            .or_else(simulate::data::default_cache)
            .as_deref(),
        quiet,
    )?;
    let all: Vec<usize> = (0..featured.features.len()).collect();
    let groups = cdata::by_speaker(&featured.corpus, &all);
    let record = match cfg.split.norm {
        Norm::None => NormRecord::None,
        _ => NormRecord::Speaker,
    };
    cdata::apply_record(&mut featured.features, &record, &groups);
    Ok(cdata::examples(&featured, &all))
}

/// What every client is told on hello.
fn participant_settings(cfg: &RunConfig) -> Result<ParticipantSettings> {
    if cfg.split.norm == Norm::Global {
        bail!(
            "--norm global needs statistics of every client's data, which no server of a real \
             federation has: use speaker (the default) or none"
        );
    }
    Ok(ParticipantSettings {
        spec: cfg.model_spec()?,
        front_end: cfg.features.clone(),
        norm: cfg.split.norm,
        val_fraction: cfg.split.val_fraction,
        weight_decay: cfg.local.weight_decay,
        optimizer: cfg.local.optimizer,
        class_weights: cfg.local.class_weights,
        seed: cfg.seed,
        dp: cfg.privacy.dp.is_some(),
        secagg: cfg.privacy.secagg,
        crema_labels: if cfg.corpus.crema_voice_labels {
            fedser_data::loaders::CremaLabels::Voice
        } else {
            fedser_data::loaders::CremaLabels::Acted
        },
        iemocap: fedser_data::loaders::IemocapOptions {
            merge_excited: !cfg.corpus.iemocap_keep_excited_apart,
            improvised_only: cfg.corpus.iemocap_improvised_only,
        },
        augment_chains: cfg.local.augment_chains,
        augment_kinds: cfg.local.augment_kinds.clone(),
    })
}

/// The server's configuration: the run directory's own on `--resume`, else defaults, then
/// `--config`, then flags.
fn server_config(cmd: &ServerCmd) -> Result<(RunConfig, Start)> {
    if cmd.resume {
        let mut cfg = RunConfig::load(&cmd.out.join("config.toml"))
            .with_context(|| format!("{} is not a resumable run directory", cmd.out.display()))?;
        if let Some(r) = cmd.run.rounds {
            cfg.federation.rounds = r;
        }
        cfg.validate()?;
        return Ok((cfg, Start::Resume));
    }
    let mut cfg = match &cmd.config {
        Some(path) => RunConfig::load(path)?,
        None => RunConfig::default(),
    };
    if cmd.run.name.is_none() && cfg.name == RunConfig::default().name {
        cfg.name = simulate::default_name(&cmd.out);
    }
    cfg.apply_flags(&cmd.run);
    cfg.absolutise_paths();
    cfg.validate()?;
    Ok((cfg, Start::Fresh))
}

/// A number of seconds from the command line, checked before it becomes a duration.
fn seconds(value: f64, flag: &str) -> Result<Duration> {
    if !(value.is_finite() && (0.0..=86_400.0 * 365.0).contains(&value)) {
        bail!("{flag} {value} must be a number of seconds between 0 and a year");
    }
    Ok(Duration::from_secs_f64(value))
}

pub fn server(cmd: ServerCmd, quiet: bool) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let round_deadline = seconds(cmd.round_deadline, "--round-deadline")?;
    let client_wait = seconds(cmd.client_wait, "--client-wait")?;
    let (cfg, start) = server_config(&cmd)?;
    let verifier = Verifier::from_file(&cmd.enrolled, Duration::from_secs(120))?;
    let clients = verifier.len();
    let run = open_server_run(&cmd, &cfg, start, clients)?;
    let settings = participant_settings(&cfg)?;

    let test = central_test_set(&cfg, cmd.cache.as_deref(), quiet)?;
    let spec = cfg.model_spec()?;
    let initial = EmotionModel::new(spec.clone(), cfg.seed, &train_device())?;
    let model_bytes = initial.params()?.num_bytes() as u64;
    let (mut server, first_round) =
        federation_server(&cmd, &cfg, start, &run, clients, &initial, test.len())?;
    let tls = server_tls(&cmd)?;
    let net = NetServer::start(
        cmd.listen,
        tls,
        verifier,
        ServerOptions {
            round_deadline: round_deadline.max(Duration::from_millis(100)),
            client_timeout: Duration::from_secs(60),
            poll: Duration::from_secs(5),
            max_result_bytes: 2 * model_bytes + (1 << 20),
            settings_json: serde_json::to_string(&settings)?,
        },
    )?;
    // Scripts and tests read the port from this line.
    eprintln!(
        "listening on {} ({clients} enrolled clients)",
        net.local_addr
    );
    let want = cmd.wait_clients.unwrap_or(clients).clamp(1, clients);
    let got = net.wait_for_clients(want, client_wait);
    if got < want {
        bail!(
            "only {got} of the {want} clients waited for connected within {} s",
            cmd.client_wait
        );
    }
    let rounds = cfg.federation.rounds;
    let hook = Rounds {
        bar: progress::bar(rounds as u64, "rounds", quiet),
        quiet,
        rounds,
        clients,
        spec: spec.clone(),
        model_path: cmd.out.join("global.safetensors"),
        meta: ModelMeta::new(
            cfg.features.clone(),
            match cfg.split.norm {
                Norm::None => NormRecord::None,
                _ => NormRecord::Speaker,
            },
            &cfg.local,
            cfg.split.test_speakers.clone(),
        )?,
        stop_after: None,
    };
    hook.bar.set_position((first_round - 1) as u64);
    let mut executor = net.executor();
    let mut status = Status {
        inner: hook,
        net: &net,
        run: &run,
        enrolled: clients,
    };
    status.write(first_round - 1, None)?;
    let mut central = |params: &fedser_core::ParamSet| -> Result<fedser_fl::EvalOutcome, String> {
        let model = fedser_client::model_with(&spec, params).map_err(|e| e.to_string())?;
        Ok(fedser_client::evaluate_examples(&model, &test))
    };
    let central_eval: Option<&mut fedser_fl::server::CentralEval<'_>> =
        (!test.is_empty()).then_some(&mut central);
    let ran = driver::drive(
        &run,
        &mut server,
        first_round..=rounds,
        &mut executor,
        central_eval,
        &mut status,
    )?;
    status.inner.bar.finish_and_clear();
    net.finish(Duration::from_secs(2));
    if let Some(reason) = &ran.refused {
        eprintln!("{reason}");
    }
    let opts = Options {
        cache: None,
        quiet,
        json: false,
        report: !cmd.no_report,
        stop_after: None,
    };
    simulate::finish(&run, &opts, test.is_empty(), started)
}

/// The server's run directory, locked: a fresh run refuses a folder that holds one, a resumed
/// run needs the folder and the same defining settings (its settings and its members, the
/// enrolled keys); the configuration is written into it.
fn open_server_run(
    cmd: &ServerCmd,
    cfg: &RunConfig,
    start: Start,
    clients: usize,
) -> Result<RunDir> {
    if start == Start::Resume && !cmd.out.is_dir() {
        bail!(
            "{} is not a run directory (no such folder)",
            cmd.out.display()
        );
    }
    let run = RunDir::lock(&cmd.out, "fedser server")?;
    if start == Start::Fresh && RunDir::has_run(&cmd.out) {
        bail!(
            "{} already holds a run; continue it with --resume or choose another --out",
            cmd.out.display()
        );
    }
    let mut defining = serde_json::to_value(cfg)?;
    defining["enrolled_clients"] = clients.into();
    simulate::check_fingerprint(&run, &Fingerprint::of(&defining), start)?;
    run.write_file("config.toml", cfg.to_toml()?.as_bytes())?;
    cfg.check_against_clients(clients)?;
    Ok(run)
}

/// The round logic of a deployed run ([`simulate::round_server`]), after writing `run.json`
/// for the report. Returns the server and the first round to run.
fn federation_server(
    cmd: &ServerCmd,
    cfg: &RunConfig,
    start: Start,
    run: &RunDir,
    clients: usize,
    initial: &EmotionModel,
    test_utterances: usize,
) -> Result<(Server<FedStrategy>, u32)> {
    let strategy = simulate::build_strategy(cfg, initial.statistic_names())?;
    let info = RunInfo {
        name: cfg.name.clone(),
        corpus: "(held by the clients)".into(),
        arch: cfg.model.arch.name().to_string(),
        strategy: strategy.describe(),
        rounds_planned: cfg.federation.rounds,
        parameters: initial.num_params() as u64,
        clients: (0..clients)
            .map(|id| ClientInfo {
                id,
                name: format!("client-{id}"),
                train: 0,
                val: 0,
                speakers: Vec::new(),
                gender: None,
            })
            .collect(),
        test_speakers: cfg.split.test_speakers.clone(),
        test_utterances,
        emotion_counts: [0; fedser_core::Emotion::COUNT],
        example_audio: None,
    };
    if start == Start::Fresh || !cmd.out.join("run.json").is_file() {
        run.write_file("run.json", serde_json::to_string_pretty(&info)?.as_bytes())?;
    }
    let (server_pipeline, _) = simulate::privacy_pipelines(cfg, clients, run)?;
    simulate::round_server(cfg, run, start, strategy, initial, clients, server_pipeline)
}

/// The server's TLS identity from `--tls-cert` / `--tls-key`, or plain text with
/// `--insecure` (loopback addresses only).
fn server_tls(cmd: &ServerCmd) -> Result<ServerTls> {
    Ok(if cmd.insecure {
        if !cmd.listen.ip().is_loopback() {
            bail!(
                "--insecure is for loopback experiments only; {} is not a loopback address",
                cmd.listen
            );
        }
        eprintln!(
            "WARNING: --insecure: updates and the model travel in plain text, for loopback \
             experiments only"
        );
        ServerTls::Insecure
    } else {
        let read = |p: &Option<std::path::PathBuf>, what: &str| -> Result<Vec<u8>> {
            let p = p
                .as_ref()
                .with_context(|| format!("--{what} is needed (or --insecure)"))?;
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
        };
        ServerTls::Pem {
            cert: read(&cmd.tls_cert, "tls-cert")?,
            key: read(&cmd.tls_key, "tls-key")?,
        }
    })
}

pub fn client(cmd: ClientCmd, quiet: bool) -> Result<ExitCode> {
    let identity = Identity::load(&cmd.identity)?;
    let mut corpus = fedser_data::loaders::load(
        cmd.corpus.corpus,
        cmd.corpus.data.as_deref(),
        &cmd.corpus.load_options(),
    )?;
    cdata::keep_speakers(&mut corpus, &cmd.speakers)?;
    let ca_pem = match (&cmd.ca, cmd.insecure) {
        (_, true) => None,
        (Some(p), false) => {
            Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)
        }
        (None, false) => bail!("--ca is needed (or --insecure)"),
    };
    if cmd.insecure {
        eprintln!("WARNING: --insecure: talking to the server in plain text (loopback only)");
    }
    let mut conn = Connection::open(
        ClientOptions {
            server: cmd.server.clone(),
            ca_pem,
            insecure: cmd.insecure,
            max_wait: seconds(cmd.max_wait, "--max-wait")?,
            examples: corpus.len() as u64,
            ..ClientOptions::default()
        },
        identity,
    )?;
    let settings: ParticipantSettings = serde_json::from_str(&conn.settings_json)
        .context("the server sent settings this client does not understand")?;
    let own = cmd.corpus.load_options();
    let run_options = settings.load_options(&own);
    if run_options != own {
        eprintln!(
            "the run labels recordings differently from this client's flags (CREMA-D {:?}, \
             IEMOCAP {:?}); reading the corpus the run's way",
            run_options.crema_labels, run_options.iemocap
        );
        corpus = fedser_data::loaders::load(
            cmd.corpus.corpus,
            cmd.corpus.data.as_deref(),
            &run_options,
        )?;
        cdata::keep_speakers(&mut corpus, &cmd.speakers)?;
    }
    let cache = cmd.cache.clone().or_else(simulate::data::default_cache);
    let cache = super::dataset::open_cache(cache.as_deref())?;
    let bar = progress::bar(corpus.len() as u64, "features", quiet);
    let mut featured =
        cdata::featurise(corpus, &settings.front_end, cache.as_ref(), &|| bar.inc(1))?;
    bar.finish_and_clear();
    let data = local_data(&mut featured, &settings, cache.as_ref(), conn.client_id)?;
    eprintln!(
        "client {}: {} training and {} validation recordings of {} speakers; waiting for tasks",
        conn.client_id,
        data.train.len(),
        data.val.len(),
        cdata::speakers(
            &featured.corpus,
            &(0..featured.features.len()).collect::<Vec<_>>()
        )
        .len()
    );
    let norm = match settings.norm {
        Norm::None => NormRecord::None,
        _ => NormRecord::Speaker,
    };
    let mut participant =
        SpeechClient::new(settings.spec.clone(), settings.train_config(), data, &norm);
    let mut pipeline = ClientPipeline::new();
    if settings.dp {
        pipeline = pipeline.with_stage(Box::new(DpClientStage));
    }
    if settings.secagg {
        conn = conn.with_secure(Box::new(SecAggParticipant));
    }
    let id = conn.client_id;
    let mut on_task = |kind: &str, round: u32| {
        if !quiet {
            let what = match kind {
                "fit" => "trained and sent its update",
                "secure" => "took a step of secure aggregation",
                _ => "evaluated the new model",
            };
            eprintln!("client {id}, round {round}: {what}");
        }
    };
    let served = conn.serve(&mut participant, &pipeline, &mut on_task)?;
    println!(
        "federation over: {} training tasks, {} evaluations, {} results refused",
        served.fits,
        served.evaluations,
        served.refused.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn load(cmd: LoadCmd) -> Result<ExitCode> {
    if cmd.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if let Some(path) = &cmd.write_enrolled {
        fedser_fl::run_dir::write_atomic(
            path,
            fedser_net::load::enrolled_keys(cmd.seed, cmd.clients).as_bytes(),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "wrote {} load-test keys to {} (derived from --seed {}: never enrol them in a real federation)",
            cmd.clients,
            path.display(),
            cmd.seed
        );
        return Ok(ExitCode::SUCCESS);
    }
    let server = cmd.server.clone().context("--server is needed")?;
    let ca_pem = match (&cmd.ca, cmd.insecure) {
        (_, true) => None,
        (Some(p), false) => {
            Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)
        }
        (None, false) => bail!("--ca is needed (or --insecure)"),
    };
    let options = ClientOptions {
        server,
        ca_pem,
        insecure: cmd.insecure,
        max_wait: seconds(cmd.max_wait, "--max-wait")?,
        ..ClientOptions::default()
    };
    let report = fedser_net::load::run(&options, cmd.clients, cmd.seed, cmd.examples);
    if cmd.json {
        println!(
            "{}",
            serde_json::json!({
                "clients": cmd.clients,
                "connected": report.connected,
                "failed": report.failed,
                "fits": report.fits,
                "evaluations": report.evaluations,
                "refused": report.refused,
                "seconds": report.seconds,
                "failures": report.failures.iter().map(|(i, e)| format!("client {i}: {e}")).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "{} of {} load clients served: {} training tasks, {} evaluations, {} results refused, {:.1} s",
            report.connected,
            cmd.clients,
            report.fits,
            report.evaluations,
            report.refused,
            report.seconds
        );
        for (i, e) in &report.failures {
            eprintln!("client {i}: {e}");
        }
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The device's recordings split as a simulated client of the same run splits them.
/// With `augment_chains`, the device also adds copies of its training recordings through
/// random recording chains, as a simulated client does.
fn local_data(
    f: &mut cdata::Featured,
    s: &ParticipantSettings,
    cache: Option<&FeatureCache>,
    id: u64,
) -> Result<LocalData> {
    let all: Vec<usize> = (0..f.features.len()).collect();
    let (mut fit, val) = train_val_split(&f.corpus.utterances, &all, s.val_fraction, s.seed ^ id);
    if s.augment_chains > 0 {
        let added = fedser_client::robustness::augment_with_chains(
            f,
            &fit,
            &s.front_end,
            cache,
            s.augment_chains,
            &s.augment_kinds,
            s.seed ^ id,
        )?;
        fit.extend(added);
    }
    let f = &*f;
    let held = |indices: &[usize]| -> Vec<Held> {
        indices
            .iter()
            .map(|&i| Held {
                example: cdata::examples(f, &[i]).remove(0),
                speaker: Some(f.corpus.utterances[i].speaker.clone()),
            })
            .collect()
    };
    Ok(LocalData {
        train: held(&fit),
        val: held(&val),
    })
}
