//! `fedser predict`: the emotion of recordings, with class probabilities.

use std::process::ExitCode;

use anyhow::Result;
use fedser_audio::FrontEnd;
use fedser_core::Emotion;
use fedser_data::features::Normaliser;
use fedser_model::{Example, predict};

use super::dataset::NormRecord;
use super::evaluate::load_model;
use crate::cli::PredictCmd;

pub fn run(cmd: PredictCmd) -> Result<ExitCode> {
    let (model, front_cfg, norm) = load_model(&cmd.model)?;
    let mut front = FrontEnd::new(front_cfg)?;
    if matches!(norm, NormRecord::Speaker) && !cmd.json {
        // Speaker statistics come from many utterances in training; a lone recording only has
        // its own, which also removes its overall level and spectral tilt.
        eprintln!(
            "{}",
            if cmd.same_speaker {
                "note: per-speaker normalisation with statistics pooled over these recordings"
            } else {
                "note: the model expects per-speaker normalisation; each recording is normalised \
                 with its own statistics (give several recordings of one speaker with --same-speaker)"
            }
        );
    }
    let mut failed = 0;
    let mut extracted = Vec::with_capacity(cmd.files.len());
    for file in &cmd.files {
        match front.extract_file(file) {
            Ok(f) if f.frames() > 0 => extracted.push((file, f)),
            Ok(_) => {
                eprintln!("{}: too short for one frame", file.display());
                failed += 1;
            }
            Err(e) => {
                eprintln!("{e}");
                failed += 1;
            }
        }
    }
    let pooled = (cmd.same_speaker && matches!(norm, NormRecord::Speaker))
        .then(|| Normaliser::fit(extracted.iter().map(|(_, f)| f)))
        .flatten();
    for (file, mut features) in extracted {
        match &norm {
            NormRecord::Speaker => {
                if let Some(n) = pooled.as_ref().or(Normaliser::fit([&features]).as_ref()) {
                    n.apply(&mut features);
                }
            }
            NormRecord::Global { mean, std } => Normaliser {
                mean: mean.clone(),
                std: std.clone(),
            }
            .apply(&mut features),
            NormRecord::None => {}
        }
        let probs = predict(&model, &[Example { features, label: 0 }], 1).remove(0);
        let emotion = Emotion::from_index(fedser_model::argmax(&probs)).unwrap_or(Emotion::Neutral);
        if cmd.json {
            let p: serde_json::Map<String, serde_json::Value> = Emotion::ALL
                .iter()
                .zip(&probs)
                .map(|(e, v)| (e.name().to_string(), (*v as f64).into()))
                .collect();
            println!(
                "{}",
                serde_json::json!({"file": file, "emotion": emotion.name(), "probabilities": p})
            );
        } else {
            let p: Vec<String> = Emotion::ALL
                .iter()
                .zip(&probs)
                .map(|(e, v)| format!("{} {:.2}", e.name(), v))
                .collect();
            println!("{}: {}  ({})", file.display(), emotion.name(), p.join(", "));
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
