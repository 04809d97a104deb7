//! What a model file carries besides its weights, so that `evaluate` and `predict` compute
//! features exactly as the model was trained: the front end, the normalisation, the training
//! settings and the speakers held out from training. The weights and the architecture are
//! fedser-model's business; these are extra metadata entries of the same safetensors file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fedser_audio::FrontEndConfig;
use fedser_model::EmotionModel;
use fedser_model::model::train_device;

use crate::ClientError;
use crate::dataset::NormRecord;

/// Metadata keys of a model file.
pub const META_FRONT_END: &str = "fedser.front_end";
pub const META_NORM: &str = "fedser.normalisation";
pub const META_TRAIN: &str = "fedser.train_config";
pub const META_TEST_SPEAKERS: &str = "fedser.test_speakers";

/// The metadata of a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    pub front_end: FrontEndConfig,
    pub norm: NormRecord,
    /// The training settings as JSON (their shape depends on who trained: `train` or a run).
    pub train: Option<String>,
    /// Speakers held out from training (empty: not recorded).
    pub test_speakers: Vec<String>,
}

impl ModelMeta {
    /// `train` is any serialisable description of the training settings; one that does not
    /// serialise is an error, never a model file silently without them.
    pub fn new(
        front_end: FrontEndConfig,
        norm: NormRecord,
        train: &impl serde::Serialize,
        test_speakers: Vec<String>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            front_end,
            norm,
            train: Some(serde_json::to_string(train)?),
            test_speakers,
        })
    }

    /// The entries written into the file.
    pub fn to_entries(&self) -> BTreeMap<String, String> {
        let mut meta = BTreeMap::new();
        meta.insert(META_FRONT_END.to_string(), json(&self.front_end));
        meta.insert(META_NORM.to_string(), json(&self.norm));
        if let Some(t) = &self.train {
            meta.insert(META_TRAIN.to_string(), t.clone());
        }
        if !self.test_speakers.is_empty() {
            meta.insert(META_TEST_SPEAKERS.to_string(), json(&self.test_speakers));
        }
        meta
    }

    /// Reads the entries back; `file` names the file in errors.
    pub fn from_entries(meta: &BTreeMap<String, String>, file: &Path) -> Result<Self, ClientError> {
        Ok(Self {
            front_end: parse(meta, META_FRONT_END, file)?,
            norm: parse(meta, META_NORM, file)?,
            train: meta.get(META_TRAIN).cloned(),
            test_speakers: match meta.get(META_TEST_SPEAKERS) {
                Some(_) => parse(meta, META_TEST_SPEAKERS, file)?,
                None => Vec::new(),
            },
        })
    }
}

/// JSON text of a value that always serialises (plain data, string keys).
pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(
    meta: &BTreeMap<String, String>,
    key: &str,
    file: &Path,
) -> Result<T, ClientError> {
    let text = meta
        .get(key)
        .ok_or_else(|| ClientError::file(file, format!("the model file lacks {key}")))?;
    serde_json::from_str(text).map_err(|e| ClientError::file(file, format!("bad {key}: {e}")))
}

/// The model file a path names: the file itself, or `model.safetensors` /
/// `global.safetensors` in a folder.
pub fn model_file(path: &Path) -> Result<PathBuf, ClientError> {
    if path.is_dir() {
        for name in ["model.safetensors", "global.safetensors"] {
            if path.join(name).is_file() {
                return Ok(path.join(name));
            }
        }
        return Err(ClientError::file(
            path,
            "no model.safetensors or global.safetensors in this folder",
        ));
    }
    Ok(path.to_path_buf())
}

/// Writes `model` with its metadata (fsync + rename, by fedser-model).
pub fn save(model: &EmotionModel, path: &Path, meta: &ModelMeta) -> Result<(), ClientError> {
    Ok(model.save(path, &meta.to_entries())?)
}

/// A model and its metadata from a file or a run/train folder.
pub fn load(path: &Path) -> Result<(EmotionModel, ModelMeta), ClientError> {
    let file = model_file(path)?;
    let (model, meta) = EmotionModel::load(&file, &train_device())?;
    let meta = ModelMeta::from_entries(&meta, &file)?;
    Ok((model, meta))
}
