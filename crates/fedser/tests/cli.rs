//! The real binary, driven as a user would: `fedser synth`, `fedser mfcc`, `fedser features`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fedser() -> Command {
    Command::cargo_bin("fedser").unwrap()
}

fn synth(dir: &Path, name: &str, seconds: f64, rate: u32, seed: u64) -> PathBuf {
    let path = dir.join(name);
    fedser()
        .args([
            "synth",
            path.to_str().unwrap(),
            "--seconds",
            &seconds.to_string(),
        ])
        .args(["--rate", &rate.to_string(), "--seed", &seed.to_string()])
        .assert()
        .success();
    path
}

fn parse_csv(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn mfcc_of_a_synthesised_recording_has_the_paper_shape() {
    let dir = tempfile::tempdir().unwrap();
    let wav = synth(dir.path(), "s.wav", 3.0, 16000, 1);
    let out = fedser()
        .args(["mfcc", wav.to_str().unwrap()])
        .assert()
        .success();
    let rows = parse_csv(&String::from_utf8(out.get_output().stdout.clone()).unwrap());
    // 48000 samples, 320-sample frames and steps: exactly 150 frames of 13 coefficients.
    assert_eq!(rows.len(), 150);
    assert!(
        rows.iter()
            .all(|r| r.len() == 13 && r.iter().all(|v| v.is_finite()))
    );
}

#[test]
fn mfcc_cli_matches_python_speech_features_golden() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fedser-audio/tests/golden");
    let out = fedser()
        .args(["mfcc", golden.join("speech_16k.wav").to_str().unwrap()])
        .assert()
        .success();
    let got = parse_csv(&String::from_utf8(out.get_output().stdout.clone()).unwrap());
    let want =
        parse_csv(&std::fs::read_to_string(golden.join("speech_16k.psf_paper.csv")).unwrap());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
        assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{g} vs {w}");
    }
}

#[test]
fn npy_output_and_cleaning_flags() {
    let dir = tempfile::tempdir().unwrap();
    let wav = synth(dir.path(), "s.wav", 1.0, 22050, 2);
    let plain = dir.path().join("plain.npy");
    let cleaned = dir.path().join("clean.npy");
    fedser()
        .args([
            "mfcc",
            wav.to_str().unwrap(),
            "--style",
            "librosa",
            "--out",
            plain.to_str().unwrap(),
        ])
        .assert()
        .success();
    fedser()
        .args([
            "mfcc",
            wav.to_str().unwrap(),
            "--style",
            "librosa",
            "--out",
            cleaned.to_str().unwrap(),
        ])
        .args(["--resample", "16000", "--normalise", "--denoise"])
        .assert()
        .success();
    let a = std::fs::read(&plain).unwrap();
    let b = std::fs::read(&cleaned).unwrap();
    assert_eq!(&a[..6], b"\x93NUMPY");
    // librosa style at 22050 Hz: hop 441, centred frames: 1 + 22050 / 441 = 51 frames.
    assert!(String::from_utf8_lossy(&a[..128]).contains("'shape': (51, 13)"));
    // At 16 kHz: 1 + 16000 / 320 = 51 frames too, but different values.
    assert!(String::from_utf8_lossy(&b[..128]).contains("'shape': (51, 13)"));
    assert_ne!(a, b);
}

#[test]
fn bad_input_and_bad_settings_fail_with_a_named_cause() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"definitely not audio").unwrap();
    let out = fedser()
        .args(["mfcc", junk.to_str().unwrap()])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("junk.wav") && err.contains("not a recognised audio format"),
        "{err}"
    );
    // Said once: what, where, never repeated down the cause chain.
    assert_eq!(
        err.matches("not a recognised audio format").count(),
        1,
        "{err}"
    );
    let missing = dir.path().join("absent.safetensors");
    let out = fedser()
        .args(["evaluate", "--model", missing.to_str().unwrap()])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.matches("absent.safetensors").count(), 1, "{err}");
    let out = fedser()
        .args(["mfcc", missing.with_extension("wav").to_str().unwrap()])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let out = fedser()
        .args(["corpus", "--corpus", "ravdess"])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("needs --data DIR") && !err.contains(".:"),
        "{err}"
    );

    let wav = synth(dir.path(), "s.wav", 0.5, 16000, 3);
    let out = fedser()
        .args(["mfcc", wav.to_str().unwrap(), "--nfft", "3"])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("nfft 3"), "{err}");

    let out = fedser()
        .args(["mfcc", wav.to_str().unwrap(), "--numcep", "40"])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("numcep 40"), "{err}");

    // A model needs a few frames to pool over: said before any data is read.
    let out = fedser()
        .args(["train", "--max-frames", "2", "--out"])
        .arg(dir.path().join("m"))
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("max_frames: 2"), "{err}");
}

