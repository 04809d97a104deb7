//! What a server tells each participant on hello, so that a device computes exactly what a
//! simulated client of the same run would: the model, the front end, the local training
//! settings, the normalisation, the validation split and the seed, and whether its updates
//! are clipped for differential privacy.

use fedser_audio::FrontEndConfig;
use fedser_model::{ModelSpec, Optimizer, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::dataset::Norm;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantSettings {
    pub spec: ModelSpec,
    pub front_end: FrontEndConfig,
    pub norm: Norm,
    /// Fraction of the device's recordings kept for its own validation.
    pub val_fraction: f64,
    pub weight_decay: f64,
    pub optimizer: Optimizer,
    pub class_weights: bool,
    /// The run's seed (a client's validation split uses `seed ^ client_id`).
    pub seed: u64,
    /// Updates go through the DP clipping stage (settings arrive with each task).
    pub dp: bool,
    /// Rounds run secure aggregation: updates leave only masked.
    #[serde(default)]
    pub secagg: bool,
}

impl ParticipantSettings {
    /// Local training settings (epochs, batch size, rate and seed come with each task).
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            weight_decay: self.weight_decay,
            optimizer: self.optimizer,
            class_weights: self.class_weights,
            ..TrainConfig::default()
        }
    }
}
