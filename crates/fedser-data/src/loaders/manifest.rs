//! A CSV manifest for anyone's own data: `path,label,speaker[,gender]`, one recording a line,
//! paths relative to the manifest's folder (or absolute). A header line is recognised and
//! skipped. Labels outside the five classes are skipped and counted.

use std::collections::BTreeMap;
use std::path::Path;

use fedser_core::Emotion;

use crate::corpus::{
    AudioSource, Corpus, CorpusError, Gender, Utterance, io_error, non_empty, skip,
};

/// Loads a manifest CSV (`data` is the file, or a folder holding `manifest.csv`).
pub fn load(data: &Path) -> Result<Corpus, CorpusError> {
    let path = if data.is_dir() {
        data.join("manifest.csv")
    } else {
        data.to_path_buf()
    };
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let file = std::fs::File::open(&path).map_err(io_error(&path))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(file);
    let mut utterances = Vec::new();
    let mut skipped = BTreeMap::new();
    let mut ids = std::collections::HashSet::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| CorpusError::Parse {
            path: path.clone(),
            line: e.position().map_or(i + 1, |p| p.line() as usize),
            reason: e.to_string(),
        })?;
        let line = record.position().map_or(i + 1, |p| p.line() as usize);
        let bad = |reason: String| CorpusError::Parse {
            path: path.clone(),
            line,
            reason,
        };
        if i == 0
            && record
                .get(1)
                .is_some_and(|l| l.eq_ignore_ascii_case("label"))
        {
            continue;
        }
        if record.len() < 3 || record.len() > 4 {
            return Err(bad(format!(
                "expected path,label,speaker[,gender], got {} fields",
                record.len()
            )));
        }
        let (file, label, speaker) = (&record[0], &record[1], &record[2]);
        if file.is_empty() || speaker.is_empty() {
            return Err(bad("empty path or speaker".into()));
        }
        let gender = match record.get(3).filter(|g| !g.is_empty()) {
            Some(g) => Some(Gender::parse(g).ok_or_else(|| bad(format!("unknown gender {g:?}")))?),
            None => None,
        };
        let Ok(emotion) = label.parse::<Emotion>() else {
            skip(
                &mut skipped,
                format!("label {}", label.to_ascii_lowercase()),
            );
            continue;
        };
        let audio = base.join(file);
        let id = file.to_string();
        if !ids.insert(id.clone()) {
            return Err(bad(format!("{file} is listed twice")));
        }
        utterances.push(Utterance {
            id,
            source: AudioSource::File(audio),
            speaker: speaker.to_string(),
            gender,
            emotion,
        });
    }
    non_empty(Corpus::new("manifest", utterances, skipped), &path, "")
}