#[test]
fn features_extracts_a_folder_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("corpus");
    std::fs::create_dir_all(src.join("speaker_b")).unwrap();
    synth(&src, "a1.wav", 0.5, 16000, 1);
    synth(&src, "a2.wav", 0.7, 8000, 2);
    synth(&src.join("speaker_b"), "b1.wav", 0.3, 44100, 3);
    std::fs::write(
        src.join("speaker_b/broken.wav"),
        b"RIFF\x10\x00\x00\x00WAVEfmt ",
    )
    .unwrap();
    std::fs::write(src.join("notes.txt"), b"not audio, not scanned").unwrap();
    let out_dir = dir.path().join("features");
    let out = fedser()
        .args([
            "features",
            src.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--format",
            "csv",
        ])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("broken.wav"), "{err}");
    assert!(err.contains("3 of 4 recordings"), "{err}");
    // 0.5 s at 16 kHz = 25 frames; 0.7 s at 8 kHz = 35 frames; 0.3 s at 44.1 kHz = 15 frames.
    for (file, frames) in [("a1.csv", 25), ("a2.csv", 35), ("speaker_b/b1.csv", 15)] {
        let text = std::fs::read_to_string(out_dir.join(file)).unwrap();
        assert_eq!(parse_csv(&text).len(), frames, "{file}");
    }
    assert!(!out_dir.join("speaker_b/broken.csv").exists());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("features.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["files"], 4);
    assert_eq!(manifest["failed"], 1);
    assert_eq!(manifest["front_end"]["mfcc"]["numcep"], 13);
}

#[test]
fn features_on_an_empty_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = fedser()
        .args([
            "features",
            dir.path().to_str().unwrap(),
            "--out",
            "/tmp/unused-fedser-out",
        ])
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("no audio files"));
}

#[test]
fn corpus_summarises_draws_and_writes_the_synthetic_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let counts = dir.path().join("counts.svg");
    let wave = dir.path().join("wave.png");
    let out = fedser()
        .args([
            "corpus",
            "--corpus",
            "synthetic",
            "--synthetic-speakers",
            "4",
            "--synthetic-per-emotion",
            "2",
            "--json",
        ])
        .args([
            "--plot-counts",
            counts.to_str().unwrap(),
            "--plot-waveform",
            wave.to_str().unwrap(),
        ])
        .assert()
        .success();
    let json = stdout_json(&out);
    assert_eq!(json["total"], 40);
    assert_eq!(json["speakers"], 4);
    assert_eq!(json["skipped"], 0);
    assert_eq!(json["per_emotion"]["fear"], 8);
    // Each speaker's counts are labelled like the corpus's, in the class order.
    let first = &json["per_speaker"][0]["per_emotion"];
    assert_eq!(first["fear"], 2, "{first}");
    let order: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(order, ["neutral", "happy", "angry", "sad", "fear"]);
    let svg = std::fs::read_to_string(&counts).unwrap();
    assert!(svg.contains("<svg") && svg.contains("neutral") && svg.contains("fear"));
    assert_eq!(&std::fs::read(&wave).unwrap()[1..4], b"PNG");

    // Written out as WAVs plus a manifest, it loads back as the same corpus.
    let wavs = dir.path().join("wavs");
    fedser()
        .args([
            "corpus",
            "--synthetic-speakers",
            "4",
            "--synthetic-per-emotion",
            "2",
            "--quiet",
        ])
        .args(["--write-wavs", wavs.to_str().unwrap()])
        .assert()
        .success();
    let out = fedser()
        .args([
            "corpus",
            "--corpus",
            "manifest",
            "--data",
            wavs.to_str().unwrap(),
            "--json",
            "--extract",
        ])
        .assert()
        .success();
    let json = stdout_json(&out);
    assert_eq!(json["total"], 40);
    assert_eq!(json["speakers"], 4);
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("features of 40 utterances")
    );
}

