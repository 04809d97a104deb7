//! `fedser bench mfcc DIR`: decode + MFCC throughput, in audio seconds per CPU second, the
//! figure `../shared/peers/mfcc_bench.py` prints for python_speech_features, librosa and
//! torchaudio. Same work as its `psf` pipeline: every file at its own rate, 20 ms / 20 ms,
//! 13 coefficients, NFFT 512 (grown to the next power of two when a frame is longer).
//!
//! `fedser bench train`: one training step per model, and FedAvg, on the peer's shapes.
//! `fedser bench secagg`: one round of secure aggregation in process, against a plain round.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fedser_audio::{FrontEnd, FrontEndConfig, MfccConfig, MfccStyle};
use rayon::prelude::*;

use crate::cputime::process_cpu_time;

fn front_end(style: MfccStyle) -> FrontEndConfig {
    FrontEndConfig::plain(match style {
        MfccStyle::Psf => MfccConfig::psf(),
        MfccStyle::Librosa => MfccConfig::librosa(),
    })
}

/// The psf peer grows NFFT to the next power of two ≥ the frame; so do we, per file rate.
fn extractor_for(style: MfccStyle, rate: u32) -> Result<FrontEnd> {
    let mut cfg = front_end(style);
    let win = (0.02 * rate as f64).round() as usize;
    cfg.mfcc.nfft = Some(win.max(512).next_power_of_two());
    Ok(FrontEnd::new(cfg)?)
}

