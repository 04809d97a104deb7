//! The LSTM-Transformer hybrid of the seed paper's literature review: a length-aware LSTM,
//! then one transformer encoder layer attending over its outputs (padding masked out of the
//! keys), then mean pooling over valid steps and a linear classifier.

use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use rand::rngs::StdRng;

use super::lstm::LengthAwareLstm;
use super::{ModelSpec, dropout, masked_mean_time};
use crate::batch::Input;

#[derive(Module, Debug)]
pub struct LstmTransformer {
    lstm: LengthAwareLstm,
    encoder: TransformerEncoder,
    head: Linear,
}

impl LstmTransformer {
    pub fn init(spec: &ModelSpec, device: &Device) -> Self {
        let lstm = LengthAwareLstm::init(spec.n_features, spec.hidden, spec.bidirectional, device);
        let width = lstm.width();
        // Attention dropout 0: our own dropout (seeded) acts before the classifier.
        let encoder = TransformerEncoderConfig::new(width, 2 * width, spec.heads, 1)
            .with_dropout(0.0)
            .init(device);
        let head = LinearConfig::new(width, spec.n_classes).init(device);
        Self {
            lstm,
            encoder,
            head,
        }
    }

    pub fn forward(&self, input: &Input, p: f64, rng: Option<&mut StdRng>) -> Tensor<2> {
        let h = self.lstm.forward(input.x.clone(), &input.lengths);
        let padding = input.mask.clone().lower_elem(0.5); // true where padded
        let h = self
            .encoder
            .forward(TransformerEncoderInput::new(h).mask_pad(padding));
        let pooled = masked_mean_time(h, input.mask.clone());
        self.head.forward(dropout(pooled, p, rng))
    }
}
