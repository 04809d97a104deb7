//! The configured front end: decode → resample → remove DC → normalise → denoise → trim
//! (and fill) the silent margins → MFCC (over a noise-power floor).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fedser_core::FeatureMatrix;

use crate::clean::{self, DenoiseConfig};
use crate::decode::{self, Audio, LoadError};
use crate::mfcc::{Mfcc, MfccConfig, MfccError};
use crate::resample::{self, ResampleError};

/// Everything that turns a recording into features. Serialised into feature-cache keys and
/// model files, so a model computes features exactly as its training data did.
///
/// Read back by [`RecordedFrontEnd`]: fields left out take the robust front end's values,
/// except in a complete record written before the robust front end existed (an `mfcc` entry
/// but none of `remove_dc`, `floor_db`, `trim_keep_seconds`), which reads as the classic front
/// end it was, so fedser 0.1's model files and run folders compute what they computed; and
/// `fill_margins`, which reads as off (records written before it existed never filled).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "RecordedFrontEnd")]
pub struct FrontEndConfig {
    /// Rate to resample to before anything else; `None` keeps each file's own rate.
    pub sample_rate: Option<u32>,
    /// Peak-normalise to 1.0.
    pub normalise: bool,
    /// Wiener-style spectral denoising (noise estimated from the quietest frames).
    pub denoise: bool,
    /// Cut leading and trailing silence: frames 40 dB below the loudest or, with a
    /// `floor_db`, frames within 6 dB of the floor (see `trim_keep_seconds`).
    pub trim_silence: bool,
    /// Subtract the recording's mean (a converter's DC offset).
    pub remove_dc: bool,
    /// Noise-power floor in dB relative to the recording's peak (negative; 0 turns it off):
    /// the expected power spectrum of white noise at this level is added to every frame's
    /// power spectrum before the mel filterbank (psf style only). Silence then looks the same
    /// whether a device recorded a faint noise floor or a gate made it exact zeros, and
    /// deterministically so (a dither would add a random realisation). With `trim_silence`,
    /// frames within 6 dB of the floor are the silence trimmed.
    pub floor_db: f64,
    /// With `trim_silence`: seconds of silence kept before and after the speech, so that
    /// breaths and onsets stay while extra padding goes.
    pub trim_keep_seconds: f64,
    /// With `trim_silence`: where a recording holds less than `trim_keep_seconds` of silence
    /// before or after the speech, fill it up with digital silence (which the floor renders as
    /// the floor), so that every recording's margins are exactly that long. A file cut tight
    /// around the speech and a padded copy of it then give the same features. Off in
    /// [`FrontEndConfig::wideband`] (it cost clean UA, see [`FrontEndConfig::wideband_filled`]);
    /// nothing to fill in [`FrontEndConfig::robust`], which keeps no margins.
    pub fill_margins: bool,
    /// The MFCC settings.
    pub mfcc: MfccConfig,
}

impl Default for FrontEndConfig {
    /// What fedser trains on: [`FrontEndConfig::robust`].
    fn default() -> Self {
        Self::robust()
    }
}

/// Noise floor of the robust front end, below the recording's peak: the expected spectrum of
/// white noise 40 dB under the peak is added to every frame before the filterbank, so whatever
/// lies below it (a device's hiss, a gate's digital zeros, a codec's quantisation noise, faint
/// room tone) gives the same features. Chosen by measurement on RAVDESS (−55, −50, −45 and
/// −40 dB; see the README): with the trim to the speech, −40 gave both models' best clean UA
/// with every chain of the bar within 2 points.
pub const ROBUST_FLOOR_DB: f64 = -40.0;
/// Upper edge of the robust front end's mel filterbank, in Hz: what an 8 kHz (telephone-band)
/// recording holds, so that a narrowband device and a wideband one give the same features.
pub const ROBUST_BAND_HZ: f64 = 4_000.0;
/// Silence kept at each end by the robust front end: none (trimmed to the speech, so padding
/// and tight cuts give the same frames).
pub const ROBUST_TRIM_KEEP_SECONDS: f64 = 0.0;

/// The wideband front end's floor, below the recording's peak: above the 16-bit noise floor of
/// a quietly recorded file (RAVDESS has files peaking at −36 dBFS, whose floor then sits 55 to
/// 60 dB below their peak), below breaths and speech onsets.
pub const WIDEBAND_FLOOR_DB: f64 = -55.0;
/// Silence kept at each end by the wideband front end.
pub const WIDEBAND_TRIM_KEEP_SECONDS: f64 = 0.5;

