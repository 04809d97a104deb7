//! Signal cleaning before feature extraction, as the paper prescribes ("the signals were
//! normalised and subjected to a denoising algorithm"): DC removal, peak normalisation, a
//! Wiener-style spectral denoiser whose noise estimate comes from the recording's quietest
//! frames, and silence trimming. All functions take mono samples in [-1, 1].

use std::f64::consts::PI;

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

/// Scales the signal so that its largest absolute sample is `peak` (librosa
/// `util.normalize`-style). A silent signal (all zeros) is returned unchanged.
pub fn normalise_peak(samples: &mut [f32], peak: f32) {
    let max = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if max > 0.0 && max.is_finite() {
        let gain = peak / max;
        samples.iter_mut().for_each(|s| *s *= gain);
    }
}

/// Subtracts the mean, removing a constant offset exactly.
pub fn remove_dc(samples: &mut [f32]) {
    if samples.is_empty() {
        return;
    }
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / samples.len() as f64;
    samples
        .iter_mut()
        .for_each(|s| *s = (*s as f64 - mean) as f32);
}

/// Settings of the spectral denoiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenoiseConfig {
    /// Analysis frame length in seconds (rounded up to a power of two in samples).
    pub frame_seconds: f64,
    /// Fraction of frames, the quietest ones, whose mean spectrum is the noise estimate.
    pub noise_quantile: f64,
    /// Smoothing of the decision-directed a-priori SNR (Ephraim–Malah), in [0, 1).
    pub smoothing: f64,
    /// Lowest gain applied to any bin (limits musical noise and speech damage).
    pub min_gain: f64,
}

impl Default for DenoiseConfig {
    fn default() -> Self {
        Self {
            frame_seconds: 0.032,
            noise_quantile: 0.1,
            smoothing: 0.98,
            min_gain: 0.1,
        }
    }
}

/// Fewest frames from which a noise spectrum is estimated; shorter signals are left as they are.
const MIN_FRAMES: usize = 8;

/// Removes stationary background noise with a Wiener gain per frequency bin.
///
/// The signal is cut into half-overlapping frames (square-root Hann analysis and synthesis
/// windows, which reconstruct the input exactly when every gain is one). The noise power
/// spectrum is the mean over the `noise_quantile` quietest frames, so no separate noise
/// recording is needed; the a-priori SNR follows the decision-directed rule and the gain is
/// `ξ / (1 + ξ)`, floored at `min_gain`. Signals too short to estimate noise from (under
/// eight frames) are returned unchanged.
pub fn denoise(samples: &[f32], sample_rate: u32, cfg: &DenoiseConfig) -> Vec<f32> {
    let n = ((cfg.frame_seconds * sample_rate as f64).ceil() as usize)
        .next_power_of_two()
        .max(16);
    let hop = n / 2;
    if samples.is_empty() {
        return Vec::new();
    }
    // Half a frame of zeros before the signal, and enough frames that every sample is covered
    // by two half-overlapping frames (the condition for exact overlap-add reconstruction).
    let frames = (samples.len() - 1) / hop + 2;
    let padded_len = (frames + 1) * hop;
    if frames < MIN_FRAMES {
        return samples.to_vec();
    }
    let window: Vec<f64> = (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()).sqrt())
        .collect();
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let bins = n / 2 + 1;
    let sample_at = |i: usize| -> f64 {
        i.checked_sub(hop)
            .and_then(|j| samples.get(j))
            .map_or(0.0, |&s| s as f64)
    };

    // Analysis: keep every frame's spectrum (a few MB for minutes of audio).
    let mut spectra: Vec<Complex<f64>> = Vec::with_capacity(frames * bins);
    let mut frame = fwd.make_input_vec();
    let mut spec = fwd.make_output_vec();
    for f in 0..frames {
        for (i, slot) in frame.iter_mut().enumerate() {
            *slot = sample_at(f * hop + i) * window[i];
        }
        fwd.process(&mut frame, &mut spec)
            .expect("plan-sized buffers");
        spectra.extend_from_slice(&spec);
    }

    let noise = noise_spectrum(&spectra, bins, cfg.noise_quantile);

    // Wiener gains with the decision-directed a-priori SNR.
    let mut prev_clean_snr = vec![0.0f64; bins];
    for frame_spec in spectra.chunks_exact_mut(bins) {
        for (k, c) in frame_spec.iter_mut().enumerate() {
            let posterior = c.norm_sqr() / noise[k];
            let prior = cfg.smoothing * prev_clean_snr[k]
                + (1.0 - cfg.smoothing) * (posterior - 1.0).max(0.0);
            let gain = (prior / (1.0 + prior)).max(cfg.min_gain);
            prev_clean_snr[k] = gain * gain * posterior;
            *c *= gain;
        }
    }

    // Synthesis: inverse FFT, synthesis window, overlap-add.
    let mut out = vec![0.0f64; padded_len];
    let mut time = inv.make_output_vec();
    for (f, frame_spec) in spectra.chunks_exact_mut(bins).enumerate() {
        // A real signal's DC and Nyquist bins are real; rounding can leave a tiny imaginary part.
        frame_spec[0].im = 0.0;
        frame_spec[bins - 1].im = 0.0;
        inv.process(frame_spec, &mut time)
            .expect("plan-sized buffers");
        for (i, &v) in time.iter().enumerate() {
            out[f * hop + i] += v * window[i] / n as f64;
        }
    }
    out[hop..hop + samples.len()]
        .iter()
        .map(|&v| v as f32)
        .collect()
}

