//! Local training: mini-batches, Adam/AdamW/SGD, class weights, early stopping on the
//! validation unweighted accuracy (keeping the best epoch's weights), deterministic from the
//! seed, and a clear error when the loss turns NaN.

use std::collections::HashMap;

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use fedser_core::{ConfusionMatrix, Emotion};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::batch::{self, Example};
use crate::model::{EmotionModel, ModelError};

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Adam,
    AdamW,
    /// SGD with momentum 0.9.
    Sgd,
}

impl std::str::FromStr for Optimizer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "adam" => Ok(Optimizer::Adam),
            "adamw" => Ok(Optimizer::AdamW),
            "sgd" => Ok(Optimizer::Sgd),
            _ => Err(format!(
                "unknown optimiser {s:?} (expected adam, adamw or sgd)"
            )),
        }
    }
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub optimizer: Optimizer,
    /// Stop after this many epochs without a better validation UA (0: never stop early).
    pub patience: usize,
    /// Weight the loss by inverse class frequency.
    pub class_weights: bool,
    /// Random crops of long utterances while training (augmentation).
    pub random_crop: bool,
    /// Feature-space augmentation while training (time and coefficient masks, noise).
    pub augment: Option<crate::batch::Augment>,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 60,
            batch_size: 32,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            optimizer: Optimizer::AdamW,
            patience: 0,
            class_weights: true,
            random_crop: true,
            augment: None,
            seed: 7,
        }
    }
}

/// One epoch's record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    /// Validation UA and accuracy, when there is a validation set.
    pub val_ua: Option<f64>,
    pub val_accuracy: Option<f64>,
}

/// What happened during training.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    /// The epoch whose weights were kept (the best validation UA, else the last).
    pub best_epoch: usize,
    pub examples_per_second: f64,
}

/// Why training stopped without a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "the loss became {value} in epoch {epoch} (batch {batch}); lower the learning rate or check the features"
    )]
    NonFiniteLoss {
        epoch: usize,
        batch: usize,
        value: f32,
    },
    #[error("no training examples")]
    Empty,
    #[error("invalid training settings: {0}")]
    Config(String),
    #[error(transparent)]
    Model(#[from] ModelError),
}

fn class_weights(examples: &[Example], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for e in examples {
        counts[e.label.min(classes - 1)] += 1;
    }
    let present = counts.iter().filter(|&&c| c > 0).count().max(1);
    let n = examples.len() as f32;
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                1.0
            } else {
                n / (present as f32 * c as f32)
            }
        })
        .collect()
}

/// `order` in batches of `size`, except that a last batch of one example joins the batch
/// before it: batch norm in training mode sees zero variance in a batch of one, so the step
/// would learn nothing from its input and pull the running statistics towards one example.
fn batches_of(order: &[usize], size: usize) -> impl Iterator<Item = &[usize]> {
    let n = order.len();
    let lone = n > size && n % size == 1;
    let cut = if lone { n - size - 1 } else { n };
    order[..cut].chunks(size).chain(lone.then(|| &order[cut..]))
}

/// Trains `model` on `train`, choosing the epoch by `val` (when not empty).
pub fn train(
    model: EmotionModel,
    train: &[Example],
    val: &[Example],
    cfg: &TrainConfig,
) -> Result<(EmotionModel, History), TrainError> {
    train_near(model, train, val, cfg, None)
}

/// FedProx's proximal term: `mu/2 * ||w - reference||^2` over the trained weights (not
/// batch-norm statistics) is added to the loss, keeping local training near the global model.
#[derive(Debug, Clone, Copy)]
pub struct Proximal<'a> {
    pub mu: f64,
    pub reference: &'a fedser_core::ParamSet,
}

/// [`train`] with an optional proximal term.
pub fn train_near(
    model: EmotionModel,
    train: &[Example],
    val: &[Example],
    cfg: &TrainConfig,
    proximal: Option<Proximal<'_>>,
) -> Result<(EmotionModel, History), TrainError> {
    train_observed(model, train, val, cfg, proximal, &mut |_| {})
}

