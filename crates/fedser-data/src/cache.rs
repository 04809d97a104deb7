//! The feature cache: MFCC matrices computed once, in parallel, stored on disk under a key
//! made of the audio's identity (its bytes, or the synthesiser's parameters) and the full
//! front-end configuration. Changing either gives a new key, so stale features are never read.
//!
//! Files: `<dir>/<key[0..2]>/<key>.fmat`, each `FMAT` + version + frames + coeffs (u32 LE)
//! + row-major f32 LE values, written to a temporary name and renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use fedser_audio::{Audio, FrontEnd, FrontEndConfig, Perturbation, decode_bytes};
use fedser_core::FeatureMatrix;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::corpus::{AudioSource, Corpus};
use crate::synthetic;

/// Bumped whenever the stored format or the meaning of a configuration changes.
const CACHE_VERSION: u32 = 1;
/// Bumped whenever the synthesiser's output for the same parameters changes.
const SYNTH_VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"FMAT";

/// A folder of cached feature matrices.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
}

impl FeatureCache {
    /// Opens (creating if needed) a cache folder.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.fmat"))
    }

    /// The cached matrix for `key`; `None` when absent or unreadable (it is then recomputed).
    pub fn get(&self, key: &str) -> Option<FeatureMatrix> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let header = bytes.get(..16)?;
        let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        if &header[..4] != MAGIC || word(4) != CACHE_VERSION {
            return None;
        }
        let (frames, coeffs) = (word(8) as usize, word(12) as usize);
        let body = &bytes[16..];
        if body.len() != frames.checked_mul(coeffs)?.checked_mul(4)? {
            return None;
        }
        let data = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        FeatureMatrix::new(frames, coeffs, data).ok()
    }

    /// Stores `m` under `key`, atomically.
    pub fn put(&self, key: &str, m: &FeatureMatrix) -> std::io::Result<()> {
        let path = self.path(key);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut bytes = Vec::with_capacity(16 + m.as_slice().len() * 4);
        bytes.extend_from_slice(MAGIC);
        for v in [CACHE_VERSION, m.frames() as u32, m.coeffs() as u32] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        for v in m.as_slice() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        drop(f);
        std::fs::rename(&tmp, &path)
    }
}

/// The cache key of some audio under a configuration: SHA-256 of both, hex.
pub fn cache_key(identity: &[u8], cfg: &FrontEndConfig) -> String {
    let mut h = Sha256::new();
    h.update(CACHE_VERSION.to_le_bytes());
    h.update((identity.len() as u64).to_le_bytes());
    h.update(identity);
    h.update(serde_json::to_vec(cfg).expect("configs serialise"));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why one utterance's features could not be computed.
#[derive(Debug, thiserror::Error)]
#[error("{id}: {reason}")]
pub struct FeatureError {
    pub id: String,
    pub reason: String,
}

/// Features of one utterance, through the cache when one is given. A file is read once: its
/// bytes are both its identity and what gets decoded on a cache miss.
pub fn features_of(
    source: &AudioSource,
    front: &mut FrontEnd,
    cache: Option<&FeatureCache>,
) -> Result<FeatureMatrix, String> {
    features_of_perturbed(source, front, cache, None)
}

/// [`features_of`] of the recording passed through a perturbation first (with the seed of its
/// random parts). The perturbation and seed are part of the cache key.
pub fn features_of_perturbed(
    source: &AudioSource,
    front: &mut FrontEnd,
    cache: Option<&FeatureCache>,
    perturbation: Option<(&Perturbation, u64)>,
) -> Result<FeatureMatrix, String> {
    let (identity, file_bytes) = match source {
        AudioSource::File(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            (None, Some(bytes))
        }
        AudioSource::Synthetic(s) => (
            Some(format!("synthetic v{SYNTH_VERSION} {s:?}").into_bytes()),
            None,
        ),
    };
    let key = cache.map(|_| {
        let id = identity
            .as_deref()
            .or(file_bytes.as_deref())
            .expect("one of the two is set");
        match perturbation {
            None => cache_key(id, front.config()),
            Some((p, seed)) => {
                let mut id = id.to_vec();
                id.extend_from_slice(format!("\0perturbed {p} seed {seed}").as_bytes());
                cache_key(&id, front.config())
            }
        }
    });
    if let (Some(cache), Some(key)) = (cache, &key)
        && let Some(m) = cache.get(key)
    {
        return Ok(m);
    }
    let audio = match (source, file_bytes) {
        (AudioSource::File(path), Some(bytes)) => {
            decode_bytes(bytes).map_err(|e| format!("{}: {e}", path.display()))?
        }
        (AudioSource::Synthetic(s), _) => Audio {
            samples: synthetic::render(s),
            sample_rate: s.sample_rate,
        },
        (AudioSource::File(_), None) => unreachable!("file bytes were read above"),
    };
    let audio = match perturbation {
        Some((p, seed)) => p.apply(&audio, seed).map_err(|e| e.to_string())?,
        None => audio,
    };
    let audio = front.prepare(audio).map_err(|e| e.to_string())?;
    let m = front.mfcc(&audio).map_err(|e| format!("MFCC: {e}"))?;
    if let (Some(cache), Some(key)) = (cache, &key)
        && let Err(e) = cache.put(key, &m)
    {
        tracing::warn!("feature cache {}: cannot store: {e}", cache.dir().display());
    }
    Ok(m)
}

/// Features of the utterances `indices` of `corpus` passed through `perturbation`, in
/// parallel, through the cache; in the order of `indices`. Each utterance's noise is seeded
/// by its id and the perturbation, so a rerun perturbs identically.
pub fn extract_perturbed(
    corpus: &Corpus,
    indices: &[usize],
    cfg: &FrontEndConfig,
    cache: Option<&FeatureCache>,
    perturbation: &Perturbation,
) -> Result<Vec<Result<FeatureMatrix, FeatureError>>, fedser_audio::MfccError> {
    FrontEnd::new(cfg.clone())?;
    Ok(indices
        .par_iter()
        .map_init(
            || FrontEnd::new(cfg.clone()).expect("validated above"),
            |front, &i| {
                let u = &corpus.utterances[i];
                let seed =
                    crate::partition::derive_seed(0x7065_7274, &format!("{perturbation}/{}", u.id));
                features_of_perturbed(&u.source, front, cache, Some((perturbation, seed))).map_err(
                    |reason| FeatureError {
                        id: u.id.clone(),
                        reason: format!("{perturbation}: {reason}"),
                    },
                )
            },
        )
        .collect())
}

/// Features of every utterance of `corpus`, in parallel on all cores (each worker has its own
/// front end), through the cache. `on_done` is called once per utterance (for progress bars).
/// Failures are returned per utterance; nothing is dropped silently.
pub fn extract_corpus(
    corpus: &Corpus,
    cfg: &FrontEndConfig,
    cache: Option<&FeatureCache>,
    on_done: &(dyn Fn() + Sync),
) -> Result<Vec<Result<FeatureMatrix, FeatureError>>, fedser_audio::MfccError> {
    FrontEnd::new(cfg.clone())?;
    Ok(corpus
        .utterances
        .par_iter()
        .map_init(
            || FrontEnd::new(cfg.clone()).expect("validated above"),
            |front, u| {
                let result = features_of(&u.source, front, cache).map_err(|reason| FeatureError {
                    id: u.id.clone(),
                    reason,
                });
                on_done();
                result
            },
        )
        .collect())
}
