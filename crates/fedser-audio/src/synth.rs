//! Deterministic test signals: a speech-like harmonic signal with syllables and pauses, and
//! white noise. Used by tests, benchmarks and `fedser synth`; the corpus generator of
//! `fedser-data` is the full-featured sibling.

use std::f64::consts::TAU;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// `seconds` of a speech-like signal at `sample_rate` Hz, peak about 0.5.
///
/// Voiced syllables (150–300 ms) separated by pauses (60–200 ms, low-level breath noise):
/// a harmonic source with a gliding pitch (90–260 Hz) and 1/k spectral tilt, shaped by three
/// formants that move between vowel-like targets, plus short fricative noise bursts.
/// The same seed always gives the same samples.
pub fn speech_like(sample_rate: u32, seconds: f64, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sr = sample_rate as f64;
    let n = (seconds * sr).round() as usize;
    let nyquist = sr / 2.0;
    let vowels = [
        [730.0, 1090.0, 2440.0],
        [270.0, 2290.0, 3010.0],
        [300.0, 870.0, 2240.0],
        [530.0, 1840.0, 2480.0],
        [640.0, 1190.0, 2390.0],
    ];
    let mut out = Vec::with_capacity(n);
    let mut phase = 0.0f64;
    while out.len() < n {
        // A pause with faint breath noise.
        let pause = (rng.random_range(0.06..0.2) * sr) as usize;
        for _ in 0..pause.min(n - out.len()) {
            let v: f64 = rng.sample(StandardNormal);
            out.push((0.002 * v) as f32);
        }
        if out.len() >= n {
            break;
        }
        // A syllable: optional fricative onset, then a voiced nucleus.
        if rng.random_bool(0.4) {
            let len = (rng.random_range(0.03..0.08) * sr) as usize;
            for i in 0..len.min(n - out.len()) {
                let env = (std::f64::consts::PI * i as f64 / len as f64).sin();
                let v: f64 = rng.sample(StandardNormal);
                out.push((0.05 * env * v) as f32);
            }
        }
        let len = ((rng.random_range(0.15..0.3) * sr) as usize).min(n - out.len());
        let f0_start = rng.random_range(90.0..260.0);
        let f0_end = (f0_start * rng.random_range(0.7..1.3f64)).clamp(80.0, 300.0);
        let from = vowels[rng.random_range(0..vowels.len())];
        let to = vowels[rng.random_range(0..vowels.len())];
        let loudness = rng.random_range(0.3..1.0);
        for i in 0..len {
            let t = i as f64 / len.max(1) as f64;
            let f0 = f0_start + (f0_end - f0_start) * t;
            phase = (phase + TAU * f0 / sr) % TAU;
            let env = (std::f64::consts::PI * t).sin().powf(0.6) * loudness;
            let formants: Vec<f64> = (0..3).map(|j| from[j] + (to[j] - from[j]) * t).collect();
            let mut v = 0.0;
            let mut k = 1.0;
            while k * f0 < nyquist {
                let f = k * f0;
                let shape: f64 = formants
                    .iter()
                    .map(|&fc| (-((f - fc) / 120.0).powi(2)).exp())
                    .sum::<f64>()
                    + 0.05;
                v += shape / k * (k * phase).sin();
                k += 1.0;
            }
            out.push((0.25 * env * v) as f32);
        }
    }
    out.truncate(n);
    out
}

/// `len` samples of zero-mean, unit-variance Gaussian white noise.
pub fn white_noise(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| rng.sample::<f64, _>(StandardNormal) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_bounded_and_not_silent() {
        let a = speech_like(16000, 1.5, 4);
        assert_eq!(a, speech_like(16000, 1.5, 4));
        assert_ne!(a, speech_like(16000, 1.5, 5));
        assert_eq!(a.len(), 24000);
        let peak = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.05 && peak <= 1.0, "peak {peak}");
    }
}
