//! `fedser corpus`: what a corpus holds, its two figures, its features, its WAVs.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fedser_audio::FrontEndConfig;
use fedser_core::Emotion;
use fedser_data::cache::extract_corpus;
use fedser_data::synthetic;
use fedser_data::{AudioSource, Corpus, loaders};

use crate::cli::CorpusCmd;
use crate::{plots, progress};

pub fn run(cmd: CorpusCmd, quiet: bool) -> Result<ExitCode> {
    let started = Instant::now();
    let corpus = loaders::load(
        cmd.corpus.corpus,
        cmd.corpus.data.as_deref(),
        &cmd.corpus.load_options(),
    )?;
    let load_seconds = started.elapsed().as_secs_f64();
    if cmd.json {
        println!("{}", serde_json::to_string(&summary_json(&corpus))?);
    } else {
        print_table(&corpus);
        if !quiet {
            eprintln!("loaded in {load_seconds:.2} s");
        }
    }
    if let Some(path) = &cmd.plot_counts {
        let title = format!("{}: utterances per emotion", corpus.name);
        plots::emotion_counts(path, &title, &corpus.per_emotion())?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &cmd.plot_waveform {
        let u = match &cmd.utterance {
            Some(id) => corpus
                .utterances
                .iter()
                .find(|u| &u.id == id)
                .with_context(|| format!("no utterance {id:?} in the corpus"))?,
            None => &corpus.utterances[0],
        };
        let (samples, rate) = audio(&u.source)?;
        let title = format!("{} ({}, {})", u.id, u.emotion, u.speaker);
        plots::waveform(path, &title, &samples, rate)?;
        eprintln!("wrote {}", path.display());
    }
    let mut code = ExitCode::SUCCESS;
    if cmd.extract {
        code = extract(&corpus, cmd.cache.as_deref(), quiet, cmd.json)?;
    }
    if let Some(dir) = &cmd.write_wavs {
        write_wavs(&corpus, dir, quiet)?;
    }
    Ok(code)
}

pub(crate) fn audio(source: &AudioSource) -> Result<(Vec<f32>, u32)> {
    Ok(match source {
        AudioSource::File(path) => {
            let a = fedser_audio::decode_file(path)?;
            (a.samples, a.sample_rate)
        }
        AudioSource::Synthetic(s) => (synthetic::render(s), s.sample_rate),
    })
}

/// Counts per emotion as an object keyed by class name, in the conventions' class order.
fn labelled(counts: &[usize]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = Emotion::ALL
        .iter()
        .zip(counts)
        .map(|(e, n)| (e.name().to_string(), (*n).into()))
        .collect();
    serde_json::Value::Object(map)
}

fn summary_json(c: &Corpus) -> serde_json::Value {
    let per_emotion = labelled(&c.per_emotion());
    let speakers: Vec<serde_json::Value> = c
        .speakers()
        .iter()
        .map(|s| {
            serde_json::json!({
                "speaker": s.speaker,
                "gender": s.gender.map(|g| g.name()),
                "per_emotion": labelled(&s.per_emotion),
            })
        })
        .collect();
    serde_json::json!({
        "corpus": c.name,
        "total": c.len(),
        "per_emotion": per_emotion,
        "speakers": speakers.len(),
        "skipped": c.skipped_total(),
        "skipped_by_reason": c.skipped,
        "per_speaker": speakers,
    })
}

fn print_table(c: &Corpus) {
    let out = std::io::stdout();
    let mut w = out.lock();
    let header: String = Emotion::ALL
        .iter()
        .map(|e| format!("{:>8}", e.name()))
        .collect();
    let _ = writeln!(w, "{:<20} {:<7}{header}{:>8}", "speaker", "sex", "total");
    for s in c.speakers() {
        let cells: String = s.per_emotion.iter().map(|n| format!("{n:>8}")).collect();
        let sex = s.gender.map_or("?", |g| g.name());
        let total: usize = s.per_emotion.iter().sum();
        let _ = writeln!(w, "{:<20} {:<7}{cells}{total:>8}", s.speaker, sex);
    }
    let cells: String = c.per_emotion().iter().map(|n| format!("{n:>8}")).collect();
    let _ = writeln!(w, "{:<20} {:<7}{cells}{:>8}", "all", "", c.len());
    let by_sex = |g| c.utterances.iter().filter(|u| u.gender == Some(g)).count();
    let _ = writeln!(
        w,
        "{} utterances from {} speakers ({} by men, {} by women); {} skipped",
        c.len(),
        c.speakers().len(),
        by_sex(fedser_data::Gender::Male),
        by_sex(fedser_data::Gender::Female),
        c.skipped_total()
    );
    for (reason, n) in &c.skipped {
        let _ = writeln!(w, "  skipped {n:>6}  {reason}");
    }
}

fn extract(corpus: &Corpus, cache: Option<&Path>, quiet: bool, json: bool) -> Result<ExitCode> {
    let cache = super::dataset::open_cache(cache)?;
    let cfg = FrontEndConfig::default();
    let bar = progress::bar(corpus.len() as u64, "features", quiet);
    let started = Instant::now();
    let results = extract_corpus(corpus, &cfg, cache.as_ref(), &|| bar.inc(1))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let frames: usize = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|m| m.frames())
        .sum();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    for f in &failed {
        eprintln!("failed: {f}");
    }
    let line = format!(
        "features of {} utterances ({} frames, {:.1} s of audio) in {seconds:.2} s on {} threads; {} failed",
        results.len() - failed.len(),
        frames,
        frames as f64 * cfg.mfcc.winstep,
        rayon::current_num_threads(),
        failed.len()
    );
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes mono 16-bit PCM.
pub fn write_pcm16(path: &Path, samples: &[f32], rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .with_context(|| format!("cannot create {}", path.display()))?;
    for &s in samples {
        w.write_sample((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)?;
    }
    w.finalize()
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_wavs(corpus: &Corpus, dir: &Path, quiet: bool) -> Result<()> {
    if corpus.name != "synthetic" {
        bail!(
            "--write-wavs writes the synthetic corpus; {} is already on disk",
            corpus.name
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bar = progress::bar(corpus.len() as u64, "writing", quiet);
    let mut manifest = String::from("path,label,speaker,gender\n");
    for u in &corpus.utterances {
        let (samples, rate) = audio(&u.source)?;
        let relative = format!("{}/{}.wav", u.speaker, u.id);
        let path = dir.join(&relative);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        write_pcm16(&path, &samples, rate)?;
        let gender = u.gender.map_or("", |g| g.name());
        manifest.push_str(&format!(
            "{relative},{},{},{gender}\n",
            u.emotion, u.speaker
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    std::fs::write(dir.join("manifest.csv"), manifest)?;
    eprintln!(
        "wrote {} recordings and manifest.csv to {}",
        corpus.len(),
        dir.display()
    );
    Ok(())
}
