//! The participant: what makes a device a member of a federation. A device's own recordings
//! become features, the features are normalised with statistics the device computes itself,
//! and a model of the federation's architecture trains and evaluates on them behind
//! [`fedser_fl::Client`]. The in-process simulation, `fedser client` and any later node use
//! this one implementation, so a device behaves the same everywhere.
//!
//! - [`dataset`]: a corpus turned into labelled feature matrices; the normalisation modes and
//!   what a model file records about them.
//! - [`model_file`]: the metadata a model file carries besides its weights (front end,
//!   normalisation, training settings) and how it is read back.
//! - [`participant`]: [`SpeechClient`], local training and evaluation of the model it is sent.
//! - [`robustness`]: a model scored clean and under recording-chain perturbations.
//! - [`settings`]: what a server tells its participants on hello.
//! - [`store`]: a client's data in one file, read only while the client works.

pub mod dataset;
pub mod model_file;
pub mod participant;
pub mod robustness;
pub mod settings;
pub mod store;

pub use dataset::{Featured, Norm, NormRecord};
pub use model_file::ModelMeta;
pub use participant::{Held, LocalData, SpeechClient, evaluate_examples, model_with};
pub use settings::ParticipantSettings;

/// Why the participant could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Model(#[from] fedser_model::ModelError),
    #[error(transparent)]
    Train(#[from] fedser_model::TrainError),
    #[error(transparent)]
    Params(#[from] fedser_core::ParamError),
    #[error("speaker {speaker:?} is not in the {corpus} corpus")]
    UnknownSpeaker { speaker: String, corpus: String },
    #[error("no utterance of the corpus could be turned into features")]
    NoFeatures,
    #[error("feature matrices of different widths: {0} and {1} coefficients")]
    Widths(usize, usize),
    #[error(transparent)]
    Mfcc(#[from] fedser_audio::MfccError),
}

impl ClientError {
    pub(crate) fn file(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}
