//! DNN: an MLP on utterance-level statistics of the MFCCs (mean, standard deviation, delta
//! mean, delta standard deviation per coefficient): `4·13 → hidden → hidden/2 → classes`.

use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;
use rand::rngs::StdRng;

use super::{ModelSpec, dropout};
use crate::batch::{Input, STATS_PER_COEFF};

#[derive(Module, Debug)]
pub struct Dnn {
    input_norm: BatchNorm,
    fc1: Linear,
    fc2: Linear,
    head: Linear,
    relu: Relu,
}

impl Dnn {
    pub fn init(spec: &ModelSpec, device: &Device) -> Self {
        let half = (spec.hidden / 2).max(1);
        Self {
            input_norm: BatchNormConfig::new(STATS_PER_COEFF * spec.n_features).init(device),
            fc1: LinearConfig::new(STATS_PER_COEFF * spec.n_features, spec.hidden).init(device),
            fc2: LinearConfig::new(spec.hidden, half).init(device),
            head: LinearConfig::new(half, spec.n_classes).init(device),
            relu: Relu::new(),
        }
    }

    pub fn forward(&self, input: &Input, p: f64, mut rng: Option<&mut StdRng>) -> Tensor<2> {
        let h = self.relu.forward(
            self.fc1
                .forward(self.input_norm.forward(input.stats.clone())),
        );
        let h = dropout(h, p, rng.as_deref_mut());
        let h = self.relu.forward(self.fc2.forward(h));
        let h = dropout(h, p, rng);
        self.head.forward(h)
    }
}
