//! A simulated device: its recordings' features (read from its file when it is opened), and
//! local training and evaluation of the model it is sent.

use std::path::PathBuf;

use fedser_core::{ConfusionMatrix, Emotion, ParamSet};
use fedser_fl::{Client, ClientFactory, ClientId, EvalOutcome, FitInstructions, FitOutcome};
use fedser_model::model::train_device;
use fedser_model::{EmotionModel, Example, ModelSpec, Proximal, TrainConfig, predict, train_near};

use super::data::{client_file, read_client};

/// Opens clients from their files in the run directory.
pub struct SpeechClients {
    pub run_dir: PathBuf,
    pub spec: ModelSpec,
    /// Local training settings (epochs, batch size, rate and seed come from each round).
    pub train: TrainConfig,
}

impl ClientFactory for SpeechClients {
    fn open(&self, id: ClientId) -> Result<Box<dyn Client>, String> {
        let (train, val) = read_client(&client_file(&self.run_dir, id))?;
        Ok(Box::new(SpeechClient {
            spec: self.spec.clone(),
            cfg: self.train.clone(),
            train,
            val,
        }))
    }
}

struct SpeechClient {
    spec: ModelSpec,
    cfg: TrainConfig,
    train: Vec<Example>,
    val: Vec<Example>,
}

/// A model of `spec` holding `params`.
pub fn model_with(spec: &ModelSpec, params: &ParamSet) -> Result<EmotionModel, String> {
    EmotionModel::new(spec.clone(), 0, &train_device())
        .and_then(|m| m.set_params(params))
        .map_err(|e| e.to_string())
}

/// Confusion matrix and mean cross-entropy of `model` on `examples`.
pub fn evaluate_examples(model: &EmotionModel, examples: &[Example]) -> EvalOutcome {
    let mut confusion = ConfusionMatrix::new();
    let mut loss = 0.0;
    for (e, p) in examples.iter().zip(predict(model, examples, 64)) {
        let best = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        loss -= (p.get(e.label).copied().unwrap_or(0.0).max(1e-12) as f64).ln();
        if let (Some(t), Some(q)) = (Emotion::from_index(e.label), Emotion::from_index(best)) {
            confusion.add(t, q);
        }
    }
    EvalOutcome {
        examples: examples.len(),
        loss: loss / examples.len().max(1) as f64,
        confusion,
    }
}

impl Client for SpeechClient {
    fn fit(&mut self, global: &ParamSet, ins: &FitInstructions) -> Result<FitOutcome, String> {
        let model = model_with(&self.spec, global)?;
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
        let model = model_with(&self.spec, global)?;
        Ok(Some(evaluate_examples(&model, &self.val)))
    }
}