/// [`train_near`], calling `on_epoch` after each epoch with its loss and validation figures
/// (for progress displays).
pub fn train_observed(
    mut model: EmotionModel,
    train: &[Example],
    val: &[Example],
    cfg: &TrainConfig,
    proximal: Option<Proximal<'_>>,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<(EmotionModel, History), TrainError> {
    check_settings(&model, train, val, cfg)?;
    let device = crate::model::train_device();
    let objective = Objective {
        loss: CrossEntropyLossConfig::new()
            .with_weights(Some(loss_weights(train, cfg, model.spec.n_classes)))
            .init(&device),
        proximal: match proximal {
            Some(p) if p.mu > 0.0 => Some((p.mu, crate::params::reference(p.reference, &device))),
            _ => None,
        },
    };
    let mut optim = optimizer(cfg);
    let mut streams = Streams::new(cfg.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut history = History::default();
    let mut best = BestEpoch::default();
    let started = std::time::Instant::now();
    let mut seen = 0usize;
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut streams.shuffle_and_dropout);
        let (trained, train_loss) = train_epoch(
            model,
            &mut optim,
            &objective,
            train,
            &order,
            cfg,
            epoch,
            &mut streams,
            &device,
        )?;
        model = trained;
        seen += train.len();
        let mut record = EpochRecord {
            epoch,
            train_loss,
            val_ua: None,
            val_accuracy: None,
        };
        if val.is_empty() {
            history.best_epoch = epoch;
        } else {
            let cm = evaluate(&model, val, cfg.batch_size.max(64));
            let ua = cm.unweighted_accuracy();
            record.val_ua = Some(ua);
            record.val_accuracy = Some(cm.accuracy());
            if best.offer(ua, &model)? {
                history.best_epoch = epoch;
            }
        }
        tracing::debug!(
            "epoch {epoch}: loss {:.4} val UA {:?}",
            record.train_loss,
            record.val_ua
        );
        on_epoch(&record);
        history.epochs.push(record);
        if cfg.patience > 0 && best.since >= cfg.patience {
            break;
        }
    }
    history.examples_per_second = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
    if let Some((_, params)) = best.kept {
        model = model.set_params(&params)?;
    }
    Ok((model, history))
}

/// Refuses settings and data training cannot use: no examples, a batch size or learning rate
/// that is not positive, a label the model has no output for.
fn check_settings(
    model: &EmotionModel,
    train: &[Example],
    val: &[Example],
    cfg: &TrainConfig,
) -> Result<(), TrainError> {
    if train.is_empty() {
        return Err(TrainError::Empty);
    }
    if cfg.batch_size == 0 || !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) {
        return Err(TrainError::Config(format!(
            "batch size {} and learning rate {} must be positive",
            cfg.batch_size, cfg.learning_rate
        )));
    }
    if let Some(bad) = train
        .iter()
        .chain(val)
        .find(|e| e.label >= model.spec.n_classes)
    {
        return Err(TrainError::Config(format!(
            "label {} is out of range",
            bad.label
        )));
    }
    Ok(())
}

/// Per-class loss weights: inverse class frequency, or all ones.
fn loss_weights(train: &[Example], cfg: &TrainConfig, classes: usize) -> Vec<f32> {
    if cfg.class_weights {
        class_weights(train, classes)
    } else {
        vec![1.0; classes]
    }
}

/// The configured optimiser.
fn optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    let decay = cfg.weight_decay as f32;
    let penalty = (decay > 0.0).then_some(WeightDecayConfig { penalty: decay });
    match cfg.optimizer {
        Optimizer::Adam => AdamConfig::new().with_weight_decay(penalty).init(),
        Optimizer::AdamW => AdamWConfig::new().with_weight_decay(decay).init(),
        Optimizer::Sgd => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
            ))
            .with_weight_decay(penalty)
            .init(),
    }
}

/// What a step minimises: the weighted cross-entropy, plus FedProx's proximal term when set.
struct Objective {
    loss: CrossEntropyLoss,
    proximal: Option<(f64, HashMap<String, Tensor<1>>)>,
}

/// Separate random streams for shuffling and dropout, crops, and augmentation: each stays
/// reproducible whatever the others draw.
struct Streams {
    shuffle_and_dropout: StdRng,
    crop: StdRng,
    augment: StdRng,
}

impl Streams {
    fn new(seed: u64) -> Self {
        Self {
            shuffle_and_dropout: StdRng::seed_from_u64(seed),
            crop: StdRng::seed_from_u64(seed ^ 0x5eed_c409),
            augment: StdRng::seed_from_u64(seed ^ 0x5eed_a06e),
        }
    }
}

