//! RAVDESS: `Actor_NN/MM-VV-EE-II-SS-RR-NN.wav` (modality, vocal channel, emotion, intensity,
//! statement, repetition, actor). Emotions 01 neutral, 03 happy, 04 sad, 05 angry, 06 fearful
//! are kept; 02 calm, 07 disgust, 08 surprised are skipped and counted. Odd actors are male.
//! Song recordings (vocal channel 02) are skipped: their emotion set differs.

use std::collections::BTreeMap;
use std::path::Path;

use fedser_core::Emotion;

use crate::corpus::{
    AudioSource, Corpus, CorpusError, Gender, Utterance, file_stem, non_empty, read_dir_sorted,
    skip, wav_files,
};

const NAMES: [&str; 8] = [
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
];

/// Loads RAVDESS from its root folder (the one holding `Actor_NN`).
pub fn load(root: &Path) -> Result<Corpus, CorpusError> {
    let mut utterances = Vec::new();
    let mut skipped = BTreeMap::new();
    for entry in read_dir_sorted(root)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || !name.starts_with("Actor_") {
            continue;
        }
        for path in wav_files(&entry.path())? {
            let stem = file_stem(&path);
            match parse_name(&stem) {
                Ok((emotion, actor)) => utterances.push(Utterance {
                    id: stem,
                    source: AudioSource::File(path),
                    speaker: format!("ravdess_{actor:02}"),
                    gender: Some(if actor % 2 == 1 {
                        Gender::Male
                    } else {
                        Gender::Female
                    }),
                    emotion,
                }),
                Err(reason) => skip(&mut skipped, reason),
            }
        }
    }
    non_empty(
        Corpus::new("ravdess", utterances, skipped),
        root,
        "expected Actor_NN/03-01-EE-II-SS-RR-NN.wav",
    )
}

/// Emotion and actor of a RAVDESS file stem, or the reason to skip it.
fn parse_name(stem: &str) -> Result<(Emotion, u32), String> {
    let fields: Vec<u32> = stem
        .split('-')
        .map(|f| f.parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| "unparsable file name".to_string())?;
    let [
        _modality,
        channel,
        emotion,
        _intensity,
        _statement,
        _repetition,
        actor,
    ] = fields[..]
    else {
        return Err("unparsable file name".into());
    };
    if channel != 1 {
        return Err("song (vocal channel 02)".into());
    }
    if !(1..=99).contains(&actor) {
        return Err("unparsable file name".into());
    }
    let label = match emotion {
        1 => Emotion::Neutral,
        3 => Emotion::Happy,
        4 => Emotion::Sad,
        5 => Emotion::Angry,
        6 => Emotion::Fear,
        2 | 7 | 8 => return Err(format!("label {}", NAMES[emotion as usize - 1])),
        _ => return Err("unknown emotion code".into()),
    };
    Ok((label, actor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("03-01-05-02-01-01-07"), Ok((Emotion::Angry, 7)));
        assert_eq!(parse_name("03-01-02-01-01-01-07"), Err("label calm".into()));
        assert_eq!(
            parse_name("03-02-05-01-01-01-07"),
            Err("song (vocal channel 02)".into())
        );
        assert!(parse_name("03-01-05-02-01-01").is_err());
        assert!(parse_name("readme").is_err());
        assert!(parse_name("03-01-09-01-01-01-07").is_err());
    }
}
