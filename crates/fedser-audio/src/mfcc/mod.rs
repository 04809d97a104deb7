//! MFCCs that agree numerically with python_speech_features 0.6 (`psf` style) and
//! librosa 0.11 (`librosa` style).
//!
//! Input: mono samples as floats in [-1, 1] (int16 / 32768) at `sample_rate` Hz.
//! Output: a [`FeatureMatrix`] of `frames × numcep`, one row per frame.
//!
//! Defaults are the paper's: 13 coefficients, 20 ms window, 20 ms step, 26 mel filters,
//! NFFT 512 (psf style), pre-emphasis 0.97, lifter 22, c0 replaced by the log frame energy.

mod dct;
mod librosa;
mod mel;
mod psf;
pub mod window;

use std::sync::Arc;

use fedser_core::FeatureMatrix;
use realfft::{RealFftPlanner, RealToComplex};

pub use mel::MelBank;
pub use window::WindowKind;

/// Which reference implementation to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfccStyle {
    /// python_speech_features 0.6 `mfcc`.
    Psf,
    /// librosa 0.11 `feature.mfcc`.
    Librosa,
}

impl std::str::FromStr for MfccStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "psf" | "python_speech_features" => Ok(MfccStyle::Psf),
            "librosa" => Ok(MfccStyle::Librosa),
            _ => Err(format!(
                "unknown MFCC style {s:?} (expected psf or librosa)"
            )),
        }
    }
}

/// Everything that determines the MFCC of a signal. Optional fields take the style's default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfccConfig {
    /// Reference implementation to reproduce.
    pub style: MfccStyle,
    /// Window length in seconds (default 0.02).
    pub winlen: f64,
    /// Step between frames in seconds (default 0.02).
    pub winstep: f64,
    /// Number of cepstral coefficients kept (default 13).
    pub numcep: usize,
    /// Mel filters: default 26 (psf) or 128 (librosa).
    pub nfilt: Option<usize>,
    /// FFT size: default 512 (psf, which truncates longer frames exactly as psf does) or the
    /// next power of two ≥ max(512, window) (librosa).
    pub nfft: Option<usize>,
    /// Analysis window: default rectangular (psf) or Hann (librosa).
    pub window: Option<WindowKind>,
    /// Lowest filter edge in Hz (default 0).
    pub lowfreq: f64,
    /// Highest filter edge in Hz (default: Nyquist).
    pub highfreq: Option<f64>,
    /// psf only: pre-emphasis coefficient (default 0.97; 0 disables).
    pub preemph: f64,
    /// psf only: sinusoidal lifter (default 22; 0 disables).
    pub ceplifter: usize,
    /// psf only: replace c0 by the log frame energy (default true).
    pub append_energy: bool,
    /// librosa only: dynamic range floor of `power_to_db` in dB (default 80).
    pub top_db: Option<f64>,
}

impl Default for MfccConfig {
    fn default() -> Self {
        Self::psf()
    }
}

impl MfccConfig {
    /// The paper's setting in python_speech_features style.
    pub fn psf() -> Self {
        Self {
            style: MfccStyle::Psf,
            winlen: 0.02,
            winstep: 0.02,
            numcep: 13,
            nfilt: None,
            nfft: None,
            window: None,
            lowfreq: 0.0,
            highfreq: None,
            preemph: 0.97,
            ceplifter: 22,
            append_energy: true,
            top_db: None,
        }
    }

    /// The paper's framing (20 ms / 20 ms, 13 coefficients) in librosa style.
    pub fn librosa() -> Self {
        Self {
            style: MfccStyle::Librosa,
            ..Self::psf()
        }
    }
}

/// Why an MFCC could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MfccError {
    #[error("the signal is empty (zero samples)")]
    EmptySignal,
    #[error("the signal contains a non-finite sample (NaN or infinity) at index {0}")]
    NonFinite(usize),
    #[error("invalid MFCC configuration: {0}")]
    Config(String),
}

/// Frame geometry in samples, resolved from a config and a sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameGeometry {
    /// Window length in samples.
    pub win: usize,
    /// Step in samples.
    pub step: usize,
    /// FFT size.
    pub nfft: usize,
}

/// python_speech_features' `round_half_up` (exact for the products of seconds × rate we see).
fn round_half_up(x: f64) -> usize {
    (x + 0.5).floor() as usize
}

