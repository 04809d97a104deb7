//! CNN: three 1-D convolution blocks over time (13 → 32 → 64 → hidden channels, kernels
//! 5, 5, 3, same padding, batch norm, ReLU, max-pooling by 2 after the first two), then
//! masked mean and max pooling over the valid frames and a linear classifier.

use burn::nn::conv::{Conv1d, Conv1dConfig};
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
    relu: Relu,
    head: Linear,
}

fn conv(input: usize, output: usize, kernel: usize, device: &Device) -> Conv1d {
    Conv1dConfig::new(input, output, kernel)
        .with_padding(PaddingConfig1d::Same)
        .init(device)
}

/// Max-pooling by 2 over time, `[b, c, t]` -> `[b, c, t / 2]` (an odd last step is dropped),
/// the same result as `MaxPool1d` with kernel and stride 2 but as a reshape and a maximum:
/// flex runs 1-D pooling through its general 3-D pooling with indices, which profiling
/// showed to be a seventh of a CNN training step.
fn pool2(x: Tensor<3>) -> Tensor<3> {
    let [b, c, t] = x.dims();
    let even = t - t % 2;
    let x = if even == t {
        x
    } else {
        x.slice([0..b, 0..c, 0..even])
    };
    x.reshape([b, c, even / 2, 2])
        .max_dim(3)
        .squeeze_dim::<3>(3)
}

impl Cnn {
    /// The mask after one pooling step: a pooled step is valid when any of its frames is.
    fn pool_mask(&self, mask: Tensor<2>) -> Tensor<2> {
        pool2(mask.unsqueeze_dim::<3>(1)).squeeze_dim::<2>(1)
    }

    pub fn init(spec: &ModelSpec, device: &Device) -> Self {
        Self {
            conv1: conv(spec.n_features, 32, 5, device),
            bn1: BatchNormConfig::new(32).init(device),
            conv2: conv(32, 64, 5, device),
            bn2: BatchNormConfig::new(64).init(device),
            conv3: conv(64, spec.hidden, 3, device),
            bn3: BatchNormConfig::new(spec.hidden).init(device),
            relu: Relu::new(),
            head: LinearConfig::new(2 * spec.hidden, spec.n_classes).init(device),
        }
    }

    pub fn forward(&self, input: &Input, p: f64, rng: Option<&mut StdRng>) -> Tensor<2> {
        let x = input.x.clone().swap_dims(1, 2); // [b, coeffs, t]
        let x = pool2(self.relu.forward(self.bn1.forward(self.conv1.forward(x))));
        let mask = self.pool_mask(input.mask.clone());
        let x = pool2(self.relu.forward(self.bn2.forward(self.conv2.forward(x))));
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool1dConfig;

    #[test]
    fn pool2_equals_max_pool_1d() {
        let device = Device::flex();
        let pool = MaxPool1dConfig::new(2).init();
        for t in [6, 7, 1] {
            let data: Vec<f32> = (0..2 * 3 * t)
                .map(|i| ((i * 7919) % 31) as f32 - 15.0)
                .collect();
            let x = Tensor::<3>::from_data(TensorData::new(data, [2, 3, t]), &device);
            let a = pool2(x.clone()).into_data();
            let b = pool.forward(x).into_data();
            assert_eq!(a, b, "t = {t}");
        }
    }
}