impl FrontEndConfig {
    /// The front end fedser trains on, built to give the same features whatever device
    /// recorded the voice: 16 kHz, DC removed, peak-normalised (gain), silence cut at both
    /// ends down to the speech (padding), and psf-style MFCC (13 × 20 ms / 20 ms, c0 the
    /// cepstral one) of the telephone band (0–4 kHz, whatever rate a device records at) over
    /// a noise-power floor 40 dB below the peak (gates, digital silence, hiss, codecs, faint
    /// noise). Measured
    /// against [`FrontEndConfig::wideband`] (see the README): both models within 2 points of
    /// their clean UA for every chain of the bar on RAVDESS and EMO-DB, clean UA up on RAVDESS
    /// and 1 to 2 points down on EMO-DB.
    pub fn robust() -> Self {
        Self {
            trim_silence: true,
            remove_dc: true,
            floor_db: ROBUST_FLOOR_DB,
            trim_keep_seconds: ROBUST_TRIM_KEEP_SECONDS,
            fill_margins: false,
            mfcc: MfccConfig {
                highfreq: Some(ROBUST_BAND_HZ),
                // c0 from the band's filters, not psf's energy of the whole spectrum (which
                // pre-emphasis weights towards the upper band an 8 kHz device lacks).
                append_energy: false,
                ..MfccConfig::psf()
            },
            ..Self::classic()
        }
    }

    /// The full-band front end that was fedser's default before [`FrontEndConfig::robust`]
    /// took the telephone band: 16 kHz, DC removed, peak-normalised, half a second of silence
    /// kept at either end, psf-style MFCC over 0–8 kHz above a floor 55 dB below the peak.
    /// Invariant to gates, gain, DC, 22.05/48 kHz and codecs, but an 8 kHz recording costs
    /// its DNN 10 to 17 points of UA: for fleets of wideband devices only.
    pub fn wideband() -> Self {
        Self {
            floor_db: WIDEBAND_FLOOR_DB,
            trim_keep_seconds: WIDEBAND_TRIM_KEEP_SECONDS,
            mfcc: MfccConfig::psf(),
            ..Self::robust()
        }
    }

    /// The wideband front end with margins of exactly half a second: shorter ones are filled
    /// up with digital silence, so a corpus cut tight around the speech (EMO-DB) and padded
    /// copies of it give the same features. Measured on EMO-DB (five folds, seeds 7, 1, 2)
    /// it brought 2 s of padding from −7.5 to +0.9 points of UA for the CNN and −3.2 to −0.8
    /// for the DNN, but cost the CNN 3.2 points of clean UA and both models 3 to 7 more
    /// points at 8 kHz (`--front-end wideband-fill`).
    pub fn wideband_filled() -> Self {
        Self {
            fill_margins: true,
            ..Self::wideband()
        }
    }

    /// The front end of fedser 0.1: 16 kHz, peak-normalised, psf-style MFCC over the full
    /// band. It learns how a device renders silence (a gated copy of a recording costs its
    /// DNN 18 points of UA) and which band it records (see the README's robustness table).
    /// The paper's pipeline ([`FrontEndConfig::paper`]) also denoises; on RAVDESS and EMO-DB
    /// the denoiser cost 2 to 5 points of UA, so it is opt-in.
    pub fn classic() -> Self {
        Self {
            sample_rate: Some(16_000),
            normalise: true,
            denoise: false,
            trim_silence: false,
            remove_dc: false,
            floor_db: 0.0,
            trim_keep_seconds: 0.0,
            fill_margins: false,
            mfcc: MfccConfig::psf(),
        }
    }

    /// The seed paper's pipeline: 16 kHz, normalised, denoised, psf-style MFCC.
    pub fn paper() -> Self {
        Self {
            denoise: true,
            ..Self::classic()
        }
    }

    /// Plain MFCC of the decoded samples at their own rate: no resampling or cleaning, so the
    /// output can be compared with python_speech_features or librosa.
    pub fn plain(mfcc: MfccConfig) -> Self {
        Self {
            sample_rate: None,
            normalise: false,
            denoise: false,
            trim_silence: false,
            remove_dc: false,
            floor_db: 0.0,
            trim_keep_seconds: 0.0,
            fill_margins: false,
            mfcc,
        }
    }
}

/// A front-end entry as recorded in a model file, run folder or configuration, any version
/// (see [`FrontEndConfig`]).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedFrontEnd {
    #[serde(default = "default_rate")]
    sample_rate: Option<u32>,
    normalise: Option<bool>,
    denoise: Option<bool>,
    trim_silence: Option<bool>,
    remove_dc: Option<bool>,
    floor_db: Option<f64>,
    trim_keep_seconds: Option<f64>,
    fill_margins: Option<bool>,
    mfcc: Option<MfccConfig>,
}

fn default_rate() -> Option<u32> {
    FrontEndConfig::robust().sample_rate
}

impl From<RecordedFrontEnd> for FrontEndConfig {
    fn from(r: RecordedFrontEnd) -> Self {
        let before_robust = r.mfcc.is_some()
            && r.remove_dc.is_none()
            && r.floor_db.is_none()
            && r.trim_keep_seconds.is_none();
        let base = if before_robust {
            Self::classic()
        } else {
            Self::robust()
        };
        Self {
            sample_rate: r.sample_rate,
            normalise: r.normalise.unwrap_or(base.normalise),
            denoise: r.denoise.unwrap_or(base.denoise),
            trim_silence: r.trim_silence.unwrap_or(base.trim_silence),
            remove_dc: r.remove_dc.unwrap_or(base.remove_dc),
            floor_db: r.floor_db.unwrap_or(base.floor_db),
            trim_keep_seconds: r.trim_keep_seconds.unwrap_or(base.trim_keep_seconds),
            fill_margins: r.fill_margins.unwrap_or(false),
            mfcc: r.mfcc.unwrap_or(base.mfcc),
        }
    }
}

