//! `fedser simulate`, `--resume`, `fedser report` and `fedser demo`, driven as a user would.

use std::path::Path;

use assert_cmd::Command;

fn fedser(cache: &Path) -> Command {
    let mut c = Command::cargo_bin("fedser").unwrap();
    // Keep the feature cache inside the test's folder.
    c.env("XDG_CACHE_HOME", cache);
    c
}

/// A small, quick federation: 8 synthetic speakers (2 held out), the DNN.
fn small_run<'a>(c: &'a mut Command, out: &Path) -> &'a mut Command {
    c.args(["simulate", "--out", out.to_str().unwrap()])
        .args(["--synthetic-speakers", "8", "--synthetic-per-emotion", "3"])
        .args(["--arch", "dnn", "--rounds", "4", "--local-epochs", "2"])
        .args(["--workers", "2", "--seed", "11"])
}

fn assert_stderr(stderr: &[u8], needle: &str) {
    let text = String::from_utf8_lossy(stderr);
    assert!(text.contains(needle), "{needle:?} not in: {text}");
}

fn rounds(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn simulate_writes_a_complete_run_directory_and_resume_gives_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    small_run(&mut fedser(tmp.path()), &straight)
        .args(["--strategy", "fedadam", "--client-dropout", "0.2"])
        .assert()
        .success();
    for f in [
        "config.toml",
        "run.json",
        "metrics.jsonl",
        "global.safetensors",
        "checkpoints/round-0004.safetensors",
        "clients/client-00000.safetensors",
        "report.html",
        "plots/curves.png",
        "plots/confusion.svg",
    ] {
        assert!(straight.join(f).is_file(), "{f} missing");
    }
    let records = rounds(&straight);
    assert_eq!(records.len(), 4);
    let last = &records[3];
    assert_eq!(last["round"], 4);
    assert_eq!(last["selected"], 6, "six training speakers are the clients");
    for key in ["accuracy", "ua", "macro_f1", "loss"] {
        assert!(last["central"][key].is_number(), "{key}: {last}");
    }
    assert!(last["bytes_up"].as_u64().unwrap() > 0);
    assert!(last["clients"].as_array().unwrap().len() >= 5);
    let config = std::fs::read_to_string(straight.join("config.toml")).unwrap();
    assert!(config.contains("strategy = \"fedadam\""), "{config}");

    // The same run, interrupted after round 2 and resumed, ends identically.
    let resumed = tmp.path().join("resumed");
    small_run(&mut fedser(tmp.path()), &resumed)
        .args(["--strategy", "fedadam", "--client-dropout", "0.2"])
        .args(["--stop-after", "2", "--no-report"])
        .assert()
        .success();
    assert_eq!(rounds(&resumed).len(), 2);
    // A torn newest checkpoint: resuming falls back to round 1 and runs round 2 again.
    std::fs::write(resumed.join("checkpoints/round-0002.safetensors"), b"torn").unwrap();
    fedser(tmp.path())
        .args(["simulate", "--resume", resumed.to_str().unwrap()])
        .assert()
        .success();
    let again = rounds(&resumed);
    assert_eq!(again.len(), 4);
    for (a, b) in again.iter().zip(&records) {
        assert_eq!(a["central"], b["central"], "round {}", a["round"]);
        assert_eq!(a["train_loss"], b["train_loss"], "round {}", a["round"]);
    }
    // Same tensors and metadata (the files' bytes may differ: safetensors writes metadata
    // in hash-map order).
    for f in ["checkpoints/round-0003.safetensors", "global.safetensors"] {
        let a = fedser_core::ParamSet::load(&resumed.join(f)).unwrap();
        let b = fedser_core::ParamSet::load(&straight.join(f)).unwrap();
        assert!(a == b, "{f} differs after resuming");
    }

    // The global model is a model file like any other.
    let out = fedser(tmp.path())
        .args(["evaluate", "--model", straight.to_str().unwrap()])
        .args([
            "--synthetic-speakers",
            "8",
            "--synthetic-per-emotion",
            "3",
            "--seed",
            "11",
        ])
        .arg("--json")
        .assert()
        .success();
    let m: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    // By default it scores the speakers the run held out: the run's own final figure.
    assert_eq!(m["ua"], records[3]["central"]["ua"]);
    assert_stderr(&out.get_output().stderr, "held out from training");
    let all = fedser(tmp.path())
        .args([
            "evaluate",
            "--model",
            straight.to_str().unwrap(),
            "--all-speakers",
        ])
        .args([
            "--synthetic-speakers",
            "8",
            "--synthetic-per-emotion",
            "3",
            "--seed",
            "11",
        ])
        .assert()
        .success();
    assert_stderr(&all.get_output().stderr, "not speaker-independent");

    // A run directory is not overwritten by accident.
    let stderr = small_run(&mut fedser(tmp.path()), &straight)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert_stderr(&stderr, "--resume");
}