impl FrameGeometry {
    /// The geometry a config implies at `sample_rate`.
    pub fn resolve(cfg: &MfccConfig, sample_rate: u32) -> Result<Self, MfccError> {
        let sr = sample_rate as f64;
        let (win, step) = match cfg.style {
            MfccStyle::Psf => (
                round_half_up(cfg.winlen * sr),
                round_half_up(cfg.winstep * sr),
            ),
            // librosa users write int(round(0.02 * sr)): Python rounds half to even.
            MfccStyle::Librosa => (
                (cfg.winlen * sr).round_ties_even() as usize,
                (cfg.winstep * sr).round_ties_even() as usize,
            ),
        };
        let nfft = match (cfg.nfft, cfg.style) {
            (Some(n), _) => n,
            (None, MfccStyle::Psf) => 512,
            (None, MfccStyle::Librosa) => win.max(512).next_power_of_two(),
        };
        Ok(Self { win, step, nfft })
    }
}

/// A reusable MFCC extractor for one configuration and sample rate: the FFT plan, window,
/// filterbank and DCT are built once, so extracting many recordings costs only the transforms.
pub struct Mfcc {
    style: MfccStyle,
    geometry: FrameGeometry,
    numcep: usize,
    window: Vec<f64>,
    bank: MelBank,
    /// `numcep × nfilt`, row-major, lifter folded in.
    dct: Vec<f64>,
    preemph: f64,
    append_energy: bool,
    top_db: Option<f64>,
    /// Variance of the white noise whose expected power the current call adds (0: none).
    floor_power: f64,
    fft: Arc<dyn RealToComplex<f64>>,
    scratch: Scratch,
}

struct Scratch {
    /// The whole pre-processed signal (psf: pre-emphasised and padded), reused across calls.
    signal: Vec<f64>,
    frame: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    fft: Vec<realfft::num_complex::Complex<f64>>,
    power: Vec<f64>,
    mel: Vec<f64>,
}

/// Largest FFT we accept: far beyond any speech setting, small enough to never exhaust memory.
const MAX_NFFT: usize = 1 << 16;

impl Mfcc {
    /// Builds an extractor for `cfg` at `sample_rate` Hz.
    pub fn new(cfg: &MfccConfig, sample_rate: u32) -> Result<Self, MfccError> {
        let geometry = FrameGeometry::resolve(cfg, sample_rate)?;
        Self::with_geometry(cfg, sample_rate, geometry)
    }

    /// Builds an extractor with an explicit frame geometry in samples (e.g. librosa's own
    /// defaults of `n_fft=2048, hop_length=512`).
    pub fn with_geometry(
        cfg: &MfccConfig,
        sample_rate: u32,
        geometry: FrameGeometry,
    ) -> Result<Self, MfccError> {
        let bad = |m: String| Err(MfccError::Config(m));
        let FrameGeometry { win, step, nfft } = geometry;
        if !(1..=1_000_000).contains(&sample_rate) {
            return bad(format!("sample rate {sample_rate} Hz is out of range"));
        }
        if win == 0 || step == 0 {
            return bad(format!(
                "window ({} s) and step ({} s) must each span at least one sample at {sample_rate} Hz",
                cfg.winlen, cfg.winstep
            ));
        }
        if !(16..=MAX_NFFT).contains(&nfft) {
            return bad(format!("nfft {nfft} must lie in 16..={MAX_NFFT}"));
        }
        if win > MAX_NFFT * 4 || step > MAX_NFFT * 4 {
            return bad(format!(
                "window of {win} samples or step of {step} samples is too long"
            ));
        }
        let nfilt = cfg.nfilt.unwrap_or(match cfg.style {
            MfccStyle::Psf => 26,
            MfccStyle::Librosa => 128,
        });
        if nfilt == 0 || nfilt > 1024 {
            return bad(format!("nfilt {nfilt} must lie in 1..=1024"));
        }
        if cfg.numcep == 0 || cfg.numcep > nfilt {
            return bad(format!(
                "numcep {} must lie in 1..=nfilt ({nfilt})",
                cfg.numcep
            ));
        }
        let nyquist = sample_rate as f64 / 2.0;
        let high = cfg.highfreq.unwrap_or(nyquist);
        if !(cfg.lowfreq >= 0.0 && cfg.lowfreq < high && high <= nyquist) {
            return bad(format!(
                "filter band {}..{high} Hz must satisfy 0 <= low < high <= Nyquist ({nyquist} Hz)",
                cfg.lowfreq
            ));
        }
        if !cfg.preemph.is_finite() {
            return bad("pre-emphasis must be finite".into());
        }
        let kind = cfg.window.unwrap_or(match cfg.style {
            MfccStyle::Psf => WindowKind::Rect,
            MfccStyle::Librosa => WindowKind::Hann,
        });
        let (window, bank, lift) = match cfg.style {
            MfccStyle::Psf => (
                window::symmetric(kind, win),
                mel::psf_filterbank(nfilt, nfft, sample_rate as f64, cfg.lowfreq, high),
                dct::psf_lifter(cfg.numcep, cfg.ceplifter),
            ),
            MfccStyle::Librosa => {
                if win > nfft {
                    return bad(format!(
                        "librosa style needs the window ({win} samples) to fit in nfft ({nfft})"
                    ));
                }
                (
                    librosa::centred_window(kind, win, nfft),
                    mel::slaney_filterbank(nfilt, nfft, sample_rate as f64, cfg.lowfreq, high),
                    vec![1.0; cfg.numcep],
                )
            }
        };
        let top_db = match (cfg.style, cfg.top_db) {
            (MfccStyle::Librosa, None) => Some(80.0),
            (_, t) => t,
        };
        let dct = dct::dct2_ortho_rows(cfg.numcep, nfilt, &lift);
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(nfft);
        let scratch = Scratch {
            signal: Vec::new(),
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            fft: fft.make_scratch_vec(),
            power: vec![0.0; nfft / 2 + 1],
            mel: vec![0.0; nfilt],
        };
        Ok(Self {
            style: cfg.style,
            geometry,
            numcep: cfg.numcep,
            window,
            bank,
            dct,
            preemph: cfg.preemph,
            append_energy: cfg.append_energy,
            top_db,
            floor_power: 0.0,
            fft,
            scratch,
        })
    }

