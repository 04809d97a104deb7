//! Emotional speech corpora in their real layouts, the built-in synthetic corpus, client
//! partitions and the feature cache: everything between recordings on disk and per-client
//! datasets.

pub mod cache;
pub mod corpus;
pub mod features;
pub mod loaders;
pub mod partition;
pub mod synthetic;

pub use corpus::{AudioSource, Corpus, CorpusError, Gender, SpeakerSummary, Utterance};
