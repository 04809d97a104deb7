//! Corpus -> labelled, normalised examples: the shared path of train, evaluate and simulate.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use fedser_audio::FrontEndConfig;
use fedser_core::FeatureMatrix;
use fedser_data::cache::{FeatureCache, extract_corpus};
use fedser_data::features::{Normaliser, normalise_groups};
use fedser_data::{Corpus, loaders};
use fedser_model::Example;

use crate::cli::{CorpusArgs, Norm};
use crate::progress;

/// A loaded corpus with one feature matrix per usable utterance (failures are reported and
/// their utterances dropped from `corpus`).
pub struct Featured {
    pub corpus: Corpus,
    pub features: Vec<FeatureMatrix>,
}

/// Loads the corpus and extracts (or reads cached) features with `front`.
pub fn load(
    args: &CorpusArgs,
    front: &FrontEndConfig,
    cache: Option<&Path>,
    quiet: bool,
) -> Result<Featured> {
    let mut corpus = loaders::load(args.corpus, args.data.as_deref(), &args.load_options())?;
    let cache = cache
        .map(FeatureCache::open)
        .transpose()
        .context("cannot open the feature cache")?;
    let bar = progress::bar(corpus.len() as u64, "features", quiet);
    let results = extract_corpus(&corpus, front, cache.as_ref(), &|| bar.inc(1))?;
    bar.finish_and_clear();
    let mut features = Vec::with_capacity(results.len());
    let mut kept = Vec::with_capacity(results.len());
    for (u, r) in corpus.utterances.drain(..).zip(results) {
        match r {
            Ok(m) if m.frames() > 0 => {
                features.push(m);
                kept.push(u);
            }
            Ok(_) => eprintln!("skipped {}: no frames", u.id),
            Err(e) => eprintln!("skipped {e}"),
        }
    }
    corpus.utterances = kept;
    if corpus.is_empty() {
        bail!("no utterance of the corpus could be turned into features");
    }
    Ok(Featured { corpus, features })
}

/// Indices of each speaker's utterances among `indices`.
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

/// What a model file records about normalisation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// Normalises `features` in place: per speaker over all utterances, or globally with the
/// statistics of `train` (returned so a model file can carry them).
pub fn normalise(f: &mut Featured, norm: Norm, train: &[usize]) -> NormRecord {
    let all: Vec<usize> = (0..f.features.len()).collect();
    match norm {
        Norm::Speaker => {
            let groups = by_speaker(&f.corpus, &all);
            normalise_groups(&mut f.features, &groups);
            NormRecord::Speaker
        }
        Norm::Global => {
            let n = Normaliser::fit(train.iter().map(|&i| &f.features[i]))
                .expect("training set has frames");
            f.features.iter_mut().for_each(|m| n.apply(m));
            NormRecord::Global {
                mean: n.mean,
                std: n.std,
            }
        }
        Norm::None => NormRecord::None,
    }
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