    /// The resolved frame geometry.
    pub fn geometry(&self) -> FrameGeometry {
        self.geometry
    }

    /// The mel filterbank in use.
    pub fn filterbank(&self) -> &MelBank {
        &self.bank
    }

    /// Number of frames a signal of `len` samples yields.
    pub fn frame_count(&self, len: usize) -> usize {
        match self.style {
            MfccStyle::Psf => psf::frame_count(len, self.geometry),
            MfccStyle::Librosa => librosa::frame_count(len, self.geometry),
        }
    }

    /// MFCCs of `samples` (floats in [-1, 1]): `frames × numcep`.
    ///
    /// A signal shorter than one window yields one zero-padded frame (psf) or the frames of
    /// its centred padding (librosa), exactly as the libraries do.
    pub fn compute(&mut self, samples: &[f32]) -> Result<FeatureMatrix, MfccError> {
        self.compute_floored(samples, 0.0)
    }

    /// [`Mfcc::compute`] with the expected power spectrum of white noise of variance
    /// `noise_power` (after pre-emphasis and windowing, as the signal) added to every frame's
    /// power spectrum: a deterministic floor under silence. psf style only; 0 is
    /// [`Mfcc::compute`] exactly.
    pub fn compute_floored(
        &mut self,
        samples: &[f32],
        noise_power: f64,
    ) -> Result<FeatureMatrix, MfccError> {
        if noise_power != 0.0
            && (self.style != MfccStyle::Psf || noise_power.is_nan() || noise_power < 0.0)
        {
            return Err(MfccError::Config(format!(
                "a noise floor of {noise_power} needs the psf style and a positive power"
            )));
        }
        self.floor_power = noise_power;
        if samples.is_empty() {
            return Err(MfccError::EmptySignal);
        }
        if let Some(i) = crate::decode::first_non_finite(samples) {
            return Err(MfccError::NonFinite(i));
        }
        let data = match self.style {
            MfccStyle::Psf => psf::compute(self, samples),
            MfccStyle::Librosa => librosa::compute(self, samples),
        };
        let frames = data.len() / self.numcep;
        Ok(FeatureMatrix::new(frames, self.numcep, data).expect("rows are numcep wide"))
    }

    /// Power spectrum of the frame in `scratch.frame` (destroyed) into `scratch.power`,
    /// as `|rfft|²`.
    fn power_spectrum(&mut self) {
        let s = &mut self.scratch;
        self.fft
            .process_with_scratch(&mut s.frame, &mut s.spectrum, &mut s.fft)
            .expect("buffers come from the plan");
        for (p, c) in s.power.iter_mut().zip(&s.spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
    }

    /// Appends `dct · log_mel` (the first `numcep` coefficients) to `out`.
    fn cepstrum(&self, log_mel: &[f64], out: &mut Vec<f32>) {
        let n = log_mel.len();
        for k in 0..self.numcep {
            let row = &self.dct[k * n..(k + 1) * n];
            let c = dot(row, log_mel);
            out.push(c as f32);
        }
    }
}

/// Dot product with four independent accumulators, so the compiler can keep several additions
/// in flight (a single running sum is one long dependency chain). The summation order differs
/// from a plain loop only in the last bits.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (a4, a_rest) = a.split_at(a.len() - a.len() % 4);
    let (b4, b_rest) = b[..a.len()].split_at(a4.len());
    for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f64 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Sum with four independent accumulators (see [`dot`]).
#[inline]
pub(crate) fn sum(a: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (a4, rest) = a.split_at(a.len() - a.len() % 4);
    for x in a4.chunks_exact(4) {
        for i in 0..4 {
            acc[i] += x[i];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest.iter().sum::<f64>()
}
