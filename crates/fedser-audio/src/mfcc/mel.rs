//! Mel filterbanks in the two conventions: python_speech_features (HTK mel, triangles on
//! integer FFT bins) and librosa (Slaney mel, triangles on exact bin frequencies, area
//! normalised). Both are stored sparsely: each filter touches only a few bins.

/// A bank of triangular filters over the `nfft/2 + 1` bins of a power spectrum.
#[derive(Debug, Clone)]
pub struct MelBank {
    filters: Vec<SparseFilter>,
}

#[derive(Debug, Clone)]
struct SparseFilter {
    first_bin: usize,
    weights: Vec<f64>,
}

impl MelBank {
    fn from_dense(rows: Vec<Vec<f64>>) -> Self {
        let filters = rows
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(0, |l| l + 1);
                SparseFilter {
                    first_bin: first,
                    weights: row[first..last.max(first)].to_vec(),
                }
            })
            .collect();
        Self { filters }
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// True when the bank has no filters.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Applies every filter to `power` (length `nfft/2 + 1`), writing one energy per filter.
    pub fn apply(&self, power: &[f64], out: &mut [f64]) {
        for (filter, o) in self.filters.iter().zip(out.iter_mut()) {
            let bins = &power[filter.first_bin..filter.first_bin + filter.weights.len()];
            *o = super::dot(&filter.weights, bins);
        }
    }

    /// The bank as a dense `filters × bins` matrix (for tests and inspection).
    pub fn to_dense(&self, bins: usize) -> Vec<Vec<f64>> {
        self.filters
            .iter()
            .map(|f| {
                let mut row = vec![0.0; bins];
                row[f.first_bin..f.first_bin + f.weights.len()].copy_from_slice(&f.weights);
                row
            })
            .collect()
    }
}

/// `numpy.linspace(start, stop, num)` exactly as numpy computes it (`start + i*step`, last
/// point set to `stop`), because the psf bank floors these values and an ulp can move a bin.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

fn hz_to_mel_htk(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz_htk(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

/// python_speech_features `get_filterbanks(nfilt, nfft, samplerate, lowfreq, highfreq)`.
pub fn psf_filterbank(nfilt: usize, nfft: usize, sample_rate: f64, low: f64, high: f64) -> MelBank {
    let bins_len = nfft / 2 + 1;
    let mel_points = linspace(hz_to_mel_htk(low), hz_to_mel_htk(high), nfilt + 2);
    let bin: Vec<f64> = mel_points
        .iter()
        .map(|&m| ((nfft + 1) as f64 * mel_to_hz_htk(m) / sample_rate).floor())
        .collect();
    let rows = (0..nfilt)
        .map(|j| {
            let mut row = vec![0.0; bins_len];
            let (lo, mid, hi) = (bin[j], bin[j + 1], bin[j + 2]);
            // psf's two loops: rising edge on [lo, mid), falling edge on [mid, hi).
            for (i, w) in row.iter_mut().enumerate() {
                let bin = i as f64;
                if bin >= lo && bin < mid {
                    *w = (bin - lo) / (mid - lo);
                } else if bin >= mid && bin < hi {
                    *w = (hi - bin) / (hi - mid);
                }
            }
            row
        })
        .collect();
    MelBank::from_dense(rows)
}

const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;

fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel_slaney(hz: f64) -> f64 {
    if hz >= SLANEY_MIN_LOG_HZ {
        SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
    } else {
        hz / SLANEY_F_SP
    }
}

fn mel_to_hz_slaney(mel: f64) -> f64 {
    if mel >= SLANEY_MIN_LOG_MEL {
        SLANEY_MIN_LOG_HZ * (slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL)).exp()
    } else {
        SLANEY_F_SP * mel
    }
}

/// librosa `filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney')`.
pub fn slaney_filterbank(
    n_mels: usize,
    nfft: usize,
    sample_rate: f64,
    fmin: f64,
    fmax: f64,
) -> MelBank {
    let bins_len = nfft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins_len)
        .map(|k| k as f64 * sample_rate / nfft as f64)
        .collect();
    let mel_f: Vec<f64> = linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax), n_mels + 2)
        .into_iter()
        .map(mel_to_hz_slaney)
        .collect();
    let rows = (0..n_mels)
        .map(|i| {
            let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
            let enorm = 2.0 / (f2 - f0);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - f0) / (f1 - f0);
                    let upper = (f2 - f) / (f2 - f1);
                    lower.min(upper).max(0.0) * enorm
                })
                .collect()
        })
        .collect();
    MelBank::from_dense(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psf_bank_peaks_at_one_and_covers_the_band() {
        let bank = psf_filterbank(26, 512, 16000.0, 0.0, 8000.0);
        let dense = bank.to_dense(257);
        assert_eq!(dense.len(), 26);
        for row in &dense {
            let max = row.iter().cloned().fold(0.0, f64::max);
            assert!((max - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn slaney_scale_is_linear_below_1khz_and_continuous() {
        assert!((hz_to_mel_slaney(500.0) - 7.5).abs() < 1e-12);
        let m = hz_to_mel_slaney(1000.0);
        assert!((mel_to_hz_slaney(m) - 1000.0).abs() < 1e-9);
        assert!((mel_to_hz_slaney(hz_to_mel_slaney(4321.0)) - 4321.0).abs() < 1e-9);
    }

    #[test]
    fn linspace_matches_numpy_endpoints() {
        let v = linspace(0.0, 1.0, 5);
        assert_eq!(v, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }
}
