//! Analysis windows, in the two conventions the reference libraries use.

use std::f64::consts::PI;

/// The shape of the analysis window applied to each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// All ones (python_speech_features' default).
    Rect,
    /// Hamming, 0.54 − 0.46 cos.
    Hamming,
    /// Hann, 0.5 − 0.5 cos (librosa's default).
    Hann,
}

impl std::str::FromStr for WindowKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "rect" | "rectangular" | "none" | "ones" => Ok(WindowKind::Rect),
            "hamming" => Ok(WindowKind::Hamming),
            "hann" | "hanning" => Ok(WindowKind::Hann),
            _ => Err(format!(
                "unknown window {s:?} (expected rect, hamming or hann)"
            )),
        }
    }
}

/// Symmetric window of `len` samples, as `numpy.hamming` / `numpy.hanning` build them
/// (denominator `len − 1`; a one-sample window is `[1]`). python_speech_features users pass these.
pub fn symmetric(kind: WindowKind, len: usize) -> Vec<f64> {
    cosine_window(kind, len, len.saturating_sub(1))
}

/// Periodic window of `len` samples, as `scipy.signal.get_window(.., fftbins=True)` builds it
/// for librosa (denominator `len`).
pub fn periodic(kind: WindowKind, len: usize) -> Vec<f64> {
    cosine_window(kind, len, len)
}

fn cosine_window(kind: WindowKind, len: usize, denominator: usize) -> Vec<f64> {
    let (a, b) = match kind {
        WindowKind::Rect => return vec![1.0; len],
        WindowKind::Hamming => (0.54, 0.46),
        WindowKind::Hann => (0.5, 0.5),
    };
    if denominator == 0 {
        return vec![1.0; len];
    }
    (0..len)
        .map(|n| a - b * (2.0 * PI * n as f64 / denominator as f64).cos())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_hamming_matches_numpy() {
        // numpy.hamming(5) = [0.08, 0.54, 1.0, 0.54, 0.08]
        let w = symmetric(WindowKind::Hamming, 5);
        for (a, b) in w.iter().zip([0.08, 0.54, 1.0, 0.54, 0.08]) {
            assert!((a - b).abs() < 1e-12, "{w:?}");
        }
        assert_eq!(symmetric(WindowKind::Hann, 1), vec![1.0]);
    }

    #[test]
    fn periodic_hann_matches_scipy() {
        // scipy.signal.get_window('hann', 4) = [0, 0.5, 1, 0.5]
        let w = periodic(WindowKind::Hann, 4);
        for (a, b) in w.iter().zip([0.0, 0.5, 1.0, 0.5]) {
            assert!((a - b).abs() < 1e-12, "{w:?}");
        }
    }
}
