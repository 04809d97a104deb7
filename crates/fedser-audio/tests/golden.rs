//! Golden tests: fedser's MFCCs against python_speech_features 0.6 and librosa 0.11 outputs
//! computed by `tools/golden/generate.py` on the same WAV files (committed under
//! `tests/golden/`). Tolerance: |a − b| ≤ tol × max(1, |b|) with tol 1e-4 (psf) and 1e-3
//! (librosa, which computes in float32).

use std::path::{Path, PathBuf};

use fedser_audio::mfcc::{FrameGeometry, Mfcc, MfccConfig, WindowKind};
use fedser_audio::{Audio, decode_file};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(golden_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn read_csv(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|v| v.trim().parse().unwrap()).collect())
        .collect()
}

fn load(signal: &str) -> Audio {
    decode_file(&golden_dir().join(format!("{signal}.wav"))).unwrap()
}

/// The fedser configuration that mirrors one golden config, as the generator describes it.
fn extractor(config: &str, params: &serde_json::Value, rate: u32) -> Mfcc {
    let u = |k: &str| params[k].as_u64().unwrap() as usize;
    match config {
        "psf_paper" | "psf_hamming" | "psf_default" => {
            let cfg = MfccConfig {
                winlen: params["winlen"].as_f64().unwrap(),
                winstep: params["winstep"].as_f64().unwrap(),
                numcep: u("numcep"),
                nfilt: Some(u("nfilt")),
                nfft: Some(u("nfft")),
                window: Some(
                    params["window"]
                        .as_str()
                        .unwrap()
                        .parse::<WindowKind>()
                        .unwrap(),
                ),
                ..MfccConfig::psf()
            };
            Mfcc::new(&cfg, rate).unwrap()
        }
        "librosa_paper" | "librosa_default" => {
            let cfg = MfccConfig {
                nfilt: Some(u("n_mels")),
                ..MfccConfig::librosa()
            };
            let geometry = FrameGeometry {
                win: u("win"),
                step: u("hop"),
                nfft: u("nfft"),
            };
            Mfcc::with_geometry(&cfg, rate, geometry).unwrap()
        }
        other => panic!("unknown golden config {other}"),
    }
}

fn compare(signal: &str, config: &str, got: &[f32], frames: usize, want: &[Vec<f64>], tol: f64) {
    assert_eq!(frames, want.len(), "{signal}/{config}: frame count");
    let cols = want[0].len();
    let mut worst = (0.0f64, 0, 0);
    for (f, row) in want.iter().enumerate() {
        for (c, &w) in row.iter().enumerate() {
            let err = (got[f * cols + c] as f64 - w).abs() / w.abs().max(1.0);
            if err > worst.0 {
                worst = (err, f, c);
            }
        }
    }
    let (err, f, c) = worst;
    assert!(
        err <= tol,
        "{signal}/{config}: frame {f} coeff {c}: fedser {} vs reference {} (relative error {err:.2e} > {tol:.0e})",
        got[f * cols + c],
        want[f][c]
    );
}

fn check_all(prefix: &str, tol: f64) {
    let manifest = manifest();
    let signals = manifest["signals"].as_object().unwrap();
    let mut checked = 0;
    for (signal, entry) in signals {
        let audio = load(signal);
        assert_eq!(
            audio.sample_rate as u64,
            entry["sample_rate"].as_u64().unwrap()
        );
        assert_eq!(
            audio.samples.len() as u64,
            entry["samples"].as_u64().unwrap()
        );
        for (config, params) in entry["configs"].as_object().unwrap() {
            if !config.starts_with(prefix) {
                continue;
            }
            let mut mfcc = extractor(config, params, audio.sample_rate);
            let got = mfcc.compute(&audio.samples).unwrap();
            let want = read_csv(&golden_dir().join(format!("{signal}.{config}.csv")));
            compare(signal, config, got.as_slice(), got.frames(), &want, tol);
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} golden matrices checked");
}

#[test]
fn psf_style_matches_python_speech_features() {
    check_all("psf_", 1e-4);
}

#[test]
fn librosa_style_matches_librosa() {
    check_all("librosa_", 1e-3);
}

#[test]
fn raw_int16_scale_moves_only_c0_by_2_ln_32768() {
    let audio = load("speech_16k");
    let mut mfcc = Mfcc::new(&MfccConfig::psf(), 16000).unwrap();
    let unit = mfcc.compute(&audio.samples).unwrap();
    let raw: Vec<f32> = audio.samples.iter().map(|s| s * 32768.0).collect();
    let raw = mfcc.compute(&raw).unwrap();
    let shift = 2.0 * 32768f64.ln();
    for (a, b) in unit.rows().zip(raw.rows()) {
        assert!((b[0] as f64 - a[0] as f64 - shift).abs() < 1e-3);
        for c in 1..13 {
            assert!((a[c] - b[c]).abs() < 1e-3 * a[c].abs().max(1.0));
        }
    }
}

#[test]
fn paper_defaults_are_the_default_config() {
    let cfg = MfccConfig::default();
    let mfcc = Mfcc::new(&cfg, 16000).unwrap();
    let g = mfcc.geometry();
    assert_eq!((g.win, g.step, g.nfft), (320, 320, 512));
    assert_eq!(mfcc.filterbank().len(), 26);
    assert_eq!(cfg.numcep, 13);
}
