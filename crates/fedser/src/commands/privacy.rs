//! `fedser privacy epsilon|noise`: the accountant without training.

use std::process::ExitCode;

use anyhow::Result;
use fedser_privacy::accountant::DEFAULT_MAX_NOISE_MULTIPLIER;
use fedser_privacy::{RdpAccountant, noise_multiplier_for};

use crate::cli::PrivacyWhat;

pub fn run(what: PrivacyWhat) -> Result<ExitCode> {
    match what {
        PrivacyWhat::Epsilon {
            q,
            z,
            rounds,
            delta,
            json,
        } => {
            let mut acc = RdpAccountant::new();
            acc.record(q, z, rounds)?;
            let (epsilon, alpha) = acc.epsilon(delta)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"epsilon": epsilon, "alpha": alpha})
                );
            } else {
                println!(
                    "epsilon {epsilon:.6} at delta {delta} after {rounds} rounds \
                     (q = {q}, z = {z}; best Renyi order {alpha})"
                );
            }
        }
        PrivacyWhat::Noise {
            target_epsilon,
            q,
            rounds,
            delta,
            json,
        } => {
            let z = noise_multiplier_for(
                target_epsilon,
                q,
                rounds,
                delta,
                DEFAULT_MAX_NOISE_MULTIPLIER,
            )?;
            if json {
                println!("{}", serde_json::json!({"noise_multiplier": z}));
            } else {
                println!(
                    "noise multiplier {z:.4} keeps epsilon within {target_epsilon} at delta \
                     {delta} after {rounds} rounds (q = {q})"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