#[test]
fn a_config_file_sets_the_run_and_bad_settings_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        "seed = 5\n[corpus]\nsynthetic_speakers = 6\nsynthetic_per_emotion = 2\n\
         [model]\narch = \"dnn\"\n[federation]\nrounds = 2\nstrategy = \"median\"\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    fedser(tmp.path())
        .args(["simulate", "--config", cfg.to_str().unwrap()])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--local-epochs",
            "1",
            "--max-frames",
            "64",
            "--no-report",
        ])
        .assert()
        .success();
    let resolved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(resolved.contains("strategy = \"median\""), "{resolved}");
    assert!(resolved.contains("max_frames = 64"), "{resolved}");
    assert!(resolved.contains("epochs = 1"), "{resolved}");
    assert_eq!(rounds(&out).len(), 2);

    for (flag, value, needle) in [
        ("--strategy", "fedsgd", "unknown strategy"),
        ("--partition", "by-mood", "partition"),
        ("--fraction", "0", "fraction"),
        ("--client-dropout", "1.5", "dropout"),
        ("--workers", "0", "workers must be at least 1"),
        ("--strategy", "multi-krum:1:0", "M >= 1"),
        ("--min-results", "0", "min_fit_results must be at least 1"),
        ("--max-frames", "2", "max_frames: 2"),
    ] {
        let stderr = fedser(tmp.path())
            .args([
                "simulate",
                "--out",
                tmp.path().join("bad").to_str().unwrap(),
            ])
            .args([flag, value])
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        assert_stderr(&stderr, needle);
    }
    // Krum cannot work with fewer clients than its assumptions need: said before training.
    let stderr = fedser(tmp.path())
        .args([
            "simulate",
            "--out",
            tmp.path().join("krum").to_str().unwrap(),
        ])
        .args(["--synthetic-speakers", "6", "--synthetic-per-emotion", "1"])
        .args(["--strategy", "krum:2"])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert_stderr(&stderr, "needs at least 7 updates");
    // Settings no round could satisfy are refused before training, not run as no-ops.
    for (flag, value, needle) in [
        ("--min-results", "9", "no round could ever update"),
        ("--strategy", "multi-krum:1:8", "keeps 8 updates"),
    ] {
        let stderr = fedser(tmp.path())
            .args([
                "simulate",
                "--out",
                tmp.path().join(value).to_str().unwrap(),
            ])
            .args(["--synthetic-speakers", "8", "--synthetic-per-emotion", "1"])
            .args([flag, value])
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        assert_stderr(&stderr, needle);
    }
    // --test-fraction 0 holds nobody out: every speaker is a client.
    let all = tmp.path().join("all");
    fedser(tmp.path())
        .args([
            "simulate",
            "--out",
            all.to_str().unwrap(),
            "--test-fraction",
            "0",
        ])
        .args(["--synthetic-speakers", "5", "--synthetic-per-emotion", "2"])
        .args([
            "--arch",
            "dnn",
            "--rounds",
            "1",
            "--local-epochs",
            "1",
            "--no-report",
        ])
        .assert()
        .success();
    assert_eq!(rounds(&all)[0]["selected"], 5);
    std::fs::write(&cfg, "[federation]\nround = 3\n").unwrap();
    let stderr = fedser(tmp.path())
        .args(["simulate", "--config", cfg.to_str().unwrap()])
        .args(["--out", tmp.path().join("bad").to_str().unwrap()])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert_stderr(&stderr, "run.toml");
}