#[test]
fn corpus_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = fedser()
        .args([
            "corpus",
            "--corpus",
            "ravdess",
            "--data",
            dir.path().to_str().unwrap(),
        ])
        .assert()
        .failure();
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("no usable ravdess recordings")
    );
    let out = fedser()
        .args(["corpus", "--corpus", "emodb"])
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("--data"));
    let out = fedser()
        .args(["corpus", "--corpus", "timit"])
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("unknown corpus"));
}

/// The `__metadata__` of a safetensors file (the JSON header after its 8-byte length).
fn safetensors_metadata(path: &Path) -> serde_json::Map<String, serde_json::Value> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header["__metadata__"].as_object().unwrap().clone()
}

/// What a successful command printed on standard output, as JSON.
fn stdout_json(run: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_slice(&run.get_output().stdout).unwrap()
}

#[test]
fn train_records_its_front_end_and_evaluate_computes_features_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let synth_args = ["--synthetic-speakers", "6", "--synthetic-per-emotion", "3"];
    let wav = synth(dir.path(), "s.wav", 2.0, 16000, 4);
    let mut front_ends = Vec::new();
    let mut probabilities = Vec::new();
    for (name, flags) in [
        ("classic", &["--front-end", "classic"][..]),
        (
            "cleaned",
            &["--front-end", "classic", "--denoise", "--trim"][..],
        ),
        ("robust", &[][..]),
        ("filled", &["--front-end", "wideband-fill"][..]),
    ] {
        let out = dir.path().join(name);
        let trained = fedser()
            .args([
                "train", "--arch", "dnn", "--epochs", "8", "--json", "--quiet",
            ])
            .args(["--test-speakers", "synth_005"])
            .args(flags)
            .args(synth_args)
            .args(["--out", out.to_str().unwrap()])
            .assert()
            .success();
        let train_metrics = stdout_json(&trained);
        let meta = safetensors_metadata(&out.join("model.safetensors"));
        let front: serde_json::Value =
            serde_json::from_str(meta["fedser.front_end"].as_str().unwrap()).unwrap();
        // evaluate reads the front end from the model file: same features, same figures.
        let evaluated = fedser()
            .args([
                "evaluate",
                "--model",
                out.to_str().unwrap(),
                "--json",
                "--quiet",
            ])
            .args(["--speakers", "synth_005"])
            .args(synth_args)
            .assert()
            .success();
        let eval_metrics = stdout_json(&evaluated);
        assert_eq!(eval_metrics, train_metrics, "{name}");
        let predicted = fedser()
            .args(["predict", "--model", out.to_str().unwrap(), "--json"])
            .arg(&wav)
            .assert()
            .success();
        let line = stdout_json(&predicted);
        probabilities.push(line["probabilities"].clone());
        front_ends.push(front);
    }
    // The classic front end neither denoises nor trims; the flags turn them on.
    assert_eq!(front_ends[0]["denoise"], false);
    assert_eq!(front_ends[0]["trim_silence"], false);
    assert_eq!(front_ends[0]["floor_db"], 0.0);
    assert_eq!(front_ends[1]["denoise"], true);
    assert_eq!(front_ends[1]["trim_silence"], true);
    assert_eq!(front_ends[0]["mfcc"], front_ends[1]["mfcc"]);
    // The default is the robust front end, and the model file says so.
    assert_eq!(front_ends[2]["denoise"], false);
    assert_eq!(front_ends[2]["trim_silence"], true);
    assert_eq!(front_ends[2]["remove_dc"], true);
    assert_eq!(front_ends[2]["floor_db"], -40.0);
    assert_eq!(front_ends[2]["trim_keep_seconds"], 0.0);
    assert_eq!(front_ends[2]["fill_margins"], false);
    assert_eq!(front_ends[2]["mfcc"]["highfreq"], 4000.0);
    // wideband-fill is the full-band front end with its margins filled, and says so.
    assert_eq!(front_ends[3]["fill_margins"], true);
    assert_eq!(front_ends[3]["floor_db"], -55.0);
    assert_eq!(front_ends[3]["trim_keep_seconds"], 0.5);
    assert_eq!(front_ends[3]["mfcc"], front_ends[0]["mfcc"]);
    // Same seed and data, so only the features the flags changed can make the models differ.
    assert_ne!(probabilities[0], probabilities[1]);
    assert_ne!(probabilities[0], probabilities[2]);
}

