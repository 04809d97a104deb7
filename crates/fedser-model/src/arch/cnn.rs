//! CNN: three 1-D convolution blocks over time (13 → 32 → 64 → hidden channels, kernels
//! 5, 5, 3, same padding, batch norm, ReLU, max-pooling by 2 after the first two), then
//! masked mean and max pooling over the valid frames and a linear classifier.

use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig1d, Relu};
use burn::prelude::*;
use rand::rngs::StdRng;

use super::{ModelSpec, dropout, masked_max_time, masked_mean_time};
use crate::batch::Input;

#[derive(Module, Debug)]
pub struct Cnn {
    conv1: Conv1d,
    bn1: BatchNorm,
    conv2: Conv1d,
    bn2: BatchNorm,
    conv3: Conv1d,
    bn3: BatchNorm,
    pool: MaxPool1d,
    relu: Relu,
    head: Linear,
}

fn conv(input: usize, output: usize, kernel: usize, device: &Device) -> Conv1d {
    Conv1dConfig::new(input, output, kernel)
        .with_padding(PaddingConfig1d::Same)
        .init(device)
}

impl Cnn {
    /// The mask after one pooling step: a pooled step is valid when any of its frames is.
    fn pool_mask(&self, mask: Tensor<2>) -> Tensor<2> {
        self.pool
            .forward(mask.unsqueeze_dim::<3>(1))
            .squeeze_dim::<2>(1)
    }

    pub fn init(spec: &ModelSpec, device: &Device) -> Self {
        Self {
            conv1: conv(spec.n_features, 32, 5, device),
            bn1: BatchNormConfig::new(32).init(device),
            conv2: conv(32, 64, 5, device),
            bn2: BatchNormConfig::new(64).init(device),
            conv3: conv(64, spec.hidden, 3, device),
            bn3: BatchNormConfig::new(spec.hidden).init(device),
            pool: MaxPool1dConfig::new(2).init(),
            relu: Relu::new(),
            head: LinearConfig::new(2 * spec.hidden, spec.n_classes).init(device),
        }
    }

    pub fn forward(&self, input: &Input, p: f64, rng: Option<&mut StdRng>) -> Tensor<2> {
        let x = input.x.clone().swap_dims(1, 2); // [b, coeffs, t]
        let x = self
            .pool
            .forward(self.relu.forward(self.bn1.forward(self.conv1.forward(x))));
        let mask = self.pool_mask(input.mask.clone());
        let x = self
            .pool
            .forward(self.relu.forward(self.bn2.forward(self.conv2.forward(x))));
        let mask = self.pool_mask(mask);
        let x = self.relu.forward(self.bn3.forward(self.conv3.forward(x)));
        let h = x.swap_dims(1, 2); // [b, t', c]
        let pooled = Tensor::cat(
            vec![
                masked_mean_time(h.clone(), mask.clone()),
                masked_max_time(h, mask),
            ],
            1,
        );
        self.head.forward(dropout(pooled, p, rng))
    }
}
