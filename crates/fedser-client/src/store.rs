//! A client's data in one safetensors file: one `[frames, coeffs]` tensor per recording, the
//! labels and speakers as metadata. The simulation writes each client's file once and the
//! client reads it only while it works, so memory does not grow with the number of clients.
//! Features are stored as extracted: the client normalises them itself when it opens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fedser_core::{FeatureMatrix, ParamSet, ParamTensor};
use fedser_model::Example;

use fedser_fl::{Client, ClientFactory, ClientId};
use fedser_model::{ModelSpec, TrainConfig};

use crate::ClientError;
use crate::dataset::NormRecord;
use crate::participant::{Held, LocalData, SpeechClient};

const PARTS: [&str; 2] = ["train", "val"];

fn labels_key(part: &str) -> String {
    format!("fedser.labels.{part}")
}

fn speakers_key(part: &str) -> String {
    format!("fedser.speakers.{part}")
}

/// The file holding client `id`'s data in a run directory.
pub fn client_file(run_dir: &Path, id: usize) -> PathBuf {
    run_dir
        .join("clients")
        .join(format!("client-{id:05}.safetensors"))
}

/// Writes a client's data (fsync + rename).
pub fn write(path: &Path, data: &LocalData) -> Result<(), ClientError> {
    let mut set = ParamSet::new();
    let mut meta = BTreeMap::new();
    for (part, held) in PARTS.iter().zip([&data.train, &data.val]) {
        for (i, h) in held.iter().enumerate() {
            let m = &h.example.features;
            set.push(
                format!("{part}.{i:05}"),
                ParamTensor::new(vec![m.frames(), m.coeffs()], m.as_slice().to_vec())?,
            )?;
        }
        let labels: Vec<usize> = held.iter().map(|h| h.example.label).collect();
        let speakers: Vec<Option<&str>> = held.iter().map(|h| h.speaker.as_deref()).collect();
        meta.insert(labels_key(part), crate::model_file::json(&labels));
        meta.insert(speakers_key(part), crate::model_file::json(&speakers));
    }
    Ok(set.save(path, &meta)?)
}

/// Reads a client's data back, checking that labels, speakers and tensors agree.
pub fn read(path: &Path) -> Result<LocalData, ClientError> {
    let (set, meta) = ParamSet::load(path)?;
    let bad = |msg: String| ClientError::file(path, msg);
    let mut parts = Vec::with_capacity(2);
    for part in PARTS {
        let labels: Vec<usize> = match meta.get(&labels_key(part)) {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| bad(format!("bad {}: {e}", labels_key(part))))?,
            None => Vec::new(),
        };
        let speakers: Vec<Option<String>> = match meta.get(&speakers_key(part)) {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| bad(format!("bad {}: {e}", speakers_key(part))))?,
            None => vec![None; labels.len()],
        };
        if speakers.len() != labels.len() {
            return Err(bad(format!(
                "{} labels but {} speakers in {part}",
                labels.len(),
                speakers.len()
            )));
        }
        let mut held = Vec::with_capacity(labels.len());
        for (i, (label, speaker)) in labels.into_iter().zip(speakers).enumerate() {
            let name = format!("{part}.{i:05}");
            let t = set
                .get(&name)
                .ok_or_else(|| bad(format!("missing {name}")))?;
            let [frames, coeffs] = t.shape[..] else {
                return Err(bad(format!("{name} is not a matrix")));
            };
            let features = FeatureMatrix::new(frames, coeffs, t.data.clone())
                .map_err(|e| bad(format!("{name}: {e}")))?;
            if label >= fedser_core::Emotion::COUNT {
                return Err(bad(format!("{name}: label {label} is not a class")));
            }
            held.push(Held {
                example: Example { features, label },
                speaker,
            });
        }
        parts.push(held);
    }
    let val = parts.pop().unwrap_or_default();
    let train = parts.pop().unwrap_or_default();
    Ok(LocalData { train, val })
}

/// Opens simulated participants from their files in a run directory: each one reads its own
/// data and normalises it itself, exactly as a device running `fedser client` does.
pub struct StoredClients {
    pub run_dir: PathBuf,
    pub spec: ModelSpec,
    /// Local training settings (epochs, batch size, rate and seed come from each round).
    pub train: TrainConfig,
    pub norm: NormRecord,
}

impl ClientFactory for StoredClients {
    fn open(&self, id: ClientId) -> Result<Box<dyn Client>, String> {
        let data = read(&client_file(&self.run_dir, id)).map_err(|e| e.to_string())?;
        Ok(Box::new(SpeechClient::new(
            self.spec.clone(),
            self.train.clone(),
            data,
            &self.norm,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_data_round_trips_with_speakers_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let held = |v: f32, label, speaker: Option<&str>| Held {
            example: Example {
                features: FeatureMatrix::new(2, 1, vec![v, v + 1.0]).unwrap(),
                label,
            },
            speaker: speaker.map(str::to_string),
        };
        let data = LocalData {
            train: vec![held(1.0, 2, Some("s1")), held(3.0, 0, None)],
            val: vec![held(5.0, 4, Some("s2"))],
        };
        write(&path, &data).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.train.len(), 2);
        assert_eq!(back.val[0].speaker.as_deref(), Some("s2"));
        assert_eq!(back.train[1].speaker, None);
        assert_eq!(back.train[0].example.label, 2);
        assert_eq!(back.val[0].example.features.as_slice(), &[5.0, 6.0]);
        std::fs::write(&path, b"not safetensors").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("c.safetensors"), "{err}");
    }
}
