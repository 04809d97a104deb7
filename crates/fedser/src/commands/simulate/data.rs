//! Turning a corpus into federated clients: features, held-out test speakers (the server's
//! central evaluation set), normalisation, the partition into clients and each client's own
//! validation split. Each client's data is written to its own file in the run directory and
//! read back only while that client works, so the simulation's memory does not grow with the
//! number of clients.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedser_core::{Emotion, FeatureMatrix, ParamSet, ParamTensor};
use fedser_data::AudioSource;
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

/// The file holding client `id`'s data.
pub fn client_file(run_dir: &Path, id: usize) -> PathBuf {
    run_dir
        .join("clients")
        .join(format!("client-{id:05}.safetensors"))
}

pub fn prepare(
    cfg: &RunConfig,
    run_dir: &Path,
    cache: Option<&Path>,
    quiet: bool,
) -> Result<Prepared> {
    let mut data = dataset::load(&cfg.corpus_args(), &cfg.features, cache, quiet)?;
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
    let test_speakers: Vec<String> = dataset::by_speaker(&data.corpus, &test_idx)
        .iter()
        .map(|g| data.corpus.utterances[g[0]].speaker.clone())
        .collect();
    let example_audio = example_audio(&data.corpus, &test_idx, run_dir)?;
    let norm = dataset::normalise(&mut data, cfg.split.norm, &train_idx);

    let dir = run_dir.join("clients");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut infos = Vec::with_capacity(clients.len());
    for (id, client) in clients.iter().enumerate() {
        let (fit, val) = train_val_split(
            &data.corpus.utterances,
            &client.indices,
            cfg.split.val_fraction,
            cfg.seed ^ id as u64,
        );
        write_client(
            &client_file(run_dir, id),
            &dataset::examples(&data, &fit),
            &dataset::examples(&data, &val),
        )?;
        infos.push(ClientInfo {
            id,
            name: client.name.clone(),
            train: fit.len(),
            val: val.len(),
        });
    }
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

const LABELS_TRAIN: &str = "fedser.labels.train";
const LABELS_VAL: &str = "fedser.labels.val";

fn write_client(path: &Path, train: &[Example], val: &[Example]) -> Result<()> {
    let mut set = ParamSet::new();
    let mut meta = BTreeMap::new();
    for (part, examples, key) in [("train", train, LABELS_TRAIN), ("val", val, LABELS_VAL)] {
        for (i, e) in examples.iter().enumerate() {
            let m = &e.features;
            set.push(
                format!("{part}.{i:05}"),
                ParamTensor::new(vec![m.frames(), m.coeffs()], m.as_slice().to_vec())?,
            )?;
        }
        let labels: Vec<usize> = examples.iter().map(|e| e.label).collect();
        meta.insert(key.to_string(), serde_json::to_string(&labels)?);
    }
    set.save(path, &meta)
        .with_context(|| format!("cannot write client data {}", path.display()))
}

/// A client's (train, validation) examples, read from its file.
pub fn read_client(path: &Path) -> Result<(Vec<Example>, Vec<Example>), String> {
    let (set, meta) = ParamSet::load(path).map_err(|e| e.to_string())?;
    let mut parts = Vec::new();
    for (part, key) in [("train", LABELS_TRAIN), ("val", LABELS_VAL)] {
        let labels: Vec<usize> = serde_json::from_str(meta.get(key).map_or("[]", String::as_str))
            .map_err(|e| format!("{}: bad {key}: {e}", path.display()))?;
        let mut examples = Vec::with_capacity(labels.len());
        for (i, label) in labels.into_iter().enumerate() {
            let name = format!("{part}.{i:05}");
            let t = set
                .get(&name)
                .ok_or_else(|| format!("{}: missing {name}", path.display()))?;
            let (frames, coeffs) = match t.shape[..] {
                [f, c] => (f, c),
                _ => return Err(format!("{}: {name} is not a matrix", path.display())),
            };
            let features = FeatureMatrix::new(frames, coeffs, t.data.clone())
                .map_err(|e| format!("{}: {name}: {e}", path.display()))?;
            examples.push(Example { features, label });
        }
        parts.push(examples);
    }
    let val = parts.pop().unwrap_or_default();
    let train = parts.pop().unwrap_or_default();
    Ok((train, val))
}
