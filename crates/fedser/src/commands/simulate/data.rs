//! Turning a corpus into federated clients: features, held-out test speakers (the server's
//! central evaluation set), the partition into clients and each client's own validation
//! split. Each client's data is written, as extracted, to its own file in the run directory;
//! the client reads it only while it works and normalises it itself (fedser-client), so the
//! simulation's memory does not grow with the number of clients and no statistic crosses
//! devices.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedser_client::dataset::record_for;
use fedser_client::{Held, LocalData, store};
use fedser_core::Emotion;
use fedser_data::AudioSource;
use fedser_data::cache::FeatureCache;
use fedser_data::partition::{TestSpeakers, partition, speaker_split, train_val_split};
use fedser_model::Example;

use super::config::RunConfig;
use crate::commands::dataset::{self, NormRecord};
use crate::report::{ClientInfo, ExampleAudio};

/// What the simulation needs besides the clients' files.
pub struct Prepared {
    pub corpus_name: String,
    pub clients: Vec<ClientInfo>,
    /// The held-out speakers' examples (central evaluation).
    pub test: Vec<Example>,
    pub test_speakers: Vec<String>,
    /// Utterances per emotion in the whole corpus (class order).
    pub emotion_counts: [usize; Emotion::COUNT],
    pub norm: NormRecord,
    pub example_audio: Option<ExampleAudio>,
}

/// The default feature cache: `$XDG_CACHE_HOME/fedser/features` or `~/.cache/fedser/features`.
pub fn default_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("fedser").join("features"))
}

/// The corpus with its features, as the configuration describes it.
pub fn load(cfg: &RunConfig, cache: Option<&Path>, quiet: bool) -> Result<dataset::Featured> {
    dataset::load_speakers(
        &cfg.corpus_args(),
        &cfg.corpus.speakers,
        &cfg.features,
        cache,
        quiet,
    )
}

/// Splits off the test speakers, partitions the rest into clients and writes each client's
/// file into the run directory.
pub fn prepare(
    cfg: &RunConfig,
    mut data: dataset::Featured,
    run_dir: &Path,
    cache: Option<&FeatureCache>,
) -> Result<Prepared> {
    let utts = &data.corpus.utterances;
    let test = if cfg.split.test_speakers.is_empty() {
        TestSpeakers::Fraction(cfg.split.test_fraction)
    } else {
        TestSpeakers::Named(cfg.split.test_speakers.clone())
    };
    let (train_idx, test_idx) = speaker_split(utts, &test, cfg.seed)?;
    if train_idx.is_empty() {
        bail!("no training speakers are left after holding out the test speakers");
    }
    let clients = partition(utts, &train_idx, cfg.partition()?, cfg.seed)?;
    let mut emotion_counts = [0usize; Emotion::COUNT];
    for u in utts {
        emotion_counts[u.emotion.index()] += 1;
    }
    let test_speakers = dataset::speakers(&data.corpus, &test_idx);
    let example_audio = example_audio(&data.corpus, &test_idx, run_dir)?;
    // Global statistics (a comparison mode) come from the training speakers; per-speaker
    // statistics are computed by each client from what it holds.
    let norm = record_for(&data, cfg.split.norm, &train_idx);

    let dir = run_dir.join("clients");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut infos = Vec::with_capacity(clients.len());
    for (id, client) in clients.iter().enumerate() {
        let (mut fit, val) = train_val_split(
            &data.corpus.utterances,
            &client.indices,
            cfg.split.val_fraction,
            cfg.seed ^ id as u64,
        );
        if cfg.local.augment_chains > 0 {
            // On the device: copies of its own training recordings through other chains.
            let added = fedser_client::robustness::augment_with_chains(
                &mut data,
                &fit,
                &cfg.features,
                cache,
                cfg.local.augment_chains,
                &cfg.local.augment_kinds,
                cfg.seed ^ id as u64,
            )?;
            fit.extend(added);
        }
        let held = |indices: &[usize]| -> Vec<Held> {
            indices
                .iter()
                .map(|&i| Held {
                    example: dataset::examples(&data, &[i]).remove(0),
                    speaker: Some(data.corpus.utterances[i].speaker.clone()),
                })
                .collect()
        };
        store::write(
            &store::client_file(run_dir, id),
            &LocalData {
                train: held(&fit),
                val: held(&val),
            },
        )?;
        let utts = &data.corpus.utterances;
        let speakers = dataset::speakers(&data.corpus, &client.indices);
        let first = client.indices.first().and_then(|&i| utts[i].gender);
        let gender = first.filter(|g| client.indices.iter().all(|&i| utts[i].gender == Some(*g)));
        infos.push(ClientInfo {
            id,
            name: client.name.clone(),
            train: fit.len(),
            val: val.len(),
            speakers,
            gender,
        });
    }
    // The held-out speakers are new speakers: each normalised with their own statistics.
    let groups = dataset::by_speaker(&data.corpus, &test_idx);
    dataset::apply_record(&mut data.features, &norm, &groups);
    Ok(Prepared {
        corpus_name: data.corpus.name.clone(),
        clients: infos,
        test: dataset::examples(&data, &test_idx),
        test_speakers,
        emotion_counts,
        norm,
        example_audio,
    })
}

/// One recording to draw in the report: a synthetic one is written into the run directory;
/// a real one is referred to where it lies (recordings are never copied).
fn example_audio(
    corpus: &fedser_data::Corpus,
    test_idx: &[usize],
    run_dir: &Path,
) -> Result<Option<ExampleAudio>> {
    let Some(u) = test_idx.first().map(|&i| &corpus.utterances[i]) else {
        return Ok(None);
    };
    let path = match &u.source {
        AudioSource::File(p) => std::path::absolute(p).unwrap_or_else(|_| p.clone()),
        AudioSource::Synthetic(_) => {
            let (samples, rate) = crate::commands::corpus::audio(&u.source)?;
            std::fs::create_dir_all(run_dir)?;
            crate::commands::corpus::write_pcm16(&run_dir.join("example.wav"), &samples, rate)?;
            PathBuf::from("example.wav")
        }
    };
    Ok(Some(ExampleAudio {
        path,
        utterance: u.id.clone(),
    }))
}