/// One pass over `order` in mini-batches; returns the model and the mean batch loss.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    mut model: EmotionModel,
    optim: &mut ModuleOptimizer,
    objective: &Objective,
    train: &[Example],
    order: &[usize],
    cfg: &TrainConfig,
    epoch: usize,
    streams: &mut Streams,
    device: &Device,
) -> Result<(EmotionModel, f64), TrainError> {
    let (mut loss_sum, mut batches) = (0.0f64, 0usize);
    for (b, chunk) in batches_of(order, cfg.batch_size).enumerate() {
        let examples: Vec<&Example> = chunk.iter().map(|&i| &train[i]).collect();
        let crop = cfg.random_crop.then_some(&mut streams.crop);
        let aug = cfg.augment.map(|a| (a, &mut streams.augment));
        let input = batch::input_augmented(&examples, &model.spec, crop, aug, device);
        let labels = batch::labels(&examples, device);
        let logits = model.forward(&input, Some(&mut streams.shuffle_and_dropout));
        let mut loss = objective.loss.forward(logits, labels);
        let value: f32 = loss.clone().into_scalar();
        if let Some((mu, reference)) = &objective.proximal {
            let term = crate::params::squared_distance(&model.net, reference)
                .map_err(|e| TrainError::Config(format!("proximal term: {e}")))?;
            if let Some(term) = term {
                loss = loss + term.mul_scalar(0.5 * *mu);
            }
        }
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                epoch,
                batch: b + 1,
                value,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model.net);
        model.net = optim.step(cfg.learning_rate, model.net, grads);
        loss_sum += value as f64;
        batches += 1;
    }
    Ok((model, loss_sum / batches.max(1) as f64))
}

/// Early stopping's memory: the best validation UA so far with its weights, and how many
/// epochs have passed without beating it.
#[derive(Default)]
struct BestEpoch {
    kept: Option<(f64, fedser_core::ParamSet)>,
    since: usize,
}

impl BestEpoch {
    /// Records an epoch's validation UA; keeps the model's weights and returns true when
    /// it is the best so far.
    fn offer(&mut self, ua: f64, model: &EmotionModel) -> Result<bool, TrainError> {
        if self.kept.as_ref().is_none_or(|(b, _)| ua > *b) {
            self.kept = Some((ua, model.params()?));
            self.since = 0;
            Ok(true)
        } else {
            self.since += 1;
            Ok(false)
        }
    }
}

/// Class probabilities for each example (evaluation mode: no dropout, batch-norm statistics).
pub fn predict(model: &EmotionModel, examples: &[Example], batch_size: usize) -> Vec<Vec<f32>> {
    let device = crate::model::train_device().inner();
    let eval = EmotionModel {
        spec: model.spec.clone(),
        net: model.net.valid(),
    };
    let mut out = Vec::with_capacity(examples.len());
    let refs: Vec<&Example> = examples.iter().collect();
    for chunk in refs.chunks(batch_size.max(1)) {
        let input = batch::input(chunk, &eval.spec, None, &device);
        let probs = burn::tensor::activation::softmax(eval.forward(&input, None), 1);
        let flat = probs
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap_or_default();
        out.extend(flat.chunks(eval.spec.n_classes).map(<[f32]>::to_vec));
    }
    out
}

/// The index of the largest probability (0 for an empty slice; NaN never wins over a number).
pub fn argmax(probs: &[f32]) -> usize {
    probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Confusion matrix of `model` on `examples`.
pub fn evaluate(model: &EmotionModel, examples: &[Example], batch_size: usize) -> ConfusionMatrix {
    evaluate_with_loss(model, examples, batch_size).0
}

/// Confusion matrix and mean cross-entropy (nats) of `model` on `examples`.
pub fn evaluate_with_loss(
    model: &EmotionModel,
    examples: &[Example],
    batch_size: usize,
) -> (ConfusionMatrix, f64) {
    let mut cm = ConfusionMatrix::new();
    let mut loss = 0.0;
    for (e, p) in examples.iter().zip(predict(model, examples, batch_size)) {
        loss -= (p.get(e.label).copied().unwrap_or(0.0).max(1e-12) as f64).ln();
        if let (Some(t), Some(q)) = (
            Emotion::from_index(e.label),
            Emotion::from_index(argmax(&p)),
        ) {
            cm.add(t, q);
        }
    }
    (cm, loss / examples.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::batches_of;

    #[test]
    fn a_lone_last_example_joins_the_batch_before_it() {
        let order: Vec<usize> = (0..9).collect();
        let sizes = |n: usize, size| {
            batches_of(&order[..n], size)
                .map(<[usize]>::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(9, 4), vec![4, 5]);
        assert_eq!(sizes(8, 4), vec![4, 4]);
        assert_eq!(sizes(7, 4), vec![4, 3]);
        assert_eq!(sizes(5, 4), vec![5]);
        assert_eq!(sizes(1, 4), vec![1]);
        assert_eq!(sizes(0, 4), Vec::<usize>::new());
        let all: Vec<usize> = batches_of(&order, 4).flatten().copied().collect();
        assert_eq!(all, order);
    }
}
