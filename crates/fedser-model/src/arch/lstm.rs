//! LSTM over the frame sequence, honouring each utterance's true length: the forward
//! direction is causal (padding at the end cannot reach valid steps), the backward direction
//! runs on each sequence reversed within its own length, and pooling averages valid steps
//! only — padding never contributes.
//!
//! The cell is written out here rather than taken from `burn::nn::Lstm`, for speed on the CPU
//! (profiled: see the README). On the flex backend the whole recurrence, forward and backward,
//! is one fused kernel ([`crate::kernels::lstm`]): one input product for all steps, one
//! recurrent product per step, vectorised gate functions, and the weight gradients as two
//! products over all steps. Elsewhere (GPU builds) the cell is composed of framework
//! operations: one input and one hidden product per step over all four gates, the steps
//! collected and stacked once (Burn's own cell does eight small products per step and copies
//! the whole output with `slice_assign` every step). Both compute the same function (tested,
//! values and gradients).

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use rand::rngs::StdRng;

use super::{ModelSpec, dropout, masked_mean_time};
use crate::batch::Input;

#[derive(Module, Debug)]
pub struct Lstm {
    encoder: LengthAwareLstm,
    head: Linear,
}

/// One LSTM direction: gates `[i, f, o, g] = x W_x + b + h W_h`, `c = f c + i g`,
/// `h = o tanh(c)` (the standard cell, as in PyTorch's `nn.LSTM`).
#[derive(Module, Debug)]
pub struct LstmCell {
    /// `[inputs, 4 hidden]` with the bias.
    input: Linear,
    /// `[hidden, 4 hidden]`, no bias.
    hidden: Linear,
}

/// `tanh(x) = 2 sigmoid(2x) - 1`.
fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x.mul_scalar(2.0)).mul_scalar(2.0).sub_scalar(1.0)
}

impl LstmCell {
    fn init(inputs: usize, hidden: usize, device: &Device) -> Self {
        // PyTorch's initialisation: uniform in ±1/sqrt(hidden).
        let k = 1.0 / (hidden as f64).sqrt();
        let uniform = Initializer::Uniform { min: -k, max: k };
        Self {
            input: LinearConfig::new(inputs, 4 * hidden)
                .with_initializer(uniform.clone())
                .init(device),
            hidden: LinearConfig::new(hidden, 4 * hidden)
                .with_bias(false)
                .with_initializer(uniform)
                .init(device),
        }
    }

    fn d_hidden(&self) -> usize {
        self.hidden.weight.dims()[0]
    }

    /// `x [b, t, c]` -> `[b, t, hidden]`: the fused kernel where the backend has it, else
    /// the composed cell.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let bias = match &self.input.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([4 * self.d_hidden()], &x.device()),
        };
        crate::kernels::lstm_sequence(
            x.clone(),
            self.input.weight.val(),
            bias,
            self.hidden.weight.val(),
        )
        .unwrap_or_else(|| self.forward_composed(x))
    }

    /// The cell composed of framework operations. `x` should not need gradients (it is the
    /// model's input): each step takes a slice of it, and a slice's gradient is a full-size
    /// tensor.
    fn forward_composed(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, _, _] = x.dims();
        let n = self.d_hidden();
        let device = x.device();
        let mut h = Tensor::<2>::zeros([b, n], &device);
        let mut c = Tensor::<2>::zeros([b, n], &device);
        let mut outputs = Vec::with_capacity(x.dims()[1]);
        for x_t in x.iter_dim(1) {
            let gates = self.input.forward(x_t.squeeze_dim::<2>(1)) + self.hidden.forward(h);
            let ifo = sigmoid(gates.clone().slice([0..b, 0..3 * n]));
            let g = tanh(gates.slice([0..b, 3 * n..4 * n]));
            let i = ifo.clone().slice([0..b, 0..n]);
            let f = ifo.clone().slice([0..b, n..2 * n]);
            let o = ifo.slice([0..b, 2 * n..3 * n]);
            c = f * c + i * g;
            h = o * tanh(c.clone());
            outputs.push(h.clone());
        }
        Tensor::stack(outputs, 1)
    }
}

/// A (bi)directional LSTM whose backward pass respects true lengths.
#[derive(Module, Debug)]
pub struct LengthAwareLstm {
    fwd: LstmCell,
    bwd: Option<LstmCell>,
}

impl LengthAwareLstm {
    pub fn init(inputs: usize, hidden: usize, bidirectional: bool, device: &Device) -> Self {
        Self {
            fwd: LstmCell::init(inputs, hidden, device),
            bwd: bidirectional.then(|| LstmCell::init(inputs, hidden, device)),
        }
    }

    /// Output width: hidden size × directions.
    pub fn width(&self) -> usize {
        self.fwd.d_hidden() * if self.bwd.is_some() { 2 } else { 1 }
    }

    /// `x [b, t, c]` -> `[b, t, width]`; steps beyond a sequence's length hold garbage that
    /// callers mask out.
    pub fn forward(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let h_fwd = self.fwd.forward(x.clone());
        let Some(bwd) = &self.bwd else { return h_fwd };
        let device = x.device();
        let [_, t, c] = x.dims();
        let x_rev = x.gather(1, reverse_index(lengths, t, c, &device));
        let h_rev = bwd.forward(x_rev);
        let h_bwd = h_rev.gather(1, reverse_index(lengths, t, self.fwd.d_hidden(), &device));
        Tensor::cat(vec![h_fwd, h_bwd], 2)
    }
}

