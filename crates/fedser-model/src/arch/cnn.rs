//! CNN: three 1-D convolution blocks over time (13 → 32 → 64 → hidden channels, kernels
//! 5, 5, 3, same padding, batch norm, ReLU, max-pooling by 2 after the first two), then
//! masked mean and max pooling over the valid frames and a linear classifier. Activations
//! stay time-major (`[batch, frames, channels]`) and each convolution is one matrix product.

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

/// Max-pooling by 2 over time, `[b, t, c]` -> `[b, t / 2, c]` (an odd last step is dropped),
/// the same result as `MaxPool1d` with kernel and stride 2, as the elementwise maximum of the
/// even and the odd frames: flex runs 1-D pooling through its general 3-D pooling with
/// indices (a seventh of a CNN step when profiled), and a `max_dim` would take its gradient
/// through a scatter; an elementwise maximum's gradient is elementwise too.
fn pool2(x: Tensor<3>) -> Tensor<3> {
    let [b, t, c] = x.dims();
    let half = t / 2;
    let pairs = x.slice([0..b, 0..2 * half, 0..c]).reshape([b, half, 2 * c]);
    let even = pairs.clone().slice([0..b, 0..half, 0..c]);
    let odd = pairs.slice([0..b, 0..half, c..2 * c]);
    even.max_pair(odd)
}

/// `conv`'s "same" convolution over time, on time-major input: `[b, t, in]` -> `[b, t, out]`.
///
/// Computes what `Conv1d::forward` does (tested) as one matrix product: the `k` shifted copies
/// of the zero-padded input are laid side by side (`[b·t, k·in]`) and multiplied by the
/// weights rearranged to `[k·in, out]`. flex runs `conv1d` through its general 3-D
/// convolution (layout conversions, tiled im2col, a matrix product per tile, and the same
/// again for each gradient); one large product per direction is what its matrix kernel does
/// best. The weights stay in `Conv1d`'s own layout, so parameter names and model files are
/// unchanged.
///
/// On the flex backend the whole convolution, forward and backward, is one fused kernel
/// ([`crate::kernels::conv`]); elsewhere it is composed of framework operations.
fn conv_time_major(conv: &Conv1d, x: Tensor<3>) -> Tensor<3> {
    let out = conv.weight.dims()[0];
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([out], &x.device()),
    };
    crate::kernels::conv1d_time_major(x.clone(), conv.weight.val(), bias)
        .unwrap_or_else(|| conv_composed(conv, x))
}

/// [`conv_time_major`] composed of framework operations.
fn conv_composed(conv: &Conv1d, x: Tensor<3>) -> Tensor<3> {
    let [b, t, c] = x.dims();
    let weight = conv.weight.val(); // [out, in, k]
    let [out, inputs, k] = weight.dims();
    // Only what `conv` builds: stride 1, no dilation, no groups, "same" padding.
    debug_assert!(conv.stride == 1 && conv.dilation == 1 && conv.groups == 1 && inputs == c);
    let left = (k - 1) / 2;
    let right = k - 1 - left;
    let device = x.device();
    let padded = Tensor::cat(
        vec![
            Tensor::<3>::zeros([b, left, c], &device),
            x,
            Tensor::<3>::zeros([b, right, c], &device),
        ],
        1,
    );
    let shifted: Vec<Tensor<3>> = (0..k)
        .map(|j| padded.clone().slice([0..b, j..j + t, 0..c]))
        .collect();
    let unfolded = Tensor::cat(shifted, 2).reshape([b * t, k * c]);
    // w[j·in + i, o] = weight[o, i, j]
    let w = weight.permute([2, 1, 0]).reshape([k * c, out]);
    let mut y = unfolded.matmul(w);
    if let Some(bias) = &conv.bias {
        y = y + bias.val().unsqueeze_dim::<2>(0);
    }
    y.reshape([b, t, out])
}

/// Batch norm over the channels of time-major `[b, t, c]` input. While training on flex the
/// normalisation is one fused kernel ([`crate::kernels::norm`]) and the running statistics
/// are updated here exactly as `BatchNorm::forward` does; otherwise `BatchNorm::forward`.
fn batch_norm_time_major(bn: &BatchNorm, x: Tensor<3>) -> Tensor<3> {
    let [b, t, c] = x.dims();
    let rows = x.reshape([b * t, c]);
    if rows.device().is_autodiff()
        && bn.training.is_enabled()
        && let Some((y, mean, variance)) =
            crate::kernels::batch_norm_rows(rows.clone(), bn.gamma.val(), bn.beta.val(), bn.epsilon)
    {
        let device = y.device();
        let m = bn.momentum;
        let running_mean = bn.running_mean.value_sync().to_device(&device);
        let running_var = bn.running_var.value_sync().to_device(&device);
        bn.running_mean.update(
            running_mean
                .mul_scalar(1.0 - m)
                .add(mean.detach().mul_scalar(m))
                .detach(),
        );
        bn.running_var.update(
            running_var
                .mul_scalar(1.0 - m)
                .add(variance.detach().mul_scalar(m))
                .detach(),
        );
        return y.reshape([b, t, c]);
    }
    bn.forward(rows).reshape([b, t, c])
}

