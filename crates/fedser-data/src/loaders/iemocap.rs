//! IEMOCAP: audio in `SessionN/sentences/wav/<dialog>/<utterance>.wav`, labels in
//! `SessionN/dialog/EmoEvaluation/<dialog>.txt`, whose summary lines read
//! `[start - end]<TAB>Ses01F_impro01_F000<TAB>label<TAB>[V, A, D]`.
//! Labels neu, hap, sad, ang, fea are kept; exc (excited) merges into happy by default (the
//! usual practice); sur, dis, fru, xxx, oth are skipped and counted. The speaker is the session
//! plus the gender letter that opens the utterance's last field (`Ses01_F` for `..._F000`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use fedser_core::Emotion;

use crate::corpus::{
    AudioSource, Corpus, CorpusError, Gender, Utterance, file_stem, io_error, non_empty,
    read_dir_sorted, skip, wav_files,
};

/// IEMOCAP loading choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IemocapOptions {
    /// Count `exc` (excited) as happy.
    pub merge_excited: bool,
    /// Keep only the improvised dialogs (their emotions are more natural than the scripted).
    pub improvised_only: bool,
}

impl Default for IemocapOptions {
    fn default() -> Self {
        Self {
            merge_excited: true,
            improvised_only: false,
        }
    }
}

/// Loads IEMOCAP from its root (holding `Session1` .. `Session5`).
pub fn load(root: &Path, opts: IemocapOptions) -> Result<Corpus, CorpusError> {
    let mut utterances = Vec::new();
    let mut skipped = BTreeMap::new();
    let mut sessions = 0;
    for entry in read_dir_sorted(root)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || !name.starts_with("Session") {
            continue;
        }
        sessions += 1;
        let session = entry.path();
        let labels_dir = session.join("dialog/EmoEvaluation");
        let wav_dir = session.join("sentences/wav");
        if !wav_dir.is_dir() {
            return Err(CorpusError::Layout {
                path: session.clone(),
                reason: "missing sentences/wav".into(),
            });
        }
        for dialog in read_dir_sorted(&wav_dir)? {
            if !dialog.path().is_dir() {
                continue;
            }
            let dialog_name = dialog.file_name().to_string_lossy().into_owned();
            let wavs = wav_files(&dialog.path())?;
            if opts.improvised_only && !dialog_name.contains("impro") {
                for _ in &wavs {
                    skip(&mut skipped, "scripted dialog");
                }
                continue;
            }
            let label_file = labels_dir.join(format!("{dialog_name}.txt"));
            let labels = if label_file.is_file() {
                read_labels(&label_file)?
            } else {
                tracing::warn!("{}: missing label file", label_file.display());
                HashMap::new()
            };
            for path in wavs {
                let stem = file_stem(&path);
                let Some(label) = labels.get(&stem) else {
                    skip(&mut skipped, "no label");
                    continue;
                };
                let emotion = match (label.as_str(), opts.merge_excited) {
                    ("neu", _) => Emotion::Neutral,
                    ("hap", _) | ("exc", true) => Emotion::Happy,
                    ("sad", _) => Emotion::Sad,
                    ("ang", _) => Emotion::Angry,
                    ("fea", _) => Emotion::Fear,
                    (other, _) => {
                        skip(&mut skipped, format!("label {other}"));
                        continue;
                    }
                };
                let Some((speaker, gender)) = speaker_of(&stem) else {
                    skip(&mut skipped, "unparsable utterance id");
                    continue;
                };
                utterances.push(Utterance {
                    id: stem,
                    source: AudioSource::File(path),
                    speaker,
                    gender: Some(gender),
                    emotion,
                });
            }
        }
    }
    if sessions == 0 {
        return Err(CorpusError::Layout {
            path: root.to_owned(),
            reason: "no Session1..Session5 folders".into(),
        });
    }
    non_empty(Corpus::new("iemocap", utterances, skipped), root, "")
}

/// `Ses01F_impro01_F000` -> (`iemocap_Ses01_F`, female); `Ses03M_script01_2_M012` -> male.
fn speaker_of(utterance: &str) -> Option<(String, Gender)> {
    let session = utterance.get(0..5).filter(|s| s.starts_with("Ses"))?;
    let last = utterance.rsplit('_').next()?;
    let gender = match last.chars().next()? {
        'F' => Gender::Female,
        'M' => Gender::Male,
        _ => return None,
    };
    Some((format!("iemocap_{session}_{}", &last[..1]), gender))
}

/// Utterance id -> label code, from an EmoEvaluation file's summary lines.
fn read_labels(path: &Path) -> Result<HashMap<String, String>, CorpusError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if !line.starts_with('[') {
            continue; // per-annotator lines (C-E1:, A-E2: ...) and headers
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 3 {
            return Err(CorpusError::Parse {
                path: path.to_owned(),
                line: i + 1,
                reason: "expected [start - end]<TAB>utterance<TAB>label".into(),
            });
        }
        out.insert(fields[1].trim().to_string(), fields[2].trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speakers() {
        assert_eq!(
            speaker_of("Ses01F_impro01_F000"),
            Some(("iemocap_Ses01_F".into(), Gender::Female))
        );
        assert_eq!(
            speaker_of("Ses01F_impro01_M003"),
            Some(("iemocap_Ses01_M".into(), Gender::Male))
        );
        assert_eq!(
            speaker_of("Ses03M_script01_2_M012"),
            Some(("iemocap_Ses03_M".into(), Gender::Male))
        );
        assert_eq!(speaker_of("bogus"), None);
    }
}
