//! The emotion models and their local training, on Burn 0.22 (CPU backend `flex`, autodiff).
//! The only crate that knows the deep-learning framework: everything leaves it as a
//! [`fedser_core::ParamSet`].
//!
//! - [`arch`]: DNN (MLP on utterance statistics), CNN (1-D convolutions over time), LSTM
//!   (length-aware, optionally bidirectional) and the LSTM-Transformer hybrid.
//! - [`batch`]: feature matrices to padded tensors with masks and lengths.
//! - [`model`]: one type over the four architectures; parameters in and out as `ParamSet`.
//! - [`kernels`]: fused CPU kernels (the LSTM recurrence) with their own backward pass.
//! - [`train`]: mini-batch training with early stopping, class weights, NaN detection.
//!
//! Each model computes on the thread that calls it (flex without rayon): parallelism comes
//! from training several clients at once.

pub mod arch;
pub mod batch;
pub mod kernels;
pub mod model;
mod params;
pub mod train;

pub use arch::{Arch, ModelSpec};
pub use batch::Example;
pub use model::{EmotionModel, ModelError};
pub use train::{
    History, Optimizer, Proximal, TrainConfig, TrainError, argmax, evaluate, evaluate_with_loss,
    predict, train, train_near,
};
