//! Any bytes through the whole front end: decode, then both MFCC styles and the cleaning
//! pipeline. Nothing may panic; errors are fine.
#![no_main]

use fedser_audio::{FrontEnd, FrontEndConfig, Mfcc, MfccConfig, decode_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut audio) = decode_bytes(data.to_vec()) else {
        return;
    };
    // Keep each run fast: a few seconds of audio is enough to reach every code path.
    audio.samples.truncate(4 * 16_000);
    for cfg in [MfccConfig::psf(), MfccConfig::librosa()] {
        if let Ok(mut mfcc) = Mfcc::new(&cfg, audio.sample_rate) {
            let _ = mfcc.compute(&audio.samples);
        }
    }
    // The paper's pipeline with trimming: every cleaning stage runs.
    let cleaning = FrontEndConfig {
        trim_silence: true,
        ..FrontEndConfig::paper()
    };
    if let Ok(front) = FrontEnd::new(cleaning) {
        let mut front = front;
        if let Ok(prepared) = front.prepare(audio) {
            let _ = front.mfcc(&prepared);
        }
    }
});
