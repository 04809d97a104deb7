//! The four architectures, their shared settings, and small building blocks (masked pooling,
//! dropout drawn from the caller's seeded generator).

mod cnn;
mod dnn;
mod lstm;
mod lstm_transformer;

pub use cnn::Cnn;
pub use dnn::Dnn;
pub use lstm::Lstm;
pub use lstm_transformer::LstmTransformer;

use burn::prelude::*;
use rand::RngExt;
use rand::rngs::StdRng;

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// MLP on utterance-level MFCC statistics (mean, std, delta mean, delta std).
    Dnn,
    /// 1-D convolutions over time with batch norm and pooling, masked global pooling.
    Cnn,
    /// LSTM over the frames (bidirectional by default), length-aware mean pooling.
    Lstm,
    /// LSTM, then a transformer encoder over its outputs (padding masked), mean pooling.
    LstmTransformer,
}

impl Arch {
    /// Name as written in files and flags.
    /// Whether the model reads the frames ([`crate::batch::Input::x`], `mask`, `lengths`);
    /// batching skips what a model does not read.
    pub fn reads_frames(self) -> bool {
        !matches!(self, Arch::Dnn)
    }

    /// Whether the model reads the utterance statistics ([`crate::batch::Input::stats`]).
    pub fn reads_stats(self) -> bool {
        matches!(self, Arch::Dnn)
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Dnn => "dnn",
            Arch::Cnn => "cnn",
            Arch::Lstm => "lstm",
            Arch::LstmTransformer => "lstm-transformer",
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "dnn" | "mlp" => Ok(Arch::Dnn),
            "cnn" => Ok(Arch::Cnn),
            "lstm" => Ok(Arch::Lstm),
            "lstm-transformer" | "transformer" => Ok(Arch::LstmTransformer),
            _ => Err(format!(
                "unknown architecture {s:?} (expected dnn, cnn, lstm or lstm-transformer)"
            )),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that fixes a model's shape. Stored in model files.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub arch: Arch,
    /// Coefficients per frame (13 MFCCs).
    pub n_features: usize,
    /// Output classes (5 emotions).
    pub n_classes: usize,
    /// Width: DNN first hidden layer, CNN last channel count, LSTM hidden size per direction.
    pub hidden: usize,
    /// Dropout probability before the classifier (and between DNN layers).
    pub dropout: f64,
    /// LSTM models: run the sequence both ways.
    pub bidirectional: bool,
    /// LSTM-Transformer: attention heads (must divide the LSTM output width).
    pub heads: usize,
    /// Longest sequence seen at once (frames; longer utterances are cropped).
    pub max_frames: usize,
}

impl ModelSpec {
    /// Small, laptop-friendly defaults for `arch`.
    pub fn new(arch: Arch) -> Self {
        Self {
            arch,
            n_features: 13,
            n_classes: fedser_core::Emotion::COUNT,
            hidden: match arch {
                Arch::Dnn => 128,
                Arch::Cnn => 64,
                Arch::Lstm | Arch::LstmTransformer => 64,
            },
            dropout: 0.3,
            bidirectional: true,
            heads: 4,
            max_frames: 400,
        }
    }

    /// Checks sizes before any tensor is made.
    pub fn validate(&self) -> Result<(), String> {
        if self.n_features == 0 || self.n_classes < 2 || self.hidden == 0 || self.max_frames < 4 {
            return Err(format!("invalid model sizes: {self:?}"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must lie in [0, 1), got {}", self.dropout));
        }
        if self.arch == Arch::LstmTransformer {
            let width = self.hidden * if self.bidirectional { 2 } else { 1 };
            if self.heads == 0 || !width.is_multiple_of(self.heads) {
                return Err(format!(
                    "{} attention heads do not divide the LSTM width {width}",
                    self.heads
                ));
            }
        }
        Ok(())
    }
}

/// Inverted dropout with a mask drawn from `rng`; identity when `rng` is `None` (evaluation).
/// Drawing the mask ourselves keeps training reproducible when several models train at once
/// (flex's own generator is one per process).
pub fn dropout<const D: usize>(x: Tensor<D>, p: f64, rng: Option<&mut StdRng>) -> Tensor<D> {
    let Some(rng) = rng else { return x };
    if p <= 0.0 {
        return x;
    }
    let dims = x.dims();
    let n: usize = dims.iter().product();
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    let mask: Vec<f32> = (0..n)
        .map(|_| {
            if rng.random::<f64>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect();
    let device = x.device();
    x * Tensor::<D>::from_data(TensorData::new(mask, dims), &device)
}

/// Mean over valid time steps: `h [b, t, c]`, `mask [b, t]` -> `[b, c]`.
pub fn masked_mean_time(h: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
    let m = mask.unsqueeze_dim::<3>(2);
    let sum = (h * m.clone()).sum_dim(1);
    let count = m.sum_dim(1).clamp_min(1.0);
    (sum / count).squeeze_dim::<2>(1)
}

/// Maximum over valid time steps: `h [b, t, c]`, `mask [b, t]` -> `[b, c]`.
pub fn masked_max_time(h: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
    // Padding gets a large negative offset so it never wins the max.
    let offset = (mask.unsqueeze_dim::<3>(2) - 1.0) * 1e4;
    (h + offset).max_dim(1).squeeze_dim::<2>(1)
}

/// Test helper: `fused` and `reference` (named `name`) have the same length, the fused values
/// are not all zero (a silent no-op cannot pass), and they agree within `tol` everywhere.
#[cfg(test)]
pub(crate) fn assert_agree(name: &str, fused: &[f32], reference: &[f32], tol: f32) {
    assert_eq!(fused.len(), reference.len(), "{name}");
    assert!(fused.iter().any(|v| *v != 0.0), "{name} is all zero");
    for (i, (u, v)) in fused.iter().zip(reference).enumerate() {
        assert!(
            (u - v).abs() < tol,
            "{name}[{i}]: fused {u} vs reference {v}"
        );
    }
}