fn one_file(cache: &mut Vec<(u32, FrontEnd)>, style: MfccStyle, path: &Path) -> Result<usize> {
    let audio = fedser_audio::decode_file(path)?;
    let rate = audio.sample_rate;
    let front = match cache.iter().position(|(r, _)| *r == rate) {
        Some(i) => &mut cache[i].1,
        None => {
            cache.push((rate, extractor_for(style, rate)?));
            &mut cache.last_mut().expect("just pushed").1
        }
    };
    Ok(front.mfcc(&audio)?.frames())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn mfcc(
    dir: &Path,
    runs: usize,
    parallel: bool,
    style: MfccStyle,
    json: bool,
) -> Result<ExitCode> {
    let files: Vec<PathBuf> = super::audio_files(dir)?;
    if files.is_empty() {
        bail!("no audio files under {}", dir.display());
    }
    let runs = runs.max(1);
    let audio_seconds: f64 = files
        .iter()
        .map(|f| fedser_audio::decode_file(f).map(|a| a.seconds()))
        .sum::<Result<f64, _>>()
        .context("cannot decode every file")?;

    // One thread: one warm-up pass, then `runs` timed passes. The passes run on a worker
    // thread like `fedser features` uses (the main thread's allocator returns freed pages to
    // the OS and refaults them per file, which would understate fedser's speed).
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("cannot start a worker thread")?;
    let (mut cpu, mut wall, frames) = single.install(|| -> Result<_> {
        let mut cache = Vec::new();
        let (mut cpu, mut wall, mut frames) = (Vec::new(), Vec::new(), 0);
        for pass in 0..=runs {
            let (c0, w0) = (process_cpu_time(), Instant::now());
            frames = 0;
            for f in &files {
                frames += one_file(&mut cache, style, f)?;
            }
            if pass > 0 {
                cpu.push((process_cpu_time() - c0).as_secs_f64());
                wall.push(w0.elapsed().as_secs_f64());
            }
        }
        Ok((cpu, wall, frames))
    })?;
    let per_cpu: Vec<f64> = cpu.iter().map(|c| audio_seconds / c).collect();
    let single_cpu = median(&mut cpu);
    let single_wall = median(&mut wall);

    let mut all_cores = None;
    if parallel {
        let threads = rayon::current_num_threads();
        let mut walls = Vec::new();
        for pass in 0..=runs {
            let w0 = Instant::now();
            files
                .par_iter()
                .map_init(Vec::new, |cache, f| one_file(cache, style, f))
                .collect::<Result<Vec<_>>>()?;
            if pass > 0 {
                walls.push(w0.elapsed().as_secs_f64());
            }
        }
        let w = median(&mut walls);
        all_cores = Some((threads, w));
    }

    if json {
        let mut obj = serde_json::json!({
            "files": files.len(),
            "audio_seconds": audio_seconds,
            "frames": frames,
            "style": format!("{style:?}").to_lowercase(),
            "runs": runs,
            "single_thread": {
                "cpu_median_s": single_cpu,
                "wall_median_s": single_wall,
                "audio_s_per_cpu_s": audio_seconds / single_cpu,
                "per_run_audio_s_per_cpu_s": per_cpu,
            },
        });
        if let Some((threads, w)) = all_cores {
            obj["all_cores"] = serde_json::json!({
                "threads": threads,
                "wall_median_s": w,
                "audio_s_per_wall_s": audio_seconds / w,
                "speedup_vs_one_thread": single_wall / w,
            });
        }
        println!("{obj}");
    } else {
        println!(
            "{} files, {:.1} s of audio, {} frames; decode + {style:?} MFCC",
            files.len(),
            audio_seconds,
            frames
        );
        println!(
            "one thread: {:.0} audio-s per CPU-s (median of {runs}; {:.3} s CPU per pass)",
            audio_seconds / single_cpu,
            single_cpu
        );
        if let Some((threads, w)) = all_cores {
            println!(
                "{threads} threads: {:.0} audio-s per wall-s, {:.2}x the one-thread wall time",
                audio_seconds / w,
                single_wall / w
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One training step per model, timed `reps` times after two warm-up steps (median; epochs of
/// one batch in one training run), on random features of the peer's shapes; and FedAvg of 10 updates of each model through `fedser-fl`.
pub fn train(
    archs: &[fedser_model::Arch],
    batch: usize,
    frames: usize,
    reps: usize,
    peer_lstm: bool,
    json: bool,
) -> Result<ExitCode> {
    use fedser_core::FeatureMatrix;
    use fedser_model::model::train_device;
    use fedser_model::{EmotionModel, Example, ModelSpec, Optimizer, TrainConfig};
    use rand::{RngExt, SeedableRng};

    if batch == 0 || frames == 0 || reps == 0 {
        bail!("batch, frames and reps must be at least 1");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let examples: Vec<Example> = (0..batch)
        .map(|i| Example {
            features: FeatureMatrix::new(
                frames,
                13,
                (0..frames * 13)
                    .map(|_| rng.random::<f32>() * 2.0 - 1.0)
                    .collect(),
            )
            .expect("sizes match"),
            label: i % fedser_core::Emotion::COUNT,
        })
        .collect();
    let mut rows = Vec::new();
    for &arch in archs {
        let mut spec = ModelSpec::new(arch);
        if peer_lstm
            && matches!(
                arch,
                fedser_model::Arch::Lstm | fedser_model::Arch::LstmTransformer
            )
        {
            spec.bidirectional = false;
            spec.hidden = 128;
        }
        let model = EmotionModel::new(spec.clone(), 1, &train_device())?;
        // One epoch over exactly one batch is one optimiser step (plus batching, which the
        // peer does outside its timed step; it is small next to the step). The epochs run in
        // one training call, as in real local training: the optimiser's state persists, like
        // the peer's, and each step is timed from one epoch's end to the next.
        let cfg = TrainConfig {
            epochs: reps + 3,
            batch_size: batch,
            optimizer: Optimizer::Adam,
            weight_decay: 0.0,
            random_crop: false,
            ..TrainConfig::default()
        };
        let mut ends = Vec::with_capacity(reps + 3);
        let (model, _) =
            fedser_model::train::train_observed(model, &examples, &[], &cfg, None, &mut |_| {
                ends.push(Instant::now())
            })?;
        // Two warm-up steps.
        let mut times: Vec<f64> = ends
            .windows(2)
            .skip(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect();
        let step_ms = median(&mut times);
        let params = model.params()?;
        let updates: Vec<fedser_fl::Update> = (0..10)
            .map(|i| fedser_fl::Update {
                client: i,
                delta: params.clone(),
                examples: i + 1,
                loss: 0.0,
                seconds: 0.0,
                stages: Default::default(),
            })
            .collect();
        let mut strategy = fedser_fl::FedStrategy::new(
            fedser_fl::StrategySpec::fedavg(),
            fedser_fl::Sampling::default(),
            fedser_fl::strategy::LocalTraining::default(),
            1,
        );
        let mut agg = Vec::with_capacity(reps);
        for _ in 0..reps {
            let started = Instant::now();
            let _ = fedser_fl::Strategy::aggregate_fit(
                &mut strategy,
                1,
                &params,
                &updates,
                &mut fedser_fl::ServerPipeline::new(),
            )?;
            agg.push(started.elapsed().as_secs_f64() * 1e3);
        }
        rows.push(serde_json::json!({
            "arch": arch.name(),
            "params": model.num_params(),
            "train_step_ms_median": step_ms,
            "utterances_per_second": batch as f64 / (step_ms / 1e3),
            "fedavg10_ms_median": median(&mut agg),
            "spec": spec,
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"batch": batch, "frames": frames, "threads": 1, "models": rows})
        );
    } else {
        println!("one thread, batch {batch}, {frames} frames x 13 MFCCs, Adam");
        println!(
            "{:18} {:>9} {:>12} {:>10} {:>14}",
            "model", "params", "step ms", "utt/s", "FedAvg(10) ms"
        );
        for r in &rows {
            println!(
                "{:18} {:>9} {:>12.2} {:>10.0} {:>14.3}",
                r["arch"].as_str().unwrap_or(""),
                r["params"],
                r["train_step_ms_median"].as_f64().unwrap_or(f64::NAN),
                r["utterances_per_second"].as_f64().unwrap_or(f64::NAN),
                r["fedavg10_ms_median"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `fedser bench secagg`: one round per size and graph, every message handed over in process.
pub fn secagg(
    sizes: &[usize],
    neighbours: Option<usize>,
    dim: Option<usize>,
    dropout: f64,
    full_graph_max: usize,
    json: bool,
) -> Result<ExitCode> {
    use fedser_model::model::train_device;
    use fedser_model::{EmotionModel, ModelSpec};
    use fedser_privacy::secagg::SecAggConfig;
    use fedser_privacy::secagg::local::{Dropouts, run_local};
    if !(0.0..0.3).contains(&dropout) {
        bail!("--dropout {dropout} must be in [0, 0.3): the default threshold tolerates less");
    }
    let dim = match dim {
        Some(d) => d,
        None => EmotionModel::new(ModelSpec::new(fedser_model::Arch::Dnn), 1, &train_device())?
            .params()?
            .num_values(),
    };
    let mut rows = Vec::new();
    for &n in sizes {
        if n < 3 {
            bail!("--clients {n}: a round needs at least 3 clients");
        }
        let log = (n as f64).log2().ceil() as usize;
        let k = neighbours.unwrap_or((2 * log).max(2));
        let graphs: Vec<(String, usize)> = [
            (format!("SecAgg+ (K = {k})"), k),
            ("full graph".to_string(), n - 1),
        ]
        .into_iter()
        .filter(|(_, kk)| *kk < n - 1 || n <= full_graph_max)
        .collect();
        for (name, kk) in graphs {
            let cfg = SecAggConfig::new(1, (0..n as u64).collect(), kk, 7, 32, dim + 1);
            let inputs = (0..n as u64)
                .map(|c| (c, (0..dim as u32 + 1).map(|i| i ^ c as u32).collect()))
                .collect();
            let drops = Dropouts {
                after_input: (0..(dropout * n as f64) as u64)
                    .map(|i| i * 3 % n as u64)
                    .collect(),
                ..Dropouts::default()
            };
            let t = Instant::now();
            let round = run_local(&cfg, &inputs, &drops, |c| {
                let mut e = [1u8; 32];
                e[..8].copy_from_slice(&c.to_le_bytes());
                e
            })?;
            let wall = t.elapsed().as_secs_f64();
            // The model still travels down in the clear; the protocol replaces the upload.
            let bytes: f64 = round.cost.bytes_per_client.iter().sum::<f64>() + (4 * dim) as f64;
            rows.push(serde_json::json!({
                "clients": n, "graph": name, "neighbours": cfg.group_size() - 1,
                "threshold": cfg.threshold, "dim": dim,
                "client_seconds": round.cost.client_seconds,
                "server_seconds": round.cost.server_seconds,
                "bytes_per_client": bytes,
                "plain_bytes_per_client": 8 * dim,
                "bytes_ratio": bytes / (8 * dim) as f64,
                "wall_seconds": wall,
                "survivors": round.unmasked.survivors.len(),
            }));
        }
    }
    if json {
        println!("{}", serde_json::json!({ "rounds": rows }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "update of {dim} values; dropout after masked input {dropout}; one thread; bytes/client: \
         the model down plus every protocol message (plain round: model down, update up)"
    );
    println!("| clients | graph | threshold | client s | server s | bytes/client | vs plain |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.4} | {:.3} | {:.0} | {:.2}x |",
            r["clients"],
            r["graph"].as_str().unwrap_or(""),
            r["threshold"],
            r["client_seconds"].as_f64().unwrap_or(0.0),
            r["server_seconds"].as_f64().unwrap_or(0.0),
            r["bytes_per_client"].as_f64().unwrap_or(0.0),
            r["bytes_ratio"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(ExitCode::SUCCESS)
}