/// `[mean | max]` over the valid frames of `h [b, t, c]` -> `[b, 2c]` (on flex the
/// ReLU before it and this are one fused kernel, [`crate::kernels::summary`]).
fn summary(h: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
    Tensor::cat(
        vec![
            masked_mean_time(h.clone(), mask.clone()),
            masked_max_time(h, mask),
        ],
        1,
    )
}

impl Cnn {
    /// The mask after one pooling step: a pooled step is valid when any of its frames is.
    fn pool_mask(&self, mask: Tensor<2>) -> Tensor<2> {
        pool2(mask.unsqueeze_dim::<3>(2)).squeeze_dim::<2>(2)
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

    /// A block followed by max-pooling by 2 (ReLU and pooling fused on flex).
    fn pooled_block(&self, conv: &Conv1d, bn: &BatchNorm, x: Tensor<3>) -> Tensor<3> {
        let y = batch_norm_time_major(bn, conv_time_major(conv, x));
        crate::kernels::relu_max_pool2(y.clone()).unwrap_or_else(|| pool2(self.relu.forward(y)))
    }

    pub fn forward(&self, input: &Input, p: f64, rng: Option<&mut StdRng>) -> Tensor<2> {
        let x = input.x.clone(); // [b, t, coeffs]: time-major throughout
        let x = self.pooled_block(&self.conv1, &self.bn1, x);
        let mask = self.pool_mask(input.mask.clone());
        let x = self.pooled_block(&self.conv2, &self.bn2, x);
        let mask = self.pool_mask(mask);
        let h = batch_norm_time_major(&self.bn3, conv_time_major(&self.conv3, x)); // [b, t', c]
        let pooled = crate::kernels::relu_mean_max_time(h.clone(), mask.clone())
            .unwrap_or_else(|| summary(self.relu.forward(h), mask));
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
            let a = pool2(x.clone().swap_dims(1, 2)).swap_dims(1, 2).into_data();
            let b = pool.forward(x).into_data();
            assert_eq!(a, b, "t = {t}");
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    /// The fused convolution and ReLU-pooling against their compositions of framework
    /// operations: same values, same gradients for the input, the weights and the bias.
    #[test]
    fn fused_convolution_and_pooling_match_the_composed_ones() {
        let device = Device::flex().autodiff();
        let (b, t, c, out) = (3, 11, 4, 6);
        let layer = conv(c, out, 5, &device);
        let x: Vec<f32> = (0..b * t * c).map(|i| (i as f32 * 0.61).sin()).collect();
        let w: Vec<f32> = (0..b * (t / 2) * out)
            .map(|i| (i as f32 * 0.23).cos())
            .collect();
        let run = |fused: bool| {
            let x = Tensor::<3>::from_data(TensorData::new(x.clone(), [b, t, c]), &device)
                .require_grad();
            let y = if fused {
                // The kernels themselves, not a path that could fall back to the composition.
                let y = crate::kernels::conv1d_time_major(
                    x.clone(),
                    layer.weight.val(),
                    layer.bias.as_ref().unwrap().val(),
                )
                .expect("flex runs the fused convolution");
                crate::kernels::relu_max_pool2(y).unwrap()
            } else {
                pool2(Relu::new().forward(conv_composed(&layer, x.clone())))
            };
            let loss = (y.clone()
                * Tensor::<3>::from_data(TensorData::new(w.clone(), [b, t / 2, out]), &device))
            .sum();
            let grads = loss.backward();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(layer.weight.val().grad(&grads).unwrap()),
                values(layer.bias.as_ref().unwrap().val().grad(&grads).unwrap()),
            )
        };
        let (fused, composed) = (run(true), run(false));
        for (name, a, b) in [
            ("y", &fused.0, &composed.0),
            ("dx", &fused.1, &composed.1),
            ("dW", &fused.2, &composed.2),
            ("db", &fused.3, &composed.3),
        ] {
            crate::arch::assert_agree(name, a, b, 1e-4);
        }
    }

    /// The fused ReLU + masked mean and maximum against the composition: same values, same
    /// input gradient, with padded frames (holding large values), a fully valid sequence
    /// and channels that are never positive.
    #[test]
    fn fused_summary_matches_the_composed_one() {
        let device = Device::flex().autodiff();
        let (b, t, c) = (3, 6, 4);
        let h: Vec<f32> = (0..b * t * c)
            .map(|i| (i as f32 * 0.71).sin() * 2.0 - if i % c == 3 { 3.0 } else { 0.0 })
            .collect();
        let lengths = [6, 2, 4];
        let mask: Vec<f32> = (0..b * t)
            .map(|i| f32::from(u8::from(i % t < lengths[i / t])))
            .collect();
        let w: Vec<f32> = (0..b * 2 * c).map(|i| (i as f32 * 0.37).cos()).collect();
        let run = |fused: bool| {
            let h = Tensor::<3>::from_data(TensorData::new(h.clone(), [b, t, c]), &device)
                .require_grad();
            let mask = Tensor::<2>::from_data(TensorData::new(mask.clone(), [b, t]), &device);
            let y = if fused {
                crate::kernels::relu_mean_max_time(h.clone(), mask)
                    .expect("flex runs the fused summary")
            } else {
                summary(Relu::new().forward(h.clone()), mask)
            };
            let loss = (y.clone()
                * Tensor::<2>::from_data(TensorData::new(w.clone(), [b, 2 * c]), &device))
            .sum();
            let grads = loss.backward();
            (values(y), values(h.grad(&grads).unwrap()))
        };
        let (fused, composed) = (run(true), run(false));
        for (name, a, b) in [("y", &fused.0, &composed.0), ("dh", &fused.1, &composed.1)] {
            crate::arch::assert_agree(name, a, b, 1e-5);
        }
    }

    /// The fused batch norm against `BatchNorm::forward` in training: same output, same
    /// gradients for the input, gamma and beta, same running statistics afterwards.
    #[test]
    fn fused_batch_norm_matches_burns_batch_norm() {
        let device = Device::flex().autodiff();
        let (b, t, c) = (3, 7, 5);
        let x: Vec<f32> = (0..b * t * c)
            .map(|i| (i as f32 * 0.43).sin() * 3.0 + 1.0)
            .collect();
        let w: Vec<f32> = (0..b * t * c).map(|i| (i as f32 * 0.19).cos()).collect();
        let run = |fused: bool| {
            let bn = BatchNormConfig::new(c).init(&device);
            let x = Tensor::<3>::from_data(TensorData::new(x.clone(), [b, t, c]), &device)
                .require_grad();
            let y = if fused {
                // The fused path must be the one taken here (no silent fall-back).
                assert!(
                    crate::kernels::batch_norm_rows(
                        x.clone().detach().reshape([b * t, c]),
                        bn.gamma.val(),
                        bn.beta.val(),
                        bn.epsilon
                    )
                    .is_some()
                );
                batch_norm_time_major(&bn, x.clone())
            } else {
                bn.forward(x.clone().reshape([b * t, c])).reshape([b, t, c])
            };
            let loss = (y.clone()
                * Tensor::<3>::from_data(TensorData::new(w.clone(), [b, t, c]), &device))
            .sum();
            let grads = loss.backward();
            vec![
                values(y),
                values(x.grad(&grads).unwrap()),
                values(bn.gamma.val().grad(&grads).unwrap()),
                values(bn.beta.val().grad(&grads).unwrap()),
                values(bn.running_mean.value_sync()),
                values(bn.running_var.value_sync()),
            ]
        };
        let (fused, burn) = (run(true), run(false));
        let names = ["y", "dx", "dgamma", "dbeta", "running mean", "running var"];
        for ((name, a), b) in names.iter().zip(&fused).zip(&burn) {
            crate::arch::assert_agree(name, a, b, 1e-4);
        }
    }

    #[test]
    fn time_major_convolution_equals_conv1d() {
        let device = Device::flex();
        for (input, output, kernel, t) in [(13, 8, 5, 9), (4, 6, 3, 1), (3, 2, 4, 7)] {
            let layer = conv(input, output, kernel, &device);
            let data: Vec<f32> = (0..2 * input * t)
                .map(|i| ((i * 7919) % 37) as f32 / 9.0 - 2.0)
                .collect();
            let x = Tensor::<3>::from_data(TensorData::new(data, [2, input, t]), &device);
            let want = layer
                .forward(x.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let got = conv_time_major(&layer, x.swap_dims(1, 2))
                .swap_dims(1, 2)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            assert_eq!(want.len(), got.len());
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() < 1e-4, "kernel {kernel}: {a} vs {b}");
            }
        }
    }
}
