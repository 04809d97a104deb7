//! Band-limited sample-rate conversion with `rubato`.
//!
//! Fixed ratios between common rates (8, 11.025, 16, 22.05, 44.1, 48 kHz, ...) use rubato's
//! synchronous FFT resampler; unusual ratios fall back to its windowed-sinc resampler. The
//! output is time-aligned with the input (the resampler's delay is removed) and holds exactly
//! `round(len × to / from)` samples.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// The rate conversion could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot resample {from} Hz -> {to} Hz: {reason}")]
pub struct ResampleError {
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// Largest reduced ratio term handled by the FFT resampler (beyond it: sinc).
const FFT_MAX_BASE_BLOCK: usize = 8192;
/// The FFT block of the smaller side is at least this long (filter sharpness).
const FFT_MIN_SMALL_BLOCK: usize = 1024;
const FFT_MAX_LARGE_BLOCK: usize = 16384;

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resamples mono `input` from `from` Hz to `to` Hz.
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    let fail = |reason: String| ResampleError { from, to, reason };
    if from == 0 || to == 0 {
        return Err(fail("rates must be positive".into()));
    }
    if from == to || input.is_empty() {
        return Ok(input.to_vec());
    }
    let (f, t) = (from as usize, to as usize);
    let n_out = ((input.len() as u128 * t as u128 + f as u128 / 2) / f as u128) as usize;
    let g = gcd(f, t);
    let (base_in, base_out) = (f / g, t / g);
    let mut resampler: Box<dyn Resampler<f32>> = if base_in.max(base_out) <= FFT_MAX_BASE_BLOCK {
        // The FFT block must be an even multiple of the reduced ratio, or the output is
        // misaligned by a fraction of a sample.
        let small = base_in.min(base_out);
        let large = base_in.max(base_out);
        let mut k = FFT_MIN_SMALL_BLOCK.div_ceil(small);
        k = k.min((FFT_MAX_LARGE_BLOCK / large).max(1));
        k += k & 1;
        Box::new(
            Fft::<f32>::new_custom(
                f,
                t,
                k * base_in,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Both,
            )
            .map_err(|e| fail(e.to_string()))?,
        )
    } else {
        let ratio = t as f64 / f as f64;
        // rubato's sinc delay is off by 1 − fract(len·ratio/2) samples; pick the filter length
        // that makes that residue smallest.
        let sinc_len = (32..=64)
            .map(|m| 8 * m)
            .max_by(|&a, &b| {
                (a as f64 * ratio / 2.0)
                    .fract()
                    .total_cmp(&(b as f64 * ratio / 2.0).fract())
            })
            .unwrap_or(256);
        let params = SincInterpolationParameters::new(sinc_len, WindowFunction::BlackmanHarris2)
            .oversampling_factor(256)
            .interpolation(SincInterpolationType::Cubic);
        Box::new(
            Async::<f32>::new_sinc(ratio, 1.0, &params, 1024, 1, FixedAsync::Input)
                .map_err(|e| fail(e.to_string()))?,
        )
    };
    let adapter = InterleavedSlice::new(input, 1, input.len()).map_err(|e| fail(e.to_string()))?;
    let resampled = resampler
        .process_all(&adapter, input.len(), None)
        .map_err(|e| fail(e.to_string()))?;
    let mut out = resampled.take_data();
    out.resize(n_out, 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (0.5 * (std::f64::consts::TAU * hz * i as f64 / rate as f64).sin()) as f32)
            .collect()
    }

    fn max_error_inside(out: &[f32], rate: u32, hz: f64) -> f32 {
        let edge = rate as usize / 100; // ignore 10 ms at both ends
        let want = sine(rate, hz, out.len());
        out[edge..out.len() - edge]
            .iter()
            .zip(&want[edge..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn common_rates_to_16k_keep_a_tone_aligned() {
        for from in [8000, 11025, 22050, 44100, 48000] {
            let input = sine(from, 1000.0, from as usize + 37);
            let out = resample(&input, from, 16000).unwrap();
            let want_len = ((input.len() as f64) * 16000.0 / from as f64).round() as usize;
            assert_eq!(out.len(), want_len, "{from}");
            let err = max_error_inside(&out, 16000, 1000.0);
            assert!(err < 2e-3, "{from} Hz: max error {err}");
        }
    }

    #[test]
    fn odd_ratio_uses_sinc_and_stays_aligned() {
        let input = sine(44100, 500.0, 30000);
        let out = resample(&input, 44100, 16001).unwrap();
        assert!(max_error_inside(&out, 16001, 500.0) < 1e-2);
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        // 7 kHz is above 4 kHz (Nyquist of 8 kHz): it must not alias down to 1 kHz.
        let input = sine(16000, 7000.0, 16000);
        let out = resample(&input, 16000, 8000).unwrap();
        let rms = (out[400..7600].iter().map(|v| v * v).sum::<f32>() / 7200.0).sqrt();
        assert!(rms < 1e-3, "aliased energy {rms}");
    }

    #[test]
    fn same_rate_and_empty_are_identity() {
        assert_eq!(resample(&[0.1, 0.2], 16000, 16000).unwrap(), vec![0.1, 0.2]);
        assert!(resample(&[], 8000, 16000).unwrap().is_empty());
        assert!(resample(&[0.1], 0, 16000).is_err());
    }
}