#[test]
fn demo_runs_with_no_arguments_beyond_its_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let run = fedser(tmp.path())
        .args(["demo", "--out", out.to_str().unwrap(), "--rounds", "2"])
        .assert()
        .success();
    let stdout = String::from_utf8(run.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("report:"), "{stdout}");
    assert!(stdout.contains("UA"), "{stdout}");
    assert!(out.join("report.html").is_file());
    // Running it again never deletes anything: a user's own file in the folder survives,
    // the earlier run stays whole and the new demo is written beside it.
    std::fs::write(out.join("notes.txt"), "my notes").unwrap();
    let again = fedser(tmp.path())
        .args([
            "demo",
            "--out",
            out.to_str().unwrap(),
            "--rounds",
            "1",
            "-q",
        ])
        .assert()
        .success();
    assert_stderr(&again.get_output().stderr, "demo-2");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "my notes"
    );
    assert_eq!(rounds(&out).len(), 2);
    assert_eq!(rounds(&tmp.path().join("demo-2")).len(), 1);
}

/// Waits (bounded) until `dir`'s lock file names a process.
fn wait_for_lock(dir: &Path, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(dir.join(".fedser.lock")).unwrap_or_default();
        if text.contains("\"pid\"") {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the first run ended ({status}) before it was seen holding the lock");
        }
        assert!(std::time::Instant::now() < deadline, "no lock after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_run_directory_in_use_refuses_a_second_process_and_names_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("busy");
    // A run long enough to still be going while the others try (stopped by its PID below).
    let mut first = std::process::Command::new(assert_cmd::cargo::cargo_bin("fedser"))
        .env("XDG_CACHE_HOME", tmp.path())
        .args(["-q", "simulate", "--out", out.to_str().unwrap()])
        .args(["--synthetic-speakers", "8", "--synthetic-per-emotion", "3"])
        .args([
            "--arch",
            "dnn",
            "--rounds",
            "500",
            "--workers",
            "1",
            "--no-report",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lock(&out, &mut first);
    let pid = first.id();
    let second = small_run(&mut fedser(tmp.path()), &out).assert().failure();
    assert_stderr(
        &second.get_output().stderr,
        &format!("in use by another fedser process (pid {pid}"),
    );
    let resume = fedser(tmp.path())
        .args(["simulate", "--resume", out.to_str().unwrap()])
        .assert()
        .failure();
    assert_stderr(&resume.get_output().stderr, &format!("pid {pid}"));
    first.kill().unwrap();
    first.wait().unwrap();
    // Whatever the first run recorded (perhaps nothing yet) is one line per round, in order.
    let recorded: Vec<u64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["round"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(recorded, (1..=recorded.len() as u64).collect::<Vec<_>>());
}

#[test]
fn resume_refuses_changed_experiment_settings_and_records_allowed_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    small_run(&mut fedser(tmp.path()), &out)
        .args(["--stop-after", "1", "--no-report"])
        .assert()
        .success();
    let config = out.join("config.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    let run_json = std::fs::read_to_string(out.join("run.json")).unwrap();
    for (from, to, name) in [
        ("seed = 11", "seed = 12", "seed: 11 -> 12"),
        (
            "synthetic_speakers = 8",
            "synthetic_speakers = 9",
            "corpus.synthetic_speakers: 8 -> 9",
        ),
    ] {
        assert!(original.contains(from), "{original}");
        std::fs::write(&config, original.replace(from, to)).unwrap();
        let refused = fedser(tmp.path())
            .args(["simulate", "--resume", out.to_str().unwrap()])
            .assert()
            .failure();
        assert_stderr(&refused.get_output().stderr, name);
        assert_eq!(rounds(&out).len(), 1, "a refused resume ran a round");
        assert_eq!(
            std::fs::read_to_string(out.join("run.json")).unwrap(),
            run_json
        );
    }
    // More rounds may be asked for: the change is recorded in the run. The fingerprint of
    // a run started before the secure-aggregation settings existed lacks them: at their
    // defaults they change nothing, so the run resumes.
    std::fs::write(&config, &original).unwrap();
    let fp_path = out.join("fingerprint.json");
    let mut fp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fp_path).unwrap()).unwrap();
    let settings = fp["settings"].as_object_mut().unwrap();
    let before = settings.len();
    settings.retain(|k, _| !k.starts_with("privacy.secagg"));
    assert!(
        settings.len() < before,
        "the fingerprint lists every setting"
    );
    std::fs::write(&fp_path, serde_json::to_string(&fp).unwrap()).unwrap();
    fedser(tmp.path())
        .args([
            "simulate",
            "--resume",
            out.to_str().unwrap(),
            "--rounds",
            "3",
        ])
        .args(["--no-report"])
        .assert()
        .success();
    assert_eq!(rounds(&out).len(), 3);
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(events.contains("federation.rounds"), "{events}");
    assert!(events.contains("\"resume\""), "{events}");
}

#[test]
fn a_dp_run_records_its_privacy_every_round_and_resumes_on_the_same_epsilon_curve() {
    let tmp = tempfile::tempdir().unwrap();
    // Reproducible noise, so that two runs can be compared bit for bit.
    let dp = [
        "--dp",
        "central",
        "--clip",
        "0.5",
        "--noise-multiplier",
        "0.8",
        "--reproducible-noise",
    ];
    let straight = tmp.path().join("straight");
    small_run(&mut fedser(tmp.path()), &straight)
        .args(dp)
        .args(["--fraction", "0.5", "--no-report"])
        .assert()
        .success();
    let records = rounds(&straight);
    let mut last_eps = 0.0;
    for r in &records {
        let p = &r["privacy"];
        let eps = p["epsilon"].as_f64().unwrap();
        assert!(eps > last_eps, "epsilon grows every round: {p}");
        last_eps = eps;
        assert_eq!(p["clip"], 0.5);
        assert_eq!(p["sampled"], r["accepted"]);
        assert_eq!(p["accounting_holds"], true);
    }
    // Without --reproducible-noise the noise comes from a secret only the run directory holds.
    let secret_run = tmp.path().join("secret");
    small_run(&mut fedser(tmp.path()), &secret_run)
        .args(&dp[..6])
        .args(["--no-report", "--stop-after", "1"])
        .assert()
        .success();
    let secret = std::fs::read_to_string(secret_run.join("dp-noise.secret")).unwrap();
    let config = std::fs::read_to_string(secret_run.join("config.toml")).unwrap();
    assert!(
        !config.contains(secret.trim()),
        "the secret is not in config.toml"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(secret_run.join("dp-noise.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The accountant's figure for 4 rounds of Poisson rate 0.5 and z = 0.8, via the CLI.
    let out = fedser(tmp.path())
        .args([
            "privacy", "epsilon", "--q", "0.5", "--z", "0.8", "--rounds", "4",
        ])
        .args(["--delta", "1e-5", "--json"])
        .assert()
        .success();
    let cli: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(cli["epsilon"].as_f64().unwrap(), last_eps);
    // The report draws the epsilon curve and states the guarantee.
    fedser(tmp.path())
        .args(["report", straight.to_str().unwrap()])
        .assert()
        .success();
    assert!(straight.join("plots/privacy.svg").is_file());
    let page = std::fs::read_to_string(straight.join("report.html")).unwrap();
    assert!(page.contains("epsilon after round 4"), "privacy table");

    let resumed = tmp.path().join("resumed");
    small_run(&mut fedser(tmp.path()), &resumed)
        .args(dp)
        .args(["--fraction", "0.5", "--no-report", "--stop-after", "2"])
        .assert()
        .success();
    fedser(tmp.path())
        .args([
            "simulate",
            "--resume",
            resumed.to_str().unwrap(),
            "--no-report",
        ])
        .assert()
        .success();
    let again = rounds(&resumed);
    assert_eq!(again.len(), records.len());
    for (a, b) in again.iter().zip(&records) {
        assert_eq!(a["privacy"], b["privacy"], "round {}", a["round"]);
        assert_eq!(a["central"], b["central"], "round {}", a["round"]);
    }

    // Settings that would void the guarantee are refused before training, with the reason.
    for (extra, needle) in [
        (
            vec!["--strategy", "median", "--noise-multiplier", "1"],
            "reads individual updates",
        ),
        (vec!["--noise-multiplier=-1"], "noise multiplier"),
        (vec!["--delta", "1", "--noise-multiplier", "1"], "delta"),
        (
            vec!["--sampling", "poisson:1.5", "--noise-multiplier", "1"],
            "(0, 1]",
        ),
    ] {
        let mut c = fedser(tmp.path());
        c.args([
            "simulate",
            "--out",
            tmp.path().join("bad").to_str().unwrap(),
        ])
        .args(["--synthetic-speakers", "6", "--synthetic-per-emotion", "1"])
        .args(["--dp", "central"]);
        let stderr = c
            .args(&extra)
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        assert_stderr(&stderr, needle);
    }
    let unreachable = fedser(tmp.path())
        .args(["privacy", "noise", "--target-epsilon", "1e-9", "--q", "1"])
        .args(["--rounds", "1000", "--delta", "1e-5"])
        .assert()
        .failure();
    assert_stderr(&unreachable.get_output().stderr, "1000");
}

#[test]
fn attacks_measure_a_recorded_run_and_say_what_they_need() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    small_run(&mut fedser(tmp.path()), &out)
        .args(["--no-report", "--record-updates"])
        .assert()
        .success();
    assert!(out.join("attacker/round-0004.safetensors").is_file());
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert!(
        run_json["clients"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["gender"].is_string() && c["speakers"].as_array().unwrap().len() == 1),
        "{run_json}"
    );
    let gender = fedser(tmp.path())
        .args(["attack", out.to_str().unwrap(), "--kind", "gender"])
        .args(["--shadow-corpus", "synthetic", "--json"])
        .assert()
        .success();
    let g: serde_json::Value = serde_json::from_slice(&gender.get_output().stdout).unwrap();
    let u = g["uar"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&u), "{g}");
    assert_eq!(g["rounds"], 4);
    assert_eq!(g["clients"], 6);
    assert_eq!(g["shadow_speakers"], 2, "the two held-out speakers: {g}");
    assert!(out.join("attacks/gender.json").is_file());
    let member = fedser(tmp.path())
        .args(["attack", out.to_str().unwrap(), "--kind", "membership"])
        .args(["--shadow-corpus", "synthetic", "--json"])
        .assert()
        .success();
    let m: serde_json::Value = serde_json::from_slice(&member.get_output().stdout).unwrap();
    assert!((0.0..=1.0).contains(&m["auc"].as_f64().unwrap()), "{m}");
    assert_eq!(m["members"], 6);
    assert!(
        m["lira"]["auc"].is_number(),
        "offline LiRA with reference models: {m}"
    );
    // The report shows what the attacks found, with the gender attack's figure.
    fedser(tmp.path())
        .args(["report", out.to_str().unwrap()])
        .assert()
        .success();
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains("id=\"privacy\"") && page.contains("LiRA AUC"),
        "privacy section"
    );
    assert!(page.contains("no differential privacy"));
    assert!(out.join("plots/attack_gender.svg").is_file());

    // A run that did not record what the server saw cannot be attacked from updates.
    let plain = tmp.path().join("plain");
    small_run(&mut fedser(tmp.path()), &plain)
        .args(["--no-report", "--stop-after", "1"])
        .assert()
        .success();
    let refused = fedser(tmp.path())
        .args(["attack", plain.to_str().unwrap(), "--kind", "gender"])
        .args(["--shadow-corpus", "synthetic"])
        .assert()
        .failure();
    assert_stderr(&refused.get_output().stderr, "--record-updates");
}

#[test]
fn secure_aggregation_survives_dropouts_records_each_phase_and_hides_the_updates() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    small_run(&mut fedser(tmp.path()), &out)
        .args([
            "--no-report",
            "--secagg",
            "--client-dropout",
            "0.15",
            "--record-updates",
        ])
        .assert()
        .success();
    let rs = rounds(&out);
    assert_eq!(rs.len(), 4);
    let mut lost = 0;
    for r in &rs {
        let s = &r["secagg"];
        assert_eq!(s["participants"], 6, "{s}");
        let phases: Vec<u64> = s["clients_per_phase"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(phases.windows(2).all(|w| w[0] >= w[1]), "{s}");
        lost += 6 - phases[2];
        if r["aggregated"] == true {
            assert_eq!(r["accepted"].as_u64().unwrap(), phases[2], "{r}");
        }
        // Example counts are inside the masked sum, not in the record.
        assert!(
            r["clients"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["examples"] == 0)
        );
        assert!(s["bytes_per_client"][2].as_f64().unwrap() > 0.0);
    }
    assert!(lost > 0, "dropouts were drawn in some phase");
    assert!(rs.iter().any(|r| r["aggregated"] == true));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("secagg = true"), "{config}");
    // What the server saw (masked vectors) can be attacked, and tells nothing.
    assert!(out.join("attacker/round-0001.safetensors").is_file());
    fedser(tmp.path())
        .args(["attack", out.to_str().unwrap(), "--kind", "gender"])
        .args(["--shadow-corpus", "synthetic", "--json"])
        .assert()
        .success();

    // Rules that read individual updates, and broken thresholds, are refused up front.
    let median = small_run(&mut fedser(tmp.path()), &tmp.path().join("m"))
        .args(["--secagg", "--strategy", "median"])
        .assert()
        .failure();
    assert_stderr(&median.get_output().stderr, "reads individual updates");
    let low = small_run(&mut fedser(tmp.path()), &tmp.path().join("t"))
        .args(["--secagg", "--secagg-threshold", "2"])
        .assert()
        .failure();
    assert_stderr(&low.get_output().stderr, "more than half");
}

/// Makes identities `T/idN` for `ids`, in order, and enrols them in `T/enrolled.txt`.
fn enrol(t: &Path, ids: impl Iterator<Item = u64>) {
    let mut enrolled = String::new();
    for id in ids {
        let out = fedser(t)
            .args([
                "keygen",
                "--out",
                t.join(format!("id{id}")).to_str().unwrap(),
            ])
            .assert()
            .success();
        enrolled += &String::from_utf8_lossy(&out.get_output().stdout);
    }
    std::fs::write(t.join("enrolled.txt"), enrolled).unwrap();
}

/// Runs `fedser` with `args` in the background, output to files in `dir` named `name`.
fn spawn(cache: &Path, dir: &Path, name: &str, args: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("fedser"))
        .env("XDG_CACHE_HOME", cache)
        .args(args)
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .spawn()
        .unwrap()
}

