//! python_speech_features 0.6 `mfcc`, step for step:
//! pre-emphasis → framing (round-half-up lengths, last frame zero-padded) → window →
//! `|rfft(frame, nfft)|² / nfft` (frames longer than nfft are truncated, as numpy does) →
//! HTK filterbank on integer bins → zeros replaced by machine epsilon → natural log →
//! orthonormal DCT-II → lifter → c0 := log frame energy.

use super::{FrameGeometry, Mfcc};

/// `numpy.finfo(float).eps`, psf's floor for zero energies.
const EPS: f64 = f64::EPSILON;

pub(super) fn frame_count(len: usize, g: FrameGeometry) -> usize {
    if len <= g.win {
        1
    } else {
        1 + (len - g.win).div_ceil(g.step)
    }
}

pub(super) fn compute(m: &mut Mfcc, samples: &[f32]) -> Vec<f32> {
    let g = m.geometry;
    let frames = frame_count(samples.len(), g);
    let used = g.win.min(g.nfft);
    // Pre-emphasised signal, zero-padded to cover the last frame:
    // y[0] = x[0], y[i] = x[i] - a x[i-1].
    let padded_len = (frames - 1) * g.step + g.win;
    let mut emphasised = std::mem::take(&mut m.scratch.signal);
    emphasised.clear();
    emphasised.reserve(padded_len);
    emphasised.push(samples[0] as f64);
    emphasised.extend(
        samples
            .windows(2)
            .map(|w| w[1] as f64 - m.preemph * w[0] as f64),
    );
    emphasised.resize(padded_len, 0.0);
    let nfilt = m.bank.len();
    let mut out = Vec::with_capacity(frames * m.numcep);
    let mut log_mel = vec![0.0; nfilt];
    let scale = 1.0 / g.nfft as f64;
    // Expected |rfft|² / nfft of pre-emphasised, windowed white noise of variance σ²:
    // σ² Σ w² |1 - a e^{-iω}|² / nfft per bin.
    let floor: Vec<f64> = if m.floor_power > 0.0 {
        let energy: f64 = m.window[..used].iter().map(|w| w * w).sum();
        (0..g.nfft / 2 + 1)
            .map(|k| {
                let omega = std::f64::consts::TAU * k as f64 / g.nfft as f64;
                let emphasis = 1.0 + m.preemph * m.preemph - 2.0 * m.preemph * omega.cos();
                m.floor_power * energy * emphasis * scale
            })
            .collect()
    } else {
        Vec::new()
    };
    for f in 0..frames {
        let start = f * g.step;
        let frame = &mut m.scratch.frame;
        let source = &emphasised[start..start + used];
        for ((slot, x), w) in frame.iter_mut().zip(source).zip(&m.window) {
            *slot = x * w;
        }
        frame[used..].fill(0.0);
        m.power_spectrum();
        let s = &mut m.scratch;
        s.power.iter_mut().for_each(|p| *p *= scale);
        for (p, f) in s.power.iter_mut().zip(&floor) {
            *p += f;
        }
        let energy = super::sum(&s.power);
        m.bank.apply(&s.power, &mut s.mel);
        for (l, &e) in log_mel.iter_mut().zip(&s.mel) {
            *l = if e == 0.0 { EPS } else { e }.ln();
        }
        let row_start = out.len();
        m.cepstrum(&log_mel, &mut out);
        if m.append_energy {
            out[row_start] = if energy == 0.0 { EPS } else { energy }.ln() as f32;
        }
    }
    m.scratch.signal = emphasised;
    out
}
