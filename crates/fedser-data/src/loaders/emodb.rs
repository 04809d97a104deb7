//! EMO-DB: `wav/SSTTTEV.wav` (speaker SS, text TTT, emotion letter E, version V). W anger,
//! F happiness (Freude), T sadness (Trauer), A fear (Angst), N neutral are kept; L boredom and
//! E disgust are skipped and counted. Speaker sex from the published speaker list.

use std::collections::BTreeMap;
use std::path::Path;

use fedser_core::Emotion;

use crate::corpus::{
    AudioSource, Corpus, CorpusError, Gender, Utterance, file_stem, non_empty, skip, wav_files,
};

/// The ten EMO-DB speakers and their sex (Burkhardt et al. 2005).
const SPEAKERS: [(&str, Gender); 10] = [
    ("03", Gender::Male),
    ("08", Gender::Female),
    ("09", Gender::Female),
    ("10", Gender::Male),
    ("11", Gender::Male),
    ("12", Gender::Male),
    ("13", Gender::Female),
    ("14", Gender::Female),
    ("15", Gender::Male),
    ("16", Gender::Female),
];

/// Loads EMO-DB from its root (holding `wav/`) or from the `wav/` folder itself.
pub fn load(root: &Path) -> Result<Corpus, CorpusError> {
    let dir = if root.join("wav").is_dir() {
        root.join("wav")
    } else {
        root.to_path_buf()
    };
    let mut utterances = Vec::new();
    let mut skipped = BTreeMap::new();
    for path in wav_files(&dir)? {
        let stem = file_stem(&path);
        match parse_name(&stem) {
            Ok((speaker, gender, emotion)) => utterances.push(Utterance {
                speaker: format!("emodb_{speaker}"),
                id: stem.clone(),
                source: AudioSource::File(path),
                gender: Some(gender),
                emotion,
            }),
            Err(reason) => skip(&mut skipped, reason),
        }
    }
    non_empty(
        Corpus::new("emodb", utterances, skipped),
        &dir,
        "expected wav/SSTTTEV.wav",
    )
}

fn parse_name(stem: &str) -> Result<(&str, Gender, Emotion), String> {
    let bytes = stem.as_bytes();
    if bytes.len() != 7 || !stem.is_ascii() {
        return Err("unparsable file name".into());
    }
    let speaker = &stem[0..2];
    let gender = SPEAKERS
        .iter()
        .find(|(s, _)| *s == speaker)
        .map(|(_, g)| *g)
        .ok_or_else(|| "unknown speaker".to_string())?;
    let emotion = match bytes[5] {
        b'W' => Emotion::Angry,
        b'F' => Emotion::Happy,
        b'T' => Emotion::Sad,
        b'A' => Emotion::Fear,
        b'N' => Emotion::Neutral,
        b'L' => return Err("label boredom".into()),
        b'E' => return Err("label disgust".into()),
        _ => return Err("unknown emotion letter".into()),
    };
    Ok((speaker, gender, emotion))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_name("03a01Wa"),
            Ok(("03", Gender::Male, Emotion::Angry))
        );
        assert_eq!(
            parse_name("16b10Tb"),
            Ok(("16", Gender::Female, Emotion::Sad))
        );
        assert_eq!(parse_name("08a02La"), Err("label boredom".into()));
        assert_eq!(parse_name("99a01Wa"), Err("unknown speaker".into()));
        assert!(parse_name("03a01W").is_err());
        assert!(parse_name("03a01Xa").is_err());
    }
}
