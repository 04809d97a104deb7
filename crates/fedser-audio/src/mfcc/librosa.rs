//! librosa 0.11 `feature.mfcc`, step for step:
//! centred frames (signal zero-padded by nfft/2 on both sides) → window of `win` samples
//! centred inside nfft → `|rfft|²` → Slaney mel (area normalised) → `power_to_db`
//! (`10 log10(max(1e-10, S))`, floored at `max − top_db` over the whole signal) →
//! orthonormal DCT-II.

use super::window::{self, WindowKind};
use super::{FrameGeometry, Mfcc};

const AMIN: f64 = 1e-10;

/// A periodic window of `win` samples zero-padded to `nfft`, centred (librosa `pad_center`).
pub(super) fn centred_window(kind: WindowKind, win: usize, nfft: usize) -> Vec<f64> {
    let mut w = vec![0.0; nfft];
    let left = (nfft - win) / 2;
    w[left..left + win].copy_from_slice(&window::periodic(kind, win));
    w
}

pub(super) fn frame_count(len: usize, g: FrameGeometry) -> usize {
    let pad = g.nfft / 2;
    1 + (len + 2 * pad - g.nfft) / g.step
}

pub(super) fn compute(m: &mut Mfcc, samples: &[f32]) -> Vec<f32> {
    let g = m.geometry;
    let frames = frame_count(samples.len(), g);
    let pad = (g.nfft / 2) as isize;
    let nfilt = m.bank.len();
    // First pass: mel power in dB for every frame (the top_db floor needs the global max).
    let mut db = Vec::with_capacity(frames * nfilt);
    for f in 0..frames {
        let start = (f * g.step) as isize - pad;
        let frame = &mut m.scratch.frame;
        for (i, (slot, w)) in frame.iter_mut().zip(&m.window).enumerate() {
            let idx = start + i as isize;
            *slot = if idx >= 0 && (idx as usize) < samples.len() {
                samples[idx as usize] as f64 * w
            } else {
                0.0
            };
        }
        m.power_spectrum();
        let s = &mut m.scratch;
        m.bank.apply(&s.power, &mut s.mel);
        db.extend(s.mel.iter().map(|&e| 10.0 * e.max(AMIN).log10()));
    }
    if let Some(top_db) = m.top_db {
        let floor = db.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - top_db;
        for v in &mut db {
            *v = v.max(floor);
        }
    }
    let mut out = Vec::with_capacity(frames * m.numcep);
    for row in db.chunks_exact(nfilt) {
        m.cepstrum(row, &mut out);
    }
    out
}
