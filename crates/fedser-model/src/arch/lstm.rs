//! LSTM over the frame sequence, honouring each utterance's true length: the forward
//! direction is causal (padding at the end cannot reach valid steps), the backward direction
//! runs on each sequence reversed within its own length, and pooling averages valid steps
//! only — padding never contributes.

use burn::nn::{Linear, LinearConfig, LstmConfig};
use burn::prelude::*;
use rand::rngs::StdRng;

use super::{ModelSpec, dropout, masked_mean_time};
use crate::batch::Input;

#[derive(Module, Debug)]
pub struct Lstm {
    encoder: LengthAwareLstm,
    head: Linear,
}

/// A (bi)directional LSTM whose backward pass respects true lengths.
#[derive(Module, Debug)]
pub struct LengthAwareLstm {
    fwd: burn::nn::Lstm,
    bwd: Option<burn::nn::Lstm>,
}

impl LengthAwareLstm {
    pub fn init(inputs: usize, hidden: usize, bidirectional: bool, device: &Device) -> Self {
        Self {
            fwd: LstmConfig::new(inputs, hidden, true).init(device),
            bwd: bidirectional.then(|| LstmConfig::new(inputs, hidden, true).init(device)),
        }
    }

    /// Output width: hidden size × directions.
    pub fn width(&self) -> usize {
        self.fwd.d_hidden * if self.bwd.is_some() { 2 } else { 1 }
    }

    /// `x [b, t, c]` -> `[b, t, width]`; steps beyond a sequence's length hold garbage that
    /// callers mask out.
    pub fn forward(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let (h_fwd, _) = self.fwd.forward(x.clone(), None);
        let Some(bwd) = &self.bwd else { return h_fwd };
        let device = x.device();
        let [_, t, c] = x.dims();
        let x_rev = x.gather(1, reverse_index(lengths, t, c, &device));
        let (h_rev, _) = bwd.forward(x_rev, None);
        let h_bwd = h_rev.gather(1, reverse_index(lengths, t, self.fwd.d_hidden, &device));
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
