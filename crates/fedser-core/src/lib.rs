//! Shared vocabulary of fedser: the emotion classes and the feature matrix every other crate
//! agrees on.
//!
//! The five classes are `neutral, happy, angry, sad, fear`, in that order everywhere
//! (model outputs, confusion matrices, files).

mod emotion;
mod features;

pub use emotion::{Emotion, UnknownEmotion};
pub use features::{FeatureMatrix, ShapeMismatch};