/// `--augment-chains N --augment-kinds K`: N extra copies of every training recording, through
/// chains of the named kinds only; unknown kinds and kinds without N are refused up front.
#[test]
fn train_augments_with_chosen_chain_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let synth_args = ["--synthetic-speakers", "5", "--synthetic-per-emotion", "2"];
    let train = |extra: &[&str]| {
        fedser()
            .args(["train", "--arch", "dnn", "--epochs", "1", "--quiet"])
            .args(["--test-speakers", "synth_004", "--val-fraction", "0"])
            .args(synth_args)
            .args(["--out", dir.path().join("m").to_str().unwrap()])
            .args(extra)
            .assert()
    };
    let training = |run: &assert_cmd::assert::Assert| -> usize {
        let err = String::from_utf8(run.get_output().stderr.clone()).unwrap();
        let words: Vec<&str> = err.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| w.starts_with("training"))
            .unwrap();
        words[at - 1].parse().unwrap()
    };
    let plain = training(&train(&[]).success());
    assert_eq!(
        plain,
        4 * 5 * 2,
        "four training speakers, ten utterances each"
    );
    let augmented =
        training(&train(&["--augment-chains", "1", "--augment-kinds", "rate,dc"]).success());
    assert_eq!(augmented, 2 * plain, "one copy of every training utterance");
    // The model file says how it was trained, augmentation included.
    let meta = safetensors_metadata(&dir.path().join("m").join("model.safetensors"));
    let recorded: serde_json::Value =
        serde_json::from_str(meta["fedser.train_config"].as_str().unwrap()).unwrap();
    assert_eq!(recorded["augment_chains"], 1, "{recorded}");
    assert_eq!(
        recorded["augment_kinds"],
        serde_json::json!(["rate", "dc"]),
        "{recorded}"
    );
    assert_eq!(recorded["epochs"], 1, "{recorded}");

    for (args, needle) in [
        (
            &["--augment-chains", "1", "--augment-kinds", "reverb"][..],
            "reverb",
        ),
        (&["--augment-kinds", "rate"][..], "--augment-chains N"),
    ] {
        let err = String::from_utf8(train(args).failure().get_output().stderr.clone()).unwrap();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn evaluate_perturb_prints_the_robustness_table_and_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let synth_args = ["--synthetic-speakers", "6", "--synthetic-per-emotion", "3"];
    fedser()
        .args(["train", "--arch", "dnn", "--epochs", "6", "--quiet"])
        .args(["--test-speakers", "synth_004,synth_005"])
        .args(synth_args)
        .args(["--out", out.to_str().unwrap()])
        .assert()
        .success();
    let evaluate = |extra: &[&str]| {
        fedser()
            .args(["evaluate", "--quiet", "--model", out.to_str().unwrap()])
            .args(synth_args)
            .args(extra)
            .assert()
    };
    let plain = stdout_json(&evaluate(&["--json"]).success());
    let list = [
        "gate",
        "gain:-20",
        "rate:8000",
        "mp3:64",
        "vorbis:64",
        "noise:white:10",
    ];
    let report = dir.path().join("robustness");
    let table = stdout_json(
        &evaluate(&[
            "--json",
            "--perturb",
            &list.join(","),
            "--report",
            report.to_str().unwrap(),
        ])
        .success(),
    );
    // Clean figures are those of a plain evaluation of the same speakers.
    assert_eq!(table["clean"], plain);
    let rows = table["perturbed"].as_array().unwrap();
    assert_eq!(rows.len(), list.len());
    let clean_ua = plain["ua"].as_f64().unwrap();
    for (row, name) in rows.iter().zip(list) {
        assert_eq!(row["perturbation"], name);
        let ua = row["ua"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ua), "{name}: {ua}");
        assert!(row["accuracy"].as_f64().is_some() && row["macro_f1"].as_f64().is_some());
        assert!((row["ua_drop"].as_f64().unwrap() - (clean_ua - ua)).abs() < 1e-12);
    }
    // White noise at 10 dB SNR lies well above the robust front end's floor and changes the
    // features, so some figure moves: the table is read from real perturbed audio, not copied
    // from the clean row.
    assert!(
        rows[5]["accuracy"] != plain["accuracy"] || rows[5]["macro_f1"] != plain["macro_f1"],
        "{}",
        rows[5]
    );
    for name in ["robustness.json", "robustness.png", "robustness.svg"] {
        let f = report.join(name);
        assert!(std::fs::metadata(&f).unwrap().len() > 200, "{name}");
    }
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("robustness.json")).unwrap()).unwrap();
    assert_eq!(saved, table);
    // The text table names every row.
    let text = evaluate(&["--perturb", "gate,pad:2"]).success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).to_string();
    for name in ["clean", "gate", "pad:2"] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
    }
    // A misspelt perturbation is refused by name, before any work.
    let failed = evaluate(&["--perturb", "gate,reverb:3"]).failure();
    let err = String::from_utf8_lossy(&failed.get_output().stderr).to_string();
    assert!(err.contains("reverb:3"), "{err}");
}

