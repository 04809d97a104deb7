//! What a server tells each participant on hello, so that a device computes exactly what a
//! simulated client of the same run would: the model, the front end, the local training
//! settings, the normalisation, the validation split and the seed, how recordings are
//! labelled, and whether its updates are clipped for differential privacy or masked for secure
//! aggregation.

use fedser_audio::FrontEndConfig;
use fedser_data::loaders::{CremaLabels, IemocapOptions, LoadOptions};
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
    /// How every device labels its recordings, so that all label alike: CREMA-D's acted or
    /// voice-vote labels, IEMOCAP's subsets.
    #[serde(default)]
    pub crema_labels: CremaLabels,
    #[serde(default)]
    pub iemocap: IemocapOptions,
    /// Training-time augmentation on the device: extra copies of its training recordings,
    /// each through one random recording chain
    /// ([`crate::robustness::augment_with_chains`]).
    #[serde(default)]
    pub augment_chains: usize,
    /// The chain kinds augmentation draws from (empty: all).
    #[serde(default)]
    pub augment_kinds: Vec<fedser_audio::ChainKind>,
}

impl ParticipantSettings {
    /// `own` (the device's loading options) with the run's labelling choices.
    pub fn load_options(&self, own: &LoadOptions) -> LoadOptions {
        LoadOptions {
            crema_labels: self.crema_labels,
            iemocap: self.iemocap,
            ..own.clone()
        }
    }

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
