//! CREMA-D: `AudioWAV/AAAA_SSS_EEE_LL.wav` (actor 1001–1091, sentence, emotion ANG DIS FEA HAP
//! NEU SAD, level LO MD HI XX). Speaker = actor; sex from `VideoDemographics.csv` when present
//! beside `AudioWAV/`. Optionally the crowd-sourced vocal label (`summaryTable.csv`, column
//! VoiceVote; ties such as `N:S` have no majority and are skipped) replaces the acted one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use fedser_core::Emotion;

use crate::corpus::{
    AudioSource, Corpus, CorpusError, Gender, Utterance, file_stem, io_error, non_empty, skip,
    wav_files,
};

/// Which label a CREMA-D clip gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CremaLabels {
    /// The emotion the actor was asked to portray (in the file name).
    #[default]
    Acted,
    /// The majority vote of listeners hearing the audio only (`summaryTable.csv` VoiceVote).
    Voice,
}

/// Loads CREMA-D from its root (holding `AudioWAV/`) or from `AudioWAV/` itself.
pub fn load(root: &Path, labels: CremaLabels) -> Result<Corpus, CorpusError> {
    let (root, audio) = if root.join("AudioWAV").is_dir() {
        (root.to_path_buf(), root.join("AudioWAV"))
    } else {
        (
            root.parent().unwrap_or(root).to_path_buf(),
            root.to_path_buf(),
        )
    };
    let sexes = match find(&root, &["VideoDemographics.csv"]) {
        Some(path) => read_demographics(&path)?,
        None => HashMap::new(),
    };
    let votes = match labels {
        CremaLabels::Acted => None,
        CremaLabels::Voice => {
            let path = find(&root, &["summaryTable.csv", "processedResults/summaryTable.csv"]).ok_or_else(|| {
                CorpusError::Layout {
                    path: root.clone(),
                    reason: "crowd-sourced labels need summaryTable.csv (or processedResults/summaryTable.csv)".into(),
                }
            })?;
            Some(read_voice_votes(&path)?)
        }
    };
    let mut utterances = Vec::new();
    let mut skipped = BTreeMap::new();
    for path in wav_files(&audio)? {
        let stem = file_stem(&path);
        let (actor, acted) = match parse_name(&stem) {
            Ok(parsed) => parsed,
            Err(reason) => {
                skip(&mut skipped, reason);
                continue;
            }
        };
        let emotion = match (&votes, acted) {
            (None, Ok(e)) => e,
            (None, Err(reason)) => {
                skip(&mut skipped, reason);
                continue;
            }
            (Some(votes), _) => match votes.get(&stem) {
                Some(Ok(e)) => *e,
                Some(Err(reason)) => {
                    skip(&mut skipped, reason.clone());
                    continue;
                }
                None => {
                    skip(&mut skipped, "no crowd-sourced label");
                    continue;
                }
            },
        };
        utterances.push(Utterance {
            id: stem,
            source: AudioSource::File(path),
            speaker: format!("crema_{actor}"),
            gender: sexes.get(&actor).copied(),
            emotion,
        });
    }
    non_empty(
        Corpus::new("crema-d", utterances, skipped),
        &audio,
        "expected AudioWAV/AAAA_SSS_EEE_LL.wav",
    )
}

fn find(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(|c| root.join(c))
        .find(|p| p.is_file())
}

/// Actor and acted emotion (or why the emotion is outside the classes).
#[allow(clippy::type_complexity)]
fn parse_name(stem: &str) -> Result<(u32, Result<Emotion, String>), String> {
    let parts: Vec<&str> = stem.split('_').collect();
    let [actor, sentence, emotion, level] = parts[..] else {
        return Err("unparsable file name".into());
    };
    let actor: u32 = actor
        .parse()
        .map_err(|_| "unparsable file name".to_string())?;
    if !(1001..=1091).contains(&actor)
        || sentence.len() != 3
        || !["LO", "MD", "HI", "XX", "X"].contains(&level)
    {
        return Err("unparsable file name".into());
    }
    let emotion = match emotion {
        "ANG" => Ok(Emotion::Angry),
        "FEA" => Ok(Emotion::Fear),
        "HAP" => Ok(Emotion::Happy),
        "NEU" => Ok(Emotion::Neutral),
        "SAD" => Ok(Emotion::Sad),
        "DIS" => Err("label disgust".to_string()),
        _ => return Err("unknown emotion code".into()),
    };
    Ok((actor, emotion))
}

fn csv_reader(path: &Path) -> Result<csv::Reader<std::fs::File>, CorpusError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(file))
}

fn column(headers: &csv::StringRecord, name: &str, path: &Path) -> Result<usize, CorpusError> {
    headers
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| CorpusError::Layout {
            path: path.to_owned(),
            reason: format!("no column {name:?}"),
        })
}

fn parse_error(path: &Path, e: csv::Error) -> CorpusError {
    CorpusError::Parse {
        path: path.to_owned(),
        line: e.position().map_or(0, |p| p.line() as usize),
        reason: e.to_string(),
    }
}

/// `ActorID -> Sex` from VideoDemographics.csv.
fn read_demographics(path: &Path) -> Result<HashMap<u32, Gender>, CorpusError> {
    let mut reader = csv_reader(path)?;
    let headers = reader.headers().map_err(|e| parse_error(path, e))?.clone();
    let (id_col, sex_col) = (
        column(&headers, "ActorID", path)?,
        column(&headers, "Sex", path)?,
    );
    let mut out = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| parse_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let bad = |reason: String| CorpusError::Parse {
            path: path.to_owned(),
            line,
            reason,
        };
        let id: u32 = record
            .get(id_col)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("ActorID is not a number".into()))?;
        let sex = record.get(sex_col).unwrap_or("");
        let gender = Gender::parse(sex).ok_or_else(|| bad(format!("unknown Sex {sex:?}")))?;
        out.insert(id, gender);
    }
    Ok(out)
}

/// `clip -> VoiceVote` from summaryTable.csv.
fn read_voice_votes(path: &Path) -> Result<HashMap<String, Result<Emotion, String>>, CorpusError> {
    let mut reader = csv_reader(path)?;
    let headers = reader.headers().map_err(|e| parse_error(path, e))?.clone();
    let (name_col, vote_col) = (
        column(&headers, "FileName", path)?,
        column(&headers, "VoiceVote", path)?,
    );
    let mut out = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| parse_error(path, e))?;
        let (Some(name), Some(vote)) = (record.get(name_col), record.get(vote_col)) else {
            continue;
        };
        let label = match vote.trim() {
            "N" => Ok(Emotion::Neutral),
            "H" => Ok(Emotion::Happy),
            "A" => Ok(Emotion::Angry),
            "S" => Ok(Emotion::Sad),
            "F" => Ok(Emotion::Fear),
            "D" => Err("voice vote disgust".to_string()),
            v if v.contains(':') => Err("voice vote without majority".to_string()),
            _ => Err("unknown voice vote".to_string()),
        };
        out.insert(name.trim().to_string(), label);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_name("1001_DFA_ANG_XX"),
            Ok((1001, Ok(Emotion::Angry)))
        );
        assert_eq!(parse_name("1091_IEO_SAD_HI"), Ok((1091, Ok(Emotion::Sad))));
        assert_eq!(
            parse_name("1010_IEO_DIS_MD"),
            Ok((1010, Err("label disgust".into())))
        );
        assert!(parse_name("0999_IEO_SAD_HI").is_err());
        assert!(parse_name("1001_IEO_SAD").is_err());
        assert!(parse_name("1001_IEO_XYZ_HI").is_err());
    }
}