#[test]
fn train_evaluate_predict_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let synth_args = ["--synthetic-speakers", "6", "--synthetic-per-emotion", "4"];
    let trained = fedser()
        .args([
            "train",
            "--arch",
            "dnn",
            "--epochs",
            "6",
            "--test-speakers",
            "synth_004,synth_005",
            "--json",
            "--quiet",
        ])
        .args(synth_args)
        .args(["--out", out.to_str().unwrap()])
        .assert()
        .success();
    let train_metrics = stdout_json(&trained);
    for key in [
        "accuracy",
        "ua",
        "macro_f1",
        "weighted_f1",
        "per_class",
        "confusion",
    ] {
        assert!(train_metrics.get(key).is_some(), "missing {key}");
    }
    assert!(out.join("model.safetensors").is_file() && out.join("metrics.json").is_file());

    // evaluate on the same held-out speakers reproduces the training run's test figures.
    let evaluated = fedser()
        .args([
            "evaluate",
            "--model",
            out.to_str().unwrap(),
            "--speakers",
            "synth_004,synth_005",
            "--json",
            "--quiet",
        ])
        .args(synth_args)
        .assert()
        .success();
    let eval_metrics = stdout_json(&evaluated);
    assert_eq!(eval_metrics["ua"], train_metrics["ua"]);
    assert_eq!(eval_metrics["confusion"], train_metrics["confusion"]);

    // predict gives one emotion and a probability distribution per file.
    let wav = synth(dir.path(), "s.wav", 2.0, 16000, 4);
    let predicted = fedser()
        .args([
            "predict",
            "--model",
            out.join("model.safetensors").to_str().unwrap(),
            "--json",
        ])
        .arg(&wav)
        .assert()
        .success();
    let line = stdout_json(&predicted);
    let total: f64 = line["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-4);
    assert!(line["emotion"].as_str().is_some());

    // Several recordings of one speaker share their statistics: the probabilities change.
    let other = synth(dir.path(), "t.wav", 1.0, 16000, 9);
    let probabilities = |same_speaker: bool| -> Vec<serde_json::Value> {
        let mut c = fedser();
        c.args(["predict", "--model", out.to_str().unwrap(), "--json"]);
        if same_speaker {
            c.arg("--same-speaker");
        }
        let o = c.arg(&wav).arg(&other).assert().success();
        String::from_utf8(o.get_output().stdout.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["probabilities"].clone())
            .collect()
    };
    let (alone, pooled) = (probabilities(false), probabilities(true));
    assert_eq!((alone.len(), pooled.len()), (2, 2));
    assert_ne!(alone, pooled);

    // Bad model paths and files fail with the path named.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    let failed = fedser()
        .args(["predict", "--model", junk.to_str().unwrap()])
        .arg(&wav)
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&failed.get_output().stderr).contains("junk.safetensors"));
    let failed = fedser()
        .args(["evaluate", "--model", dir.path().to_str().unwrap()])
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&failed.get_output().stderr).contains("no model.safetensors"));
}

#[test]
fn bench_train_times_a_step_and_an_aggregation_per_model() {
    let out = fedser()
        .args([
            "bench", "train", "--archs", "dnn,cnn", "--reps", "1", "--frames", "20",
        ])
        .args(["--batch", "4", "--json"])
        .assert()
        .success();
    let v = stdout_json(&out);
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for m in models {
        assert!(m["train_step_ms_median"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["fedavg10_ms_median"].as_f64().unwrap() >= 0.0, "{m}");
        assert!(m["params"].as_u64().unwrap() > 100, "{m}");
    }
    fedser()
        .args(["bench", "train", "--reps", "0"])
        .assert()
        .failure();
}