/// Waits (bounded) for `child`; kills it by its PID and fails the test if it runs too long.
fn wait_bounded(mut child: std::process::Child, seconds: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("process {} ran past {seconds} s", child.id());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn server_and_client_processes_over_tls_reach_the_simulations_model() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let corpus = [
        "--synthetic-speakers",
        "6",
        "--synthetic-per-emotion",
        "2",
        "--seed",
        "11",
    ];
    let speakers = ["synth_001", "synth_002", "synth_004"];
    let run = [
        "--test-fraction",
        "0",
        "--arch",
        "dnn",
        "--rounds",
        "2",
        "--local-epochs",
        "1",
        "--speakers",
        "synth_001,synth_002,synth_004",
    ];
    fedser(t)
        .args(["-q", "simulate", "--out", &s(&t.join("sim")), "--no-report"])
        .args(corpus)
        .args(run)
        .assert()
        .success();
    let sim_info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("sim/run.json")).unwrap()).unwrap();
    fedser(t)
        .args(["tls-cert", "--out", &s(&t.join("tls"))])
        .assert()
        .success();
    // Enrol one identity per client, in the simulation's client order.
    let order: Vec<(u64, String)> = sim_info["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(order.len(), speakers.len());
    enrol(t, order.iter().map(|(id, _)| *id));

    federate(t, &corpus, &run, &order, &[], "srv", true);
    // Same seed, same split, same strategy: the same model, bit for bit.
    let a = fedser_core::ParamSet::load(&t.join("sim/global.safetensors"))
        .unwrap()
        .0;
    let b = fedser_core::ParamSet::load(&t.join("srv/global.safetensors"))
        .unwrap()
        .0;
    assert!(a == b, "the networked model differs from the simulation's");
    let net_rounds = rounds(&t.join("srv"));
    assert_eq!(net_rounds.len(), 2);
    assert_eq!(
        net_rounds[1]["federated"],
        rounds(&t.join("sim"))[1]["federated"]
    );
    assert!(
        net_rounds[1]["central"]["ua"].is_number(),
        "central evaluation on synth_000"
    );

    // Secure aggregation over the network: the server sees only masked vectors, and still
    // ends where the secure simulation does (masks cancel exactly; rounding is seeded).
    fedser(t)
        .args([
            "-q",
            "simulate",
            "--out",
            &s(&t.join("sim-sa")),
            "--no-report",
            "--secagg",
        ])
        .args(corpus)
        .args(run)
        .assert()
        .success();
    federate(t, &corpus, &run, &order, &["--secagg"], "srv-sa", false);
    let a = fedser_core::ParamSet::load(&t.join("sim-sa/global.safetensors"))
        .unwrap()
        .0;
    let b = fedser_core::ParamSet::load(&t.join("srv-sa/global.safetensors"))
        .unwrap()
        .0;
    assert!(
        a == b,
        "the secure networked model differs from the secure simulation's"
    );
    let secure = rounds(&t.join("srv-sa"));
    assert_eq!(
        secure[1]["secagg"]["clients_per_phase"],
        serde_json::json!([3, 3, 3, 3])
    );
}