/// Index `[b, t, width]` reversing each row within its length (padding stays in place); the
/// map is its own inverse.
fn reverse_index(
    lengths: &[usize],
    frames: usize,
    width: usize,
    device: &Device,
) -> Tensor<3, Int> {
    let mut idx = Vec::with_capacity(lengths.len() * frames);
    for &len in lengths {
        let len = len.min(frames);
        for t in 0..frames {
            idx.push(if t < len {
                (len - 1 - t) as i64
            } else {
                t as i64
            });
        }
    }
    Tensor::<2, Int>::from_data(TensorData::new(idx, [lengths.len(), frames]), device)
        .unsqueeze_dim::<3>(2)
        .repeat_dim(2, width)
}

impl Lstm {
    pub fn init(spec: &ModelSpec, device: &Device) -> Self {
        let encoder =
            LengthAwareLstm::init(spec.n_features, spec.hidden, spec.bidirectional, device);
        let head = LinearConfig::new(encoder.width(), spec.n_classes).init(device);
        Self { encoder, head }
    }

    pub fn forward(&self, input: &Input, p: f64, rng: Option<&mut StdRng>) -> Tensor<2> {
        let h = self.encoder.forward(input.x.clone(), &input.lengths);
        let pooled = masked_mean_time(h, input.mask.clone());
        self.head.forward(dropout(pooled, p, rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    /// The fused kernel and the composed cell: same hidden states and same gradients of a
    /// loss for every parameter and the input, within 1e-5 (f32 rounding over 9 steps).
    #[test]
    fn fused_cell_matches_the_composed_cell_values_and_gradients() {
        let device = Device::flex().autodiff();
        let (inputs, n, steps, batch) = (3, 5, 9, 4);
        let cell = LstmCell::init(inputs, n, &device);
        let x: Vec<f32> = (0..batch * steps * inputs)
            .map(|i| (i as f32 * 0.37).sin() * 1.5)
            .collect();
        let w: Vec<f32> = (0..batch * steps * n)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let run = |fused: bool| {
            let x =
                Tensor::<3>::from_data(TensorData::new(x.clone(), [batch, steps, inputs]), &device)
                    .require_grad();
            let h = if fused {
                crate::kernels::lstm_sequence(
                    x.clone(),
                    cell.input.weight.val(),
                    cell.input.bias.as_ref().unwrap().val(),
                    cell.hidden.weight.val(),
                )
                .expect("flex runs the fused LSTM")
            } else {
                cell.forward_composed(x.clone())
            };
            let loss = (h.clone()
                * Tensor::<3>::from_data(TensorData::new(w.clone(), [batch, steps, n]), &device))
            .sum();
            let grads = loss.backward();
            let grad = |t: &Tensor<2>| values(t.grad(&grads).unwrap());
            (
                values(h),
                values(x.grad(&grads).unwrap()),
                grad(&cell.input.weight.val()),
                values(
                    cell.input
                        .bias
                        .as_ref()
                        .unwrap()
                        .val()
                        .grad(&grads)
                        .unwrap(),
                ),
                grad(&cell.hidden.weight.val()),
            )
        };
        let (fused, composed) = (run(true), run(false));
        let pairs = [
            ("h", &fused.0, &composed.0),
            ("dx", &fused.1, &composed.1),
            ("dWx", &fused.2, &composed.2),
            ("db", &fused.3, &composed.3),
            ("dWh", &fused.4, &composed.4),
        ];
        for (name, a, b) in pairs {
            crate::arch::assert_agree(name, a, b, 1e-5);
        }
    }

    /// The cell against the LSTM equations written out in plain arithmetic.
    #[test]
    fn cell_matches_the_lstm_equations() {
        let device = Device::flex();
        let (inputs, n, steps) = (2, 3, 4);
        let cell = LstmCell::init(inputs, n, &device);
        let wx = values(cell.input.weight.val()); // [inputs, 4n]
        let bx = values(cell.input.bias.as_ref().unwrap().val());
        let wh = values(cell.hidden.weight.val()); // [n, 4n]
        let x: Vec<f32> = (0..steps * inputs)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let out = values(cell.forward(Tensor::<3>::from_data(
            TensorData::new(x.clone(), [1, steps, inputs]),
            &device,
        )));
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (mut h, mut c) = (vec![0f32; n], vec![0f32; n]);
        for t in 0..steps {
            let gate = |k: usize| -> Vec<f32> {
                (0..n)
                    .map(|j| {
                        let col = k * n + j;
                        let mut z = bx[col];
                        for i in 0..inputs {
                            z += x[t * inputs + i] * wx[i * 4 * n + col];
                        }
                        for (m, hm) in h.iter().enumerate() {
                            z += hm * wh[m * 4 * n + col];
                        }
                        z
                    })
                    .collect()
            };
            let (i, f, o, g) = (gate(0), gate(1), gate(2), gate(3));
            for j in 0..n {
                c[j] = sig(f[j]) * c[j] + sig(i[j]) * g[j].tanh();
                h[j] = sig(o[j]) * c[j].tanh();
            }
            for j in 0..n {
                let got = out[t * n + j];
                assert!(
                    (got - h[j]).abs() < 1e-5,
                    "step {t} unit {j}: {got} vs {}",
                    h[j]
                );
            }
        }
    }
}