/// Mean power spectrum of the quietest `quantile` of frames, floored so that digital silence
/// (zero noise) gives finite, very large SNRs rather than divisions by zero.
fn noise_spectrum(spectra: &[Complex<f64>], bins: usize, quantile: f64) -> Vec<f64> {
    let mut energies: Vec<(f64, usize)> = spectra
        .chunks_exact(bins)
        .enumerate()
        .map(|(f, s)| (s.iter().map(|c| c.norm_sqr()).sum(), f))
        .collect();
    energies.sort_by(|a, b| a.0.total_cmp(&b.0));
    let take = ((energies.len() as f64 * quantile).ceil() as usize).clamp(1, energies.len());
    let mut noise = vec![0.0; bins];
    for &(_, f) in &energies[..take] {
        for (acc, c) in noise.iter_mut().zip(&spectra[f * bins..(f + 1) * bins]) {
            *acc += c.norm_sqr() / take as f64;
        }
    }
    // Floor: 1e-10 of the loudest frame's mean bin power, and an absolute 1e-20.
    let loudest = energies.last().map_or(0.0, |e| e.0) / bins as f64;
    let floor = (loudest * 1e-10).max(1e-20);
    noise.iter_mut().for_each(|v| *v = v.max(floor));
    noise
}

/// Cuts leading and trailing silence: frames (25 ms, 10 ms hop) whose energy is more than
/// `top_db` below the loudest frame (librosa `effects.trim`-style). Returns the kept range of
/// sample indices; a signal with no frame above the threshold is kept whole.
pub fn trim_silence_range(
    samples: &[f32],
    sample_rate: u32,
    top_db: f64,
) -> std::ops::Range<usize> {
    trim_range(samples, sample_rate, |max| max * 10f64.powf(-top_db / 10.0))
}

/// Cuts leading and trailing frames (25 ms, 10 ms hop) whose mean power is at most `power`
/// (an absolute floor, e.g. a multiple of a known noise floor's power). A signal with no louder
/// frame is kept whole.
pub fn trim_below(samples: &[f32], sample_rate: u32, power: f64) -> std::ops::Range<usize> {
    trim_range(samples, sample_rate, |_| power)
}

