//! How a trained model holds up across recording chains: the same utterances scored clean and
//! passed through each [`Perturbation`] (gates, gain, DC, sample rates, codecs, padding,
//! noise), features and normalisation exactly as the model file records. The table users read
//! to decide whether a model is fit for their devices; and the same perturbations as
//! training-time augmentation on a device ([`augment_with_chains`]).

use fedser_audio::{ChainKind, FrontEndConfig, Perturbation};
use fedser_core::{FeatureMatrix, Metrics};
use fedser_data::cache::{FeatureCache, extract_perturbed};
use fedser_model::{EmotionModel, Example, evaluate};
use serde::{Deserialize, Serialize};

use crate::ModelMeta;
use crate::dataset::{Featured, apply_record, by_speaker};

/// One perturbation's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbedScore {
    /// Its name, as parsed (`mp3:64`).
    pub perturbation: String,
    pub ua: f64,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Clean UA minus this UA (positive: the perturbation costs accuracy).
    pub ua_drop: f64,
}

/// The robustness table: clean metrics, then each perturbation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Robustness {
    pub clean: Metrics,
    pub perturbed: Vec<PerturbedScore>,
}

/// Why a perturbed evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum RobustnessError {
    #[error(transparent)]
    Mfcc(#[from] fedser_audio::MfccError),
    #[error("{0}")]
    Utterance(#[from] fedser_data::cache::FeatureError),
    #[error("no utterances to score")]
    Empty,
}

/// The model's scores on `indices` of `data` (features already computed with the front end
/// `meta` records, not yet normalised), clean and under each perturbation. Every perturbed utterance must yield
/// features: a failure is an error naming the utterance and the perturbation, never a
/// silently smaller test set. `on_done` is called after each perturbation (progress).
pub fn score(
    model: &EmotionModel,
    data: &Featured,
    indices: &[usize],
    meta: &ModelMeta,
    cache: Option<&FeatureCache>,
    perturbations: &[Perturbation],
    on_done: &dyn Fn(&Perturbation),
) -> Result<Robustness, RobustnessError> {
    if indices.is_empty() {
        return Err(RobustnessError::Empty);
    }
    let (front, norm) = (&meta.front_end, &meta.norm);
    let groups = by_speaker(&data.corpus, indices);
    let metrics_of = |mut features: Vec<FeatureMatrix>| -> Metrics {
        apply_record(&mut features, norm, &groups);
        let scored: Vec<Example> = indices
            .iter()
            .map(|&i| Example {
                features: features[i].clone(),
                label: data.corpus.utterances[i].emotion.index(),
            })
            .collect();
        evaluate(model, &scored, 64).metrics()
    };
    let clean = metrics_of(data.features.clone());
    let mut perturbed = Vec::with_capacity(perturbations.len());
    for p in perturbations {
        let mut features = data.features.clone();
        let results = extract_perturbed(&data.corpus, indices, front, cache, p)?;
        for (&i, r) in indices.iter().zip(results) {
            features[i] = r?;
        }
        let m = metrics_of(features);
        perturbed.push(PerturbedScore {
            perturbation: p.to_string(),
            ua: m.ua,
            accuracy: m.accuracy,
            macro_f1: m.macro_f1,
            ua_drop: clean.ua - m.ua,
        });
        on_done(p);
    }
    Ok(Robustness { clean, perturbed })
}

/// Training-time augmentation with recording chains, run on the device that holds the data:
/// `copies` times, every speaker's utterances among `indices` pass through one random chain
/// ([`Perturbation::random_of`] `kinds`, all kinds when empty; one chain per speaker and
/// copy, as if the speaker had also recorded on another device). The copies are appended to `data` as utterances of the
/// pseudo-speaker `SPEAKER~CHAIN`, so per-speaker normalisation treats each device's
/// recordings on their own, as it does at test time. Returns the new utterances' indices. A
/// chain that fails on an utterance (a codec refusing a rate, say) skips that copy with a
/// warning; the clean data is never touched.
pub fn augment_with_chains(
    data: &mut Featured,
    indices: &[usize],
    front: &FrontEndConfig,
    cache: Option<&FeatureCache>,
    copies: usize,
    kinds: &[ChainKind],
    seed: u64,
) -> Result<Vec<usize>, RobustnessError> {
    use rand::SeedableRng;
    let mut added = Vec::new();
    for group in by_speaker(&data.corpus, indices) {
        let speaker = data.corpus.utterances[group[0]].speaker.clone();
        for k in 0..copies {
            let chain_seed =
                fedser_data::partition::derive_seed(seed, &format!("chain/{speaker}/{k}"));
            let chain =
                Perturbation::random_of(kinds, &mut rand::rngs::StdRng::seed_from_u64(chain_seed));
            let results = extract_perturbed(&data.corpus, &group, front, cache, &chain)?;
            for (&i, r) in group.iter().zip(results) {
                match r {
                    Ok(m) if m.frames() > 0 => {
                        let mut u = data.corpus.utterances[i].clone();
                        u.id = format!("{}~{chain}", u.id);
                        u.speaker = format!("{speaker}~{chain}");
                        data.corpus.utterances.push(u);
                        data.features.push(m);
                        added.push(data.features.len() - 1);
                    }
                    Ok(_) => tracing::warn!(
                        "augmentation {chain}: no frames left of {}",
                        data.corpus.utterances[i].id
                    ),
                    Err(e) => tracing::warn!("augmentation skipped: {e}"),
                }
            }
        }
    }
    Ok(added)
}
