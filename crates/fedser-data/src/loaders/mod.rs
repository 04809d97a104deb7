//! One loader per corpus layout, and [`load`] to pick one by name.

pub mod crema_d;
pub mod emodb;
pub mod iemocap;
pub mod manifest;
pub mod ravdess;

use std::path::Path;

use crate::corpus::{Corpus, CorpusError};
use crate::synthetic::{self, SyntheticConfig};

pub use crema_d::CremaLabels;
pub use iemocap::IemocapOptions;

/// The corpora fedser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorpusKind {
    CremaD,
    Iemocap,
    Ravdess,
    Emodb,
    Manifest,
    Synthetic,
}

impl std::str::FromStr for CorpusKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "crema-d" | "cremad" | "crema" => Ok(CorpusKind::CremaD),
            "iemocap" => Ok(CorpusKind::Iemocap),
            "ravdess" => Ok(CorpusKind::Ravdess),
            "emodb" | "emo-db" => Ok(CorpusKind::Emodb),
            "manifest" | "csv" => Ok(CorpusKind::Manifest),
            "synthetic" | "synth" => Ok(CorpusKind::Synthetic),
            _ => Err(format!(
                "unknown corpus {s:?} (expected crema-d, iemocap, ravdess, emodb, manifest or synthetic)"
            )),
        }
    }
}

/// Loader options for the corpora that have any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    pub crema_labels: CremaLabels,
    pub iemocap: IemocapOptions,
    pub synthetic: SyntheticConfig,
}

/// Loads a corpus; `data` is its root folder (or the manifest file). The synthetic corpus
/// needs no data.
pub fn load(
    kind: CorpusKind,
    data: Option<&Path>,
    opts: &LoadOptions,
) -> Result<Corpus, CorpusError> {
    let need = |data: Option<&Path>| -> Result<std::path::PathBuf, CorpusError> {
        let path = data.ok_or_else(|| CorpusError::NeedsData(format!("{kind:?}")))?;
        if !path.exists() {
            return Err(CorpusError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
        Ok(path.to_owned())
    };
    match kind {
        CorpusKind::CremaD => crema_d::load(&need(data)?, opts.crema_labels),
        CorpusKind::Iemocap => iemocap::load(&need(data)?, opts.iemocap),
        CorpusKind::Ravdess => ravdess::load(&need(data)?),
        CorpusKind::Emodb => emodb::load(&need(data)?),
        CorpusKind::Manifest => manifest::load(&need(data)?),
        CorpusKind::Synthetic => synthetic::corpus(&opts.synthetic),
    }
}
