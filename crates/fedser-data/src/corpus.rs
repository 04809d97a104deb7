//! What a corpus is once loaded: labelled utterances with their speakers, plus what was skipped.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use fedser_core::Emotion;

use crate::synthetic::SyntheticUtterance;

/// Speaker sex as the corpora record it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }

    /// Parses `m`, `male`, `f`, `female` (any case).
    pub fn parse(s: &str) -> Option<Gender> {
        match s.trim().to_ascii_lowercase().as_str() {
            "m" | "male" | "man" => Some(Gender::Male),
            "f" | "female" | "woman" => Some(Gender::Female),
            _ => None,
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an utterance's audio comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSource {
    /// A recording on disk.
    File(PathBuf),
    /// Rendered on demand by the built-in synthesiser.
    Synthetic(SyntheticUtterance),
}

/// One labelled recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// Identifier unique within the corpus (usually the file stem).
    pub id: String,
    /// The audio.
    pub source: AudioSource,
    /// Speaker identifier, prefixed by the corpus (e.g. `ravdess_07`): a device is a person.
    pub speaker: String,
    /// Speaker sex, where the corpus says.
    pub gender: Option<Gender>,
    /// The label.
    pub emotion: Emotion,
}

/// A loaded corpus.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// Corpus name (`ravdess`, `emodb`, ...).
    pub name: String,
    /// The usable utterances, in a deterministic order (sorted by id).
    pub utterances: Vec<Utterance>,
    /// Recordings left out, counted by reason (e.g. `label calm`, `unparsable name`).
    pub skipped: BTreeMap<String, usize>,
}

impl Corpus {
    /// A corpus from utterances (sorted by id for determinism) and skip counts.
    pub fn new(
        name: &str,
        mut utterances: Vec<Utterance>,
        skipped: BTreeMap<String, usize>,
    ) -> Self {
        utterances.sort_by(|a, b| a.id.cmp(&b.id));
        Self {
            name: name.to_string(),
            utterances,
            skipped,
        }
    }

    /// Number of usable utterances.
    pub fn len(&self) -> usize {
        self.utterances.len()
    }

    /// True when nothing usable was found.
    pub fn is_empty(&self) -> bool {
        self.utterances.is_empty()
    }

    /// Total recordings skipped.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }

    /// Utterances per emotion, in class order.
    pub fn per_emotion(&self) -> [usize; Emotion::COUNT] {
        let mut counts = [0; Emotion::COUNT];
        for u in &self.utterances {
            counts[u.emotion.index()] += 1;
        }
        counts
    }

    /// Distinct speakers, sorted, with their sex and per-emotion counts.
    pub fn speakers(&self) -> Vec<SpeakerSummary> {
        let mut map: BTreeMap<&str, SpeakerSummary> = BTreeMap::new();
        for u in &self.utterances {
            let entry = map.entry(&u.speaker).or_insert_with(|| SpeakerSummary {
                speaker: u.speaker.clone(),
                gender: u.gender,
                per_emotion: [0; Emotion::COUNT],
            });
            entry.per_emotion[u.emotion.index()] += 1;
        }
        map.into_values().collect()
    }
}

/// One row of the emotion × speaker table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerSummary {
    pub speaker: String,
    pub gender: Option<Gender>,
    pub per_emotion: [usize; Emotion::COUNT],
}

/// Counts one skipped recording under `reason`.
pub(crate) fn skip(skipped: &mut BTreeMap<String, usize>, reason: impl Into<String>) {
    *skipped.entry(reason.into()).or_default() += 1;
}

/// Why a corpus could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: no usable {corpus} recordings found ({skipped} skipped){hint}", path.display())]
    Empty {
        path: PathBuf,
        corpus: String,
        skipped: usize,
        hint: String,
    },
    #[error("invalid synthetic corpus settings: {0}")]
    Synthetic(String),
    #[error("the {0} corpus needs --data DIR (the folder it was unpacked to)")]
    NeedsData(String),
}

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Sorted entries of a directory (files and folders).
pub(crate) fn read_dir_sorted(
    dir: &std::path::Path,
) -> Result<Vec<std::fs::DirEntry>, CorpusError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_error(dir))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// A path's file name without its extension, as an utterance id.
pub(crate) fn file_stem(path: &std::path::Path) -> String {
    path.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Files with extension `.wav` (any case) directly inside `dir`, sorted.
pub(crate) fn wav_files(dir: &std::path::Path) -> Result<Vec<PathBuf>, CorpusError> {
    Ok(read_dir_sorted(dir)?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav")))
        .collect())
}

/// Fails with [`CorpusError::Empty`] when `corpus` holds nothing usable.
pub(crate) fn non_empty(
    corpus: Corpus,
    path: &std::path::Path,
    hint: &str,
) -> Result<Corpus, CorpusError> {
    if corpus.is_empty() {
        return Err(CorpusError::Empty {
            path: path.to_owned(),
            corpus: corpus.name.clone(),
            skipped: corpus.skipped_total(),
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!("; {hint}")
            },
        });
    }
    Ok(corpus)
}