/// The kept range: from the first to the last frame louder than `threshold(loudest frame)`.
fn trim_range(
    samples: &[f32],
    sample_rate: u32,
    threshold: impl Fn(f64) -> f64,
) -> std::ops::Range<usize> {
    let win = ((0.025 * sample_rate as f64) as usize).max(1);
    let hop = ((0.010 * sample_rate as f64) as usize).max(1);
    if samples.len() <= win {
        return 0..samples.len();
    }
    let energies: Vec<f64> = (0..=(samples.len() - win) / hop)
        .map(|f| {
            let s = &samples[f * hop..f * hop + win];
            s.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / win as f64
        })
        .collect();
    let max = energies.iter().cloned().fold(0.0, f64::max);
    if max <= 0.0 {
        return 0..samples.len();
    }
    let threshold = threshold(max);
    if max <= threshold {
        return 0..samples.len();
    }
    let loud = |e: &f64| *e > threshold;
    let first = energies.iter().position(loud).unwrap_or(0);
    let last = energies
        .iter()
        .rposition(loud)
        .unwrap_or(energies.len() - 1);
    first * hop..(last * hop + win).min(samples.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsignal::{speech_like, white_noise};

    fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
        let sig: f64 = reference.iter().map(|&v| (v as f64).powi(2)).sum();
        let err: f64 = reference
            .iter()
            .zip(test)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum();
        10.0 * (sig / err).log10()
    }

    fn mix(clean: &[f32], noise: &[f32], snr: f64) -> Vec<f32> {
        let ps: f64 = clean.iter().map(|&v| (v as f64).powi(2)).sum();
        let pn: f64 = noise.iter().map(|&v| (v as f64).powi(2)).sum();
        let g = (ps / pn / 10f64.powf(snr / 10.0)).sqrt();
        clean
            .iter()
            .zip(noise)
            .map(|(&c, &n)| c + (g * n as f64) as f32)
            .collect()
    }

    #[test]
    fn denoising_raises_snr_of_speech_in_white_noise() {
        for seed in [1, 2, 3] {
            let clean = speech_like(16000, 3.0, seed);
            let noisy = mix(&clean, &white_noise(clean.len(), seed + 100), 5.0);
            let before = snr_db(&clean, &noisy);
            let after = snr_db(&clean, &denoise(&noisy, 16000, &DenoiseConfig::default()));
            assert!((before - 5.0).abs() < 0.01);
            assert!(
                after > before + 4.0,
                "seed {seed}: {before:.2} dB -> {after:.2} dB"
            );
        }
    }

    #[test]
    fn denoising_leaves_clean_speech_nearly_untouched() {
        let clean = speech_like(16000, 3.0, 7);
        // A studio recording: 45 dB SNR of hiss.
        let input = mix(&clean, &white_noise(clean.len(), 8), 45.0);
        let out = denoise(&input, 16000, &DenoiseConfig::default());
        assert_eq!(out.len(), input.len());
        let change = snr_db(&input, &out);
        assert!(
            change > 20.0,
            "clean speech changed: only {change:.1} dB SNR vs input"
        );
    }

    #[test]
    fn denoising_with_unit_gain_reconstructs_exactly() {
        let x = speech_like(8000, 1.0, 3);
        let cfg = DenoiseConfig {
            min_gain: 1.0,
            ..DenoiseConfig::default()
        };
        let y = denoise(&x, 8000, &cfg);
        let worst = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn short_and_silent_signals_are_safe() {
        assert!(denoise(&[], 16000, &DenoiseConfig::default()).is_empty());
        assert_eq!(
            denoise(&[0.5; 100], 16000, &DenoiseConfig::default()),
            vec![0.5; 100]
        );
        let silence = vec![0.0; 16000];
        assert_eq!(denoise(&silence, 16000, &DenoiseConfig::default()), silence);
    }

    #[test]
    fn peak_normalisation() {
        let mut x = vec![0.1, -0.25, 0.2];
        normalise_peak(&mut x, 1.0);
        assert_eq!(x, vec![0.4, -1.0, 0.8]);
        let mut z = vec![0.0; 4];
        normalise_peak(&mut z, 1.0);
        assert_eq!(z, vec![0.0; 4]);
    }

    #[test]
    fn trimming_cuts_leading_and_trailing_silence() {
        let sr = 16000;
        let mut x = vec![0.0f32; sr as usize / 2];
        x.extend(speech_like(sr, 1.0, 5));
        x.extend(vec![0.0f32; sr as usize]);
        let r = trim_silence_range(&x, sr, 60.0);
        assert!(r.start >= 7000 && r.start <= 8000, "{r:?}");
        assert!(r.end >= 23000 && r.end <= 24500, "{r:?}");
        let silence = vec![0.0f32; 1000];
        assert_eq!(trim_silence_range(&silence, sr, 60.0), 0..1000);
    }
}