/// One `fedser server` (run flags `run` + `extra`, writing `T/out`) and a `fedser client`
/// process per enrolled identity in `order`, each with its own speaker; waits (bounded) for
/// all to end successfully.
fn federate(
    t: &Path,
    corpus: &[&str],
    run: &[&str],
    order: &[(u64, String)],
    extra: &[&str],
    out: &str,
    check_stranger: bool,
) {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let mut server_args = vec![
        "-q".to_string(),
        "server".into(),
        "--out".into(),
        s(&t.join(out)),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        s(&t.join("tls/cert.pem")),
        "--tls-key".into(),
        s(&t.join("tls/key.pem")),
        "--enrolled".into(),
        s(&t.join("enrolled.txt")),
        "--client-wait".into(),
        "60".into(),
        "--no-report".into(),
    ];
    server_args.extend(corpus.iter().chain(run).chain(extra).map(|a| a.to_string()));
    // The server's own evaluation set: a speaker none of the clients holds.
    server_args.extend(["--test-speakers".into(), "synth_000".into()]);
    let args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let server = spawn(t, t, "server", &args);
    let port = server_port(&t.join("server.err"));
    let url = format!("https://127.0.0.1:{port}");
    // A key that is not enrolled is refused and says so.
    if check_stranger {
        fedser(t)
            .args(["keygen", "--out", &s(&t.join("stranger"))])
            .assert()
            .success();
        let stranger = fedser(t)
            .args([
                "client",
                "--server",
                &url,
                "--ca",
                &s(&t.join("tls/cert.pem")),
            ])
            .args([
                "--identity",
                &s(&t.join("stranger")),
                "--corpus",
                "synthetic",
            ])
            .args(corpus)
            .assert()
            .failure();
        assert_stderr(&stranger.get_output().stderr, "not enrolled");
    }
    let ca = s(&t.join("tls/cert.pem"));
    let clients: Vec<_> = order
        .iter()
        .map(|(id, speaker)| {
            let identity = s(&t.join(format!("id{id}")));
            let mut a = vec!["-q", "client", "--server", &url, "--ca", &ca];
            a.extend([
                "--identity",
                &identity,
                "--corpus",
                "synthetic",
                "--speakers",
                speaker,
            ]);
            a.extend(corpus);
            spawn(t, t, &format!("client{id}"), &a)
        })
        .collect();
    for c in clients {
        assert!(wait_bounded(c, 120).success());
    }
    let status = wait_bounded(server, 120);
    let err = std::fs::read_to_string(t.join("server.err")).unwrap();
    assert!(status.success(), "{err}");
}

