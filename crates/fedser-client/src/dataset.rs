//! A corpus as labelled feature matrices, and feature normalisation: the modes, how a
//! centralised dataset is normalised, and what a model file records so that evaluation and
//! prediction normalise the same way. A federated client normalises its own data
//! ([`crate::participant::LocalData::normalise`]); nothing here runs across devices.

use std::collections::BTreeMap;

use fedser_audio::FrontEndConfig;
use fedser_core::FeatureMatrix;
use fedser_data::Corpus;
use fedser_data::cache::{FeatureCache, extract_corpus};
use fedser_data::features::{Normaliser, normalise_groups};
use fedser_model::Example;
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// How features are z-scored before the model sees them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Each speaker with their own statistics (nothing global leaves a device).
    #[default]
    Speaker,
    /// Statistics of the whole training set (centralised baselines).
    Global,
    /// No normalisation.
    None,
}

impl Norm {
    pub const NAMES: [&'static str; 3] = ["speaker", "global", "none"];
}

impl std::str::FromStr for Norm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "speaker" => Ok(Self::Speaker),
            "global" => Ok(Self::Global),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown normalisation {other:?} (speaker, global or none)"
            )),
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Speaker => "speaker",
            Self::Global => "global",
            Self::None => "none",
        })
    }
}

/// What a model file records about normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NormRecord {
    /// Each speaker z-scored with their own statistics.
    Speaker,
    /// One set of statistics, from the training data.
    Global {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
    None,
}

/// A loaded corpus with one feature matrix per usable utterance.
pub struct Featured {
    pub corpus: Corpus,
    pub features: Vec<FeatureMatrix>,
}

/// Extracts (or reads cached) features of every utterance with `front`; `on_done` is called
/// once per utterance (progress). Utterances that fail or have no frames are logged and
/// dropped from the corpus; an error only when none is left.
pub fn featurise(
    mut corpus: Corpus,
    front: &FrontEndConfig,
    cache: Option<&FeatureCache>,
    on_done: &(dyn Fn() + Sync),
) -> Result<Featured, ClientError> {
    let results = extract_corpus(&corpus, front, cache, on_done)?;
    let mut features = Vec::with_capacity(results.len());
    let mut kept = Vec::with_capacity(results.len());
    let mut width = None;
    for (u, r) in corpus.utterances.drain(..).zip(results) {
        match r {
            Ok(m) if m.frames() > 0 => {
                match width {
                    Some(w) if w != m.coeffs() => return Err(ClientError::Widths(w, m.coeffs())),
                    _ => width = Some(m.coeffs()),
                }
                features.push(m);
                kept.push(u);
            }
            Ok(_) => tracing::warn!("skipped {}: no frames", u.id),
            Err(e) => tracing::warn!("skipped {e}"),
        }
    }
    corpus.utterances = kept;
    if corpus.is_empty() {
        return Err(ClientError::NoFeatures);
    }
    Ok(Featured { corpus, features })
}

/// Keeps only `speakers`' utterances (all when the list is empty); a name the corpus does not
/// know is an error, so a typo never silently trains on nobody.
pub fn keep_speakers(corpus: &mut Corpus, speakers: &[String]) -> Result<(), ClientError> {
    if speakers.is_empty() {
        return Ok(());
    }
    if let Some(s) = speakers
        .iter()
        .find(|s| !corpus.utterances.iter().any(|u| &u.speaker == *s))
    {
        return Err(ClientError::UnknownSpeaker {
            speaker: s.clone(),
            corpus: corpus.name.clone(),
        });
    }
    corpus.utterances.retain(|u| speakers.contains(&u.speaker));
    Ok(())
}

/// Indices of each speaker's utterances among `indices`, speakers in sorted order.
pub fn by_speaker(corpus: &Corpus, indices: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in indices {
        groups
            .entry(corpus.utterances[i].speaker.as_str())
            .or_default()
            .push(i);
    }
    groups.into_values().collect()
}

/// The speakers of `indices`, sorted, each once.
pub fn speakers(corpus: &Corpus, indices: &[usize]) -> Vec<String> {
    by_speaker(corpus, indices)
        .iter()
        .map(|g| corpus.utterances[g[0]].speaker.clone())
        .collect()
}

/// The record of `norm` for a model trained on `train` (global statistics are fitted there).
pub fn record_for(f: &Featured, norm: Norm, train: &[usize]) -> NormRecord {
    match norm {
        Norm::Speaker => NormRecord::Speaker,
        Norm::Global => match Normaliser::fit(train.iter().map(|&i| &f.features[i])) {
            Some(n) => NormRecord::Global {
                mean: n.mean,
                std: n.std,
            },
            None => NormRecord::None,
        },
        Norm::None => NormRecord::None,
    }
}

/// Centralised normalisation: every utterance per speaker with that speaker's statistics,
/// or all with the training set's statistics. Returns what a model file records.
pub fn normalise(f: &mut Featured, norm: Norm, train: &[usize]) -> NormRecord {
    let record = record_for(f, norm, train);
    let all: Vec<usize> = (0..f.features.len()).collect();
    let groups = by_speaker(&f.corpus, &all);
    apply_record(&mut f.features, &record, &groups);
    record
}

/// Applies a recorded normalisation to features of whole speakers (`groups`).
pub fn apply_record(features: &mut [FeatureMatrix], record: &NormRecord, groups: &[Vec<usize>]) {
    match record {
        NormRecord::Speaker => normalise_groups(features, groups),
        NormRecord::Global { mean, std } => {
            let n = Normaliser {
                mean: mean.clone(),
                std: std.clone(),
            };
            features.iter_mut().for_each(|m| n.apply(m));
        }
        NormRecord::None => {}
    }
}

/// Examples for `indices`.
pub fn examples(f: &Featured, indices: &[usize]) -> Vec<Example> {
    indices
        .iter()
        .map(|&i| Example {
            features: f.features[i].clone(),
            label: f.corpus.utterances[i].emotion.index(),
        })
        .collect()
}