/// Silence trimming threshold below the loudest frame, in dB.
const TRIM_TOP_DB: f64 = 40.0;

/// Why features could not be extracted from a file.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{}: {source}", path.display())]
    Resample {
        path: PathBuf,
        source: ResampleError,
    },
    #[error("{}: MFCC: {source}", path.display())]
    Mfcc { path: PathBuf, source: MfccError },
}

/// A front end with its MFCC extractors cached per sample rate. Not shared between threads:
/// give each worker its own (they are cheap to build).
pub struct FrontEnd {
    cfg: FrontEndConfig,
    extractors: HashMap<u32, Mfcc>,
}

impl FrontEnd {
    /// Checks the configuration (at the target rate, when one is set) and builds the front end.
    pub fn new(cfg: FrontEndConfig) -> Result<Self, MfccError> {
        let db = cfg.floor_db;
        if db != 0.0 && (!db.is_finite() || db > 0.0 || cfg.mfcc.style != crate::MfccStyle::Psf) {
            return Err(MfccError::Config(format!(
                "floor_db {db} needs the psf style and a level below the peak (negative dB)"
            )));
        }
        let mut extractors = HashMap::new();
        if let Some(rate) = cfg.sample_rate {
            extractors.insert(rate, Mfcc::new(&cfg.mfcc, rate)?);
        }
        Ok(Self { cfg, extractors })
    }

    /// The configuration.
    pub fn config(&self) -> &FrontEndConfig {
        &self.cfg
    }

    /// Resampling and cleaning, as configured.
    pub fn prepare(&self, audio: Audio) -> Result<Audio, ResampleError> {
        let mut audio = match self.cfg.sample_rate {
            Some(rate) if rate != audio.sample_rate => Audio {
                samples: resample::resample(&audio.samples, audio.sample_rate, rate)?,
                sample_rate: rate,
            },
            _ => audio,
        };
        if self.cfg.remove_dc {
            clean::remove_dc(&mut audio.samples);
        }
        if self.cfg.normalise {
            clean::normalise_peak(&mut audio.samples, 1.0);
        }
        if self.cfg.denoise {
            audio.samples =
                clean::denoise(&audio.samples, audio.sample_rate, &DenoiseConfig::default());
        }
        if self.cfg.trim_silence {
            let rate = audio.sample_rate;
            let keep = match self.floor_power(&audio.samples) {
                // Frames within 6 dB of the floor (raw power up to three times the floor's)
                // are silence, whether the device recorded a faint hiss or exact zeros.
                Some(floor) => clean::trim_below(&audio.samples, rate, 3.0 * floor),
                None => clean::trim_silence_range(&audio.samples, rate, TRIM_TOP_DB),
            };
            let margin = (self.cfg.trim_keep_seconds.max(0.0) * rate as f64) as usize;
            let len = audio.samples.len();
            let (lead, trail) = (keep.start, len - keep.end);
            audio.samples.truncate(keep.end + margin.min(trail));
            audio.samples.drain(..lead - margin.min(lead));
            if self.cfg.fill_margins {
                audio
                    .samples
                    .resize(audio.samples.len() + margin.saturating_sub(trail), 0.0);
                audio
                    .samples
                    .splice(0..0, std::iter::repeat_n(0.0, margin.saturating_sub(lead)));
            }
        }
        Ok(audio)
    }

    /// The noise-power floor per sample for `samples` (`floor_db` below their peak).
    fn floor_power(&self, samples: &[f32]) -> Option<f64> {
        let db = self.cfg.floor_db;
        if db == 0.0 {
            return None;
        }
        let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs())) as f64;
        Some(peak * peak * 10f64.powf(db / 10.0))
    }

    /// MFCCs of already prepared audio.
    pub fn mfcc(&mut self, audio: &Audio) -> Result<FeatureMatrix, MfccError> {
        let floor = self.floor_power(&audio.samples).unwrap_or(0.0);
        let extractor = match self.extractors.entry(audio.sample_rate) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Mfcc::new(&self.cfg.mfcc, audio.sample_rate)?)
            }
        };
        extractor.compute_floored(&audio.samples, floor)
    }

    /// Decodes, prepares and extracts one file; errors name the file.
    pub fn extract_file(&mut self, path: &Path) -> Result<FeatureMatrix, ExtractError> {
        let audio = decode::decode_file(path)?;
        let audio = self
            .prepare(audio)
            .map_err(|source| ExtractError::Resample {
                path: path.to_owned(),
                source,
            })?;
        self.mfcc(&audio).map_err(|source| ExtractError::Mfcc {
            path: path.to_owned(),
            source,
        })
    }
}
