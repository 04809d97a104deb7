//! `fedser synth OUT.wav`: a deterministic speech-like recording, for trying the tools out.

use std::process::ExitCode;

use anyhow::{Context, Result, ensure};

use crate::cli::SynthCmd;

pub fn run(cmd: SynthCmd) -> Result<ExitCode> {
    ensure!(
        cmd.seconds > 0.0 && cmd.seconds <= 3600.0,
        "--seconds must lie in (0, 3600], got {}",
        cmd.seconds
    );
    ensure!(
        fedser_audio::decode::RATE_RANGE.contains(&cmd.rate),
        "--rate must lie in 1000..=768000 Hz, got {}",
        cmd.rate
    );
    let samples = fedser_audio::synth::speech_like(cmd.rate, cmd.seconds, cmd.seed);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: cmd.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&cmd.out, spec)
        .with_context(|| format!("cannot create {}", cmd.out.display()))?;
    for s in samples {
        let v = (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
        writer
            .write_sample(v)
            .with_context(|| format!("cannot write {}", cmd.out.display()))?;
    }
    writer
        .finalize()
        .with_context(|| format!("cannot write {}", cmd.out.display()))?;
    eprintln!(
        "wrote {} ({} s at {} Hz)",
        cmd.out.display(),
        cmd.seconds,
        cmd.rate
    );
    Ok(ExitCode::SUCCESS)
}
