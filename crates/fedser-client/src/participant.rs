//! A device taking part in a federation: its own examples, normalised with statistics it
//! computes itself, and local training and evaluation of whatever model it is sent.

use std::collections::BTreeMap;

use fedser_core::ParamSet;
use fedser_data::features::Normaliser;
use fedser_fl::{Client, EvalOutcome, FitInstructions, FitOutcome};
use fedser_model::model::train_device;
use fedser_model::{
    EmotionModel, Example, ModelSpec, Proximal, TrainConfig, evaluate_with_loss, train_near,
};

use crate::ClientError;
use crate::dataset::NormRecord;

/// One recording a device holds: its features and label, and its speaker where the device
/// knows it (a shared device may hold several speakers).
#[derive(Debug, Clone)]
pub struct Held {
    pub example: Example,
    pub speaker: Option<String>,
}

/// A device's data, split into local training and local validation.
#[derive(Debug, Clone, Default)]
pub struct LocalData {
    pub train: Vec<Held>,
    pub val: Vec<Held>,
}

impl LocalData {
    /// Normalises the device's features with what the device itself holds. Per speaker:
    /// each speaker's recordings (training and validation alike; labels are not used) with
    /// that speaker's statistics, recordings of no known speaker with the statistics of all
    /// such recordings on the device. Global: the recorded statistics. Returns the examples
    /// (train, validation).
    pub fn normalise(self, norm: &NormRecord) -> (Vec<Example>, Vec<Example>) {
        let n_train = self.train.len();
        let mut all: Vec<Held> = self.train.into_iter().chain(self.val).collect();
        match norm {
            NormRecord::Speaker => {
                let mut groups: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
                for (i, h) in all.iter().enumerate() {
                    groups.entry(h.speaker.as_deref()).or_default().push(i);
                }
                let fitted: Vec<(Vec<usize>, Option<Normaliser>)> = groups
                    .into_values()
                    .map(|g| {
                        let n = Normaliser::fit(g.iter().map(|&i| &all[i].example.features));
                        (g, n)
                    })
                    .collect();
                for (group, n) in fitted {
                    if let Some(n) = n {
                        for i in group {
                            n.apply(&mut all[i].example.features);
                        }
                    }
                }
            }
            NormRecord::Global { mean, std } => {
                let n = Normaliser {
                    mean: mean.clone(),
                    std: std.clone(),
                };
                all.iter_mut()
                    .for_each(|h| n.apply(&mut h.example.features));
            }
            NormRecord::None => {}
        }
        let mut examples: Vec<Example> = all.into_iter().map(|h| h.example).collect();
        let val = examples.split_off(n_train);
        (examples, val)
    }
}

/// A model of `spec` holding `params`.
pub fn model_with(spec: &ModelSpec, params: &ParamSet) -> Result<EmotionModel, ClientError> {
    Ok(EmotionModel::new(spec.clone(), 0, &train_device())?.set_params(params)?)
}

/// Confusion matrix and mean cross-entropy of `model` on `examples`.
pub fn evaluate_examples(model: &EmotionModel, examples: &[Example]) -> EvalOutcome {
    let (confusion, loss) = evaluate_with_loss(model, examples, 64);
    EvalOutcome {
        examples: examples.len(),
        loss,
        confusion,
    }
}

/// A speech-emotion participant: local training (FedAvg's local SGD, FedProx's proximal term
/// when asked) and evaluation on its own normalised data.
pub struct SpeechClient {
    spec: ModelSpec,
    cfg: TrainConfig,
    train: Vec<Example>,
    val: Vec<Example>,
}

impl SpeechClient {
    /// A participant with the federation's model `spec`, local training settings `cfg`
    /// (epochs, batch size, rate and seed come from each round's instructions) and its data,
    /// normalised here on the device as `norm` says.
    pub fn new(spec: ModelSpec, cfg: TrainConfig, data: LocalData, norm: &NormRecord) -> Self {
        let (train, val) = data.normalise(norm);
        Self {
            spec,
            cfg,
            train,
            val,
        }
    }

    /// Training examples held.
    pub fn train_len(&self) -> usize {
        self.train.len()
    }
}

impl Client for SpeechClient {
    fn fit(&mut self, global: &ParamSet, ins: &FitInstructions) -> Result<FitOutcome, String> {
        let model = model_with(&self.spec, global).map_err(|e| e.to_string())?;
        let cfg = TrainConfig {
            epochs: ins.epochs,
            batch_size: ins.batch_size,
            learning_rate: ins.learning_rate,
            patience: 0,
            seed: ins.seed,
            ..self.cfg.clone()
        };
        let proximal = Proximal {
            mu: ins.proximal_mu,
            reference: global,
        };
        // No validation set here: local training runs its epochs and sends the result (picking
        // a "best" local epoch would be a different algorithm from FedAvg's).
        let (model, history) =
            train_near(model, &self.train, &[], &cfg, Some(proximal)).map_err(|e| e.to_string())?;
        Ok(FitOutcome {
            params: model.params().map_err(|e| e.to_string())?,
            examples: self.train.len(),
            loss: history.epochs.last().map_or(f64::NAN, |r| r.train_loss),
        })
    }

    fn evaluate(&mut self, global: &ParamSet) -> Result<Option<EvalOutcome>, String> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let model = model_with(&self.spec, global).map_err(|e| e.to_string())?;
        Ok(Some(evaluate_examples(&model, &self.val)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedser_core::FeatureMatrix;

    fn held(values: &[f32], speaker: Option<&str>) -> Held {
        Held {
            example: Example {
                features: FeatureMatrix::new(values.len(), 1, values.to_vec()).unwrap(),
                label: 0,
            },
            speaker: speaker.map(str::to_string),
        }
    }

    fn column(e: &Example) -> Vec<f32> {
        e.features.as_slice().to_vec()
    }

    #[test]
    fn each_speaker_is_normalised_with_only_their_own_recordings_on_this_device() {
        // Speaker a: values 0..4 across train and validation; speaker b: 100, 102.
        let data = LocalData {
            train: vec![held(&[0.0, 1.0], Some("a")), held(&[100.0], Some("b"))],
            val: vec![held(&[2.0, 3.0], Some("a")), held(&[102.0], Some("b"))],
        };
        let (train, val) = data.normalise(&NormRecord::Speaker);
        // a: mean 1.5, sd sqrt(1.25).
        let sd = 1.25f32.sqrt();
        let expect_a: Vec<f32> = [0.0, 1.0].iter().map(|v| (v - 1.5) / sd).collect();
        for (got, want) in column(&train[0]).iter().zip(&expect_a) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert!((column(&val[0])[1] - (3.0 - 1.5) / sd).abs() < 1e-5);
        // b: mean 101, sd 1 -> -1, +1, whatever speaker a holds.
        assert!((column(&train[1])[0] + 1.0).abs() < 1e-5);
        assert!((column(&val[1])[0] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn recordings_of_unknown_speakers_share_the_devices_statistics_and_global_uses_the_record() {
        let data = LocalData {
            train: vec![held(&[1.0, 3.0], None)],
            val: vec![held(&[5.0, 7.0], None)],
        };
        let (train, val) = data.clone().normalise(&NormRecord::Speaker);
        let mean: f32 = column(&train[0])
            .iter()
            .chain(&column(&val[0]))
            .sum::<f32>()
            / 4.0;
        assert!(mean.abs() < 1e-6);
        let (train, _) = data.normalise(&NormRecord::Global {
            mean: vec![1.0],
            std: vec![2.0],
        });
        assert_eq!(column(&train[0]), vec![0.0, 1.0]);
    }
}