/// The port of a server started with `--listen 127.0.0.1:0`, from its log (bounded wait).
fn server_port(log: &Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let err = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = err
            .split("listening on 127.0.0.1:")
            .last()
            .filter(|_| err.contains("listening on"))
        {
            return rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no listening line: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits (bounded) until `dir` has recorded at least `n` rounds.
fn wait_for_rounds(dir: &Path, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let done = std::fs::read_to_string(dir.join("metrics.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if done >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} rounds not reached"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_killed_client_is_dropped_and_a_restarted_server_loses_and_repeats_no_round() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let corpus = [
        "--synthetic-speakers",
        "3",
        "--synthetic-per-emotion",
        "2",
        "--seed",
        "3",
    ];
    fedser(t)
        .args(["tls-cert", "--out", &s(&t.join("tls"))])
        .assert()
        .success();
    enrol(t, 0..3);
    let run_dir = s(&t.join("srv"));
    let server_args = |listen: &str, resume: bool| -> Vec<String> {
        let mut a: Vec<String> = [
            "-q",
            "server",
            "--out",
            &run_dir,
            "--listen",
            listen,
            "--enrolled",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.push(s(&t.join("enrolled.txt")));
        a.extend(["--tls-cert".into(), s(&t.join("tls/cert.pem"))]);
        a.extend(["--tls-key".into(), s(&t.join("tls/key.pem"))]);
        a.extend(
            [
                "--round-deadline",
                "3",
                "--client-wait",
                "60",
                "--no-report",
            ]
            .map(String::from),
        );
        if resume {
            a.push("--resume".into());
        } else {
            a.extend(
                [
                    "--test-fraction",
                    "0",
                    "--arch",
                    "dnn",
                    "--rounds",
                    "6",
                    "--local-epochs",
                    "1",
                ]
                .map(String::from),
            );
        }
        a
    };
    let args = server_args("127.0.0.1:0", false);
    let first = spawn(
        t,
        t,
        "server1",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let port = server_port(&t.join("server1.err"));
    let url = format!("https://127.0.0.1:{port}");
    let ca = s(&t.join("tls/cert.pem"));
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let identity = s(&t.join(format!("id{i}")));
            let speaker = format!("synth_{i:03}");
            let mut a = vec!["-q", "client", "--server", &url, "--ca", &ca];
            a.extend([
                "--identity",
                &identity,
                "--corpus",
                "synthetic",
                "--speakers",
                &speaker,
            ]);
            a.extend(corpus);
            spawn(t, t, &format!("client{i}"), &a)
        })
        .collect();
    // Kill the server (no goodbye, no cleanup) after its second round.
    wait_for_rounds(&t.join("srv"), 2);
    let mut first = first;
    first.kill().unwrap();
    first.wait().unwrap();
    let view = fedser(t)
        .args(["status", &run_dir, "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&view.get_output().stdout).unwrap();
    assert_eq!(v["running"], false, "{v}");
    // Restart it on the same port; the clients find it again.
    let args = server_args(&format!("127.0.0.1:{port}"), true);
    let second = spawn(
        t,
        t,
        "server2",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    wait_for_rounds(&t.join("srv"), 4);
    let view = fedser(t)
        .args(["status", &run_dir, "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&view.get_output().stdout).unwrap();
    assert_eq!(v["running"], true, "{v}");
    assert!(
        v["holder"].as_str().unwrap().contains("fedser server"),
        "{v}"
    );
    // Kill a client mid-run (16 rounds remain: far more than the kill takes): its later tasks
    // are never taken, so it is recorded as dropped.
    let mut clients = clients;
    let mut gone = clients.pop().unwrap();
    gone.kill().unwrap();
    gone.wait().unwrap();
    let status = wait_bounded(second, 120);
    let err = std::fs::read_to_string(t.join("server2.err")).unwrap();
    assert!(status.success(), "{err}");
    for c in clients {
        assert!(wait_bounded(c, 60).success());
    }
    let recorded = rounds(&t.join("srv"));
    let numbers: Vec<u64> = recorded
        .iter()
        .map(|r| r["round"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        vec![1, 2, 3, 4, 5, 6],
        "no round lost or counted twice"
    );
    assert!(
        recorded[4..]
            .iter()
            .any(|r| r["dropped"].as_u64().unwrap() >= 1),
        "the killed client is recorded as dropped: {:?}",
        recorded.iter().map(|r| &r["dropped"]).collect::<Vec<_>>()
    );
    let events = std::fs::read_to_string(t.join("srv/events.jsonl")).unwrap();
    assert!(events.contains("\"resume\""), "{events}");
}
