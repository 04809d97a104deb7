//! Shared vocabulary of fedser: the emotion classes, the feature matrix, model parameters
//! (`ParamSet`, safetensors) and the evaluation metrics every other crate agrees on.
//!
//! The five classes are `neutral, happy, angry, sad, fear`, in that order everywhere
//! (model outputs, confusion matrices, files).

mod emotion;
mod features;
pub mod metrics;
pub mod params;

pub use emotion::{Emotion, UnknownEmotion};
pub use features::{FeatureMatrix, ShapeMismatch};
pub use metrics::{ClassMetrics, ConfusionMatrix, Metrics};
pub use params::{ParamError, ParamSet, ParamTensor};
