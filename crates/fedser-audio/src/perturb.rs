//! What devices do to a recording, reproducibly: noise gates, gain, DC offset, other sample
//! rates, lossy codecs (MP3 and Ogg Vorbis), padded silence and added noise. Used to test a
//! model against the recording chains of the devices it will meet (`fedser evaluate
//! --perturb`) and to augment training on a device.
//!
//! Samples stay floating point (a device's own level and bit depth are its analogue chain's
//! business; gain here is gain, not re-quantisation of an already quantised file) and are
//! clipped to full scale, as a converter clips. The codecs encode 16-bit samples with LAME and
//! libvorbis and decode through fedser's own decoder, as a file from such a device is read.

use std::fmt;
use std::num::{NonZeroU8, NonZeroU32};
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::decode::{Audio, DecodeError, decode_bytes};
use crate::resample::{self, ResampleError};

/// Default gate threshold: 10 ms blocks this far below the recording's peak are muted.
pub const GATE_DEFAULT_DB: f64 = -40.0;
/// Talkers mixed into babble noise.
const BABBLE_TALKERS: u64 = 8;
/// Gate block length in seconds.
const GATE_BLOCK_SECONDS: f64 = 0.010;

/// The kind of added noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// Gaussian white noise.
    White,
    /// Several simultaneous synthetic talkers ([`crate::synth::speech_like`]), each at the
    /// same level: speech-shaped and modulated like a crowd, never the test speaker's voice.
    Babble,
}

/// One perturbation of a recording. Parsed from and printed as `gate`, `gate:-50`,
/// `gain:-20`, `dc:0.01`, `rate:8000`, `mp3:64`, `vorbis:64`, `pad:2`, `noise:white:20`,
/// `noise:babble:20`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Perturbation {
    /// A noise gate: every 10 ms block whose RMS, and both neighbours' RMS, lie more than
    /// `threshold_db` below the recording's peak becomes exact zeros.
    Gate { threshold_db: f64 },
    /// Gain in dB (positive gains clip at full scale, as a device's converter does).
    Gain { db: f64 },
    /// A constant offset added to every sample (full scale is 1).
    Dc { offset: f64 },
    /// Band-limited conversion to another sample rate (what a device recording at that rate
    /// delivers; 8000 is telephone band).
    Rate { hz: u32 },
    /// MP3 (LAME, constant bit rate) at `kbps` kbit/s, decoded again.
    Mp3 { kbps: u32 },
    /// Ogg Vorbis (libvorbis, average bit rate) at `kbps` kbit/s, decoded again.
    Vorbis { kbps: u32 },
    /// `seconds` of digital silence added before and after the recording.
    Pad { seconds: f64 },
    /// Noise at `snr_db` below the recording's mean power (over the whole file).
    Noise { kind: NoiseKind, snr_db: f64 },
}

/// A family of recording chains, for choosing which ones training-time augmentation draws
/// from (`--augment-kinds rate,mp3`): named as the perturbations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainKind {
    Gate,
    Gain,
    Dc,
    Rate,
    Mp3,
    Vorbis,
    Pad,
    Noise,
}

impl ChainKind {
    /// Every kind, in the order [`Perturbation::random`] draws from.
    pub const ALL: [ChainKind; 8] = [
        Self::Gate,
        Self::Gain,
        Self::Dc,
        Self::Rate,
        Self::Mp3,
        Self::Vorbis,
        Self::Pad,
        Self::Noise,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Gate => "gate",
            Self::Gain => "gain",
            Self::Dc => "dc",
            Self::Rate => "rate",
            Self::Mp3 => "mp3",
            Self::Vorbis => "vorbis",
            Self::Pad => "pad",
            Self::Noise => "noise",
        }
    }
}

impl fmt::Display for ChainKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChainKind {
    type Err = PerturbError;

    fn from_str(text: &str) -> Result<Self, PerturbError> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.name() == text)
            .ok_or_else(|| PerturbError::UnknownKind(text.to_owned()))
    }
}

/// Why a perturbation name could not be parsed or a perturbation not applied.
#[derive(Debug, thiserror::Error)]
pub enum PerturbError {
    #[error(
        "unknown perturbation {0:?} (expected gate[:DB], gain:DB, dc:OFFSET, rate:HZ, mp3:KBPS, \
         vorbis:KBPS, pad:SECONDS, noise:white:SNR or noise:babble:SNR)"
    )]
    Unknown(String),
    #[error(
        "unknown recording-chain kind {0:?} (expected gate, gain, dc, rate, mp3, vorbis, pad or \
         noise)"
    )]
    UnknownKind(String),
    #[error("perturbation {name:?}: {why}")]
    BadValue { name: String, why: String },
    #[error("rate conversion: {0}")]
    Resample(#[from] ResampleError),
    #[error("{codec} encoder: {why}")]
    Encode { codec: &'static str, why: String },
    #[error("{codec}: the encoded file does not decode: {source}")]
    Decode {
        codec: &'static str,
        source: DecodeError,
    },
}

/// The MP3 bit rates LAME accepts.
const MP3_KBPS: [u32; 16] = [
    8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];

impl FromStr for Perturbation {
    type Err = PerturbError;

    fn from_str(text: &str) -> Result<Self, PerturbError> {
        let s = text.trim();
        let parts: Vec<&str> = s.split(':').collect();
        let bad = |why: &str| PerturbError::BadValue {
            name: s.to_owned(),
            why: why.to_owned(),
        };
        let number = |v: &str| -> Result<f64, PerturbError> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(&format!("{v:?} is not a number")))
        };
        let integer = |v: &str| -> Result<u32, PerturbError> {
            v.parse::<u32>()
                .map_err(|_| bad(&format!("{v:?} is not a whole positive number")))
        };
        let p = match parts.as_slice() {
            ["gate"] => Self::Gate {
                threshold_db: GATE_DEFAULT_DB,
            },
            ["gate", db] => Self::Gate {
                threshold_db: number(db)?,
            },
            ["gain", db] => Self::Gain { db: number(db)? },
            ["dc", offset] => Self::Dc {
                offset: number(offset)?,
            },
            ["rate", hz] => Self::Rate { hz: integer(hz)? },
            ["mp3", kbps] => Self::Mp3 {
                kbps: integer(kbps)?,
            },
            ["vorbis", kbps] => Self::Vorbis {
                kbps: integer(kbps)?,
            },
            ["pad", seconds] => Self::Pad {
                seconds: number(seconds)?,
            },
            ["noise", kind, snr] => Self::Noise {
                kind: match *kind {
                    "white" => NoiseKind::White,
                    "babble" => NoiseKind::Babble,
                    other => return Err(bad(&format!("unknown noise {other:?} (white, babble)"))),
                },
                snr_db: number(snr)?,
            },
            _ => return Err(PerturbError::Unknown(s.to_owned())),
        };
        p.check().map_err(|why| bad(&why))?;
        Ok(p)
    }
}

impl fmt::Display for Perturbation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Gate { threshold_db } if threshold_db == GATE_DEFAULT_DB => f.write_str("gate"),
            Self::Gate { threshold_db } => write!(f, "gate:{threshold_db}"),
            Self::Gain { db } => write!(f, "gain:{db}"),
            Self::Dc { offset } => write!(f, "dc:{offset}"),
            Self::Rate { hz } => write!(f, "rate:{hz}"),
            Self::Mp3 { kbps } => write!(f, "mp3:{kbps}"),
            Self::Vorbis { kbps } => write!(f, "vorbis:{kbps}"),
            Self::Pad { seconds } => write!(f, "pad:{seconds}"),
            Self::Noise { kind, snr_db } => write!(
                f,
                "noise:{}:{snr_db}",
                match kind {
                    NoiseKind::White => "white",
                    NoiseKind::Babble => "babble",
                }
            ),
        }
    }
}

impl Perturbation {
    /// Parses a comma-separated list (`gate,gain:-20,mp3:64`); empty items are errors.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, PerturbError> {
        list.split(',').map(str::parse).collect()
    }

    /// Every perturbation the robustness table reports, in its order.
    pub fn standard_set() -> Vec<Self> {
        [
            "gate",
            "gain:-30",
            "gain:6",
            "dc:0.01",
            "rate:8000",
            "rate:22050",
            "rate:48000",
            "mp3:64",
            "vorbis:64",
            "pad:2",
            "noise:white:30",
            "noise:white:20",
            "noise:white:10",
            "noise:babble:20",
        ]
        .iter()
        .map(|s| s.parse().expect("the standard set parses"))
        .collect()
    }

    /// A random recording chain for training-time augmentation, drawn uniformly from the
    /// kinds above with random settings: a gate at -40 to -70 dB, gain of -30 to +6 dB, a DC
    /// offset up to 0.02, a device rate of 8, 11.025, 22.05 or 44.1 kHz, MP3 at 32 to 96 or
    /// Vorbis at 48 to 96 kbit/s, 0.5 to 2 s of padding, or white or babble noise at 10 to
    /// 30 dB SNR.
    pub fn random(rng: &mut StdRng) -> Self {
        Self::random_of(&ChainKind::ALL, rng)
    }

    /// A random chain as [`Perturbation::random`], its kind drawn uniformly from `kinds`
    /// (all kinds when empty).
    pub fn random_of(kinds: &[ChainKind], rng: &mut StdRng) -> Self {
        let kinds = if kinds.is_empty() {
            &ChainKind::ALL[..]
        } else {
            kinds
        };
        // A `u32` draw, as before kinds could be chosen: the same seeds give the same chains.
        match kinds[rng.random_range(0..kinds.len() as u32) as usize] {
            ChainKind::Gate => Self::Gate {
                threshold_db: rng.random_range(-70.0..-40.0),
            },
            ChainKind::Gain => Self::Gain {
                db: rng.random_range(-30.0..6.0),
            },
            ChainKind::Dc => Self::Dc {
                offset: rng.random_range(-0.02..0.02),
            },
            ChainKind::Rate => Self::Rate {
                hz: [8000, 11_025, 22_050, 44_100][rng.random_range(0..4usize)],
            },
            ChainKind::Mp3 => Self::Mp3 {
                kbps: [32, 48, 64, 96][rng.random_range(0..4usize)],
            },
            ChainKind::Vorbis => Self::Vorbis {
                kbps: [48, 64, 96][rng.random_range(0..3usize)],
            },
            ChainKind::Pad => Self::Pad {
                seconds: rng.random_range(0.5..2.0),
            },
            ChainKind::Noise => Self::Noise {
                kind: if rng.random::<bool>() {
                    NoiseKind::White
                } else {
                    NoiseKind::Babble
                },
                snr_db: rng.random_range(10.0..30.0),
            },
        }
    }

    fn check(&self) -> Result<(), String> {
        match *self {
            Self::Gate { threshold_db } if threshold_db >= 0.0 => {
                Err("the gate threshold is in dB below the peak, so negative".into())
            }
            Self::Gain { db } if !(-120.0..=40.0).contains(&db) => {
                Err("gain must lie in -120..=40 dB".into())
            }
            Self::Dc { offset } if offset.abs() >= 1.0 => {
                Err("the offset must be smaller than full scale (1)".into())
            }
            Self::Rate { hz } if !(1000..=384_000).contains(&hz) => {
                Err("rate must lie in 1000..=384000 Hz".into())
            }
            Self::Mp3 { kbps } if !MP3_KBPS.contains(&kbps) => Err(format!(
                "MP3 bit rates are {}",
                MP3_KBPS.map(|k| k.to_string()).join(", ")
            )),
            Self::Vorbis { kbps } if !(16..=500).contains(&kbps) => {
                Err("Vorbis bit rate must lie in 16..=500 kbit/s".into())
            }
            Self::Pad { seconds } if !(0.0..=60.0).contains(&seconds) => {
                Err("padding must lie in 0..=60 s".into())
            }
            _ => Ok(()),
        }
    }

    /// The perturbed recording, clipped to full scale. `seed` drives the random parts
    /// (noise); the same seed gives the same output.
    pub fn apply(&self, audio: &Audio, seed: u64) -> Result<Audio, PerturbError> {
        let rate = audio.sample_rate;
        let mut out = match *self {
            Self::Gate { threshold_db } => Audio {
                samples: gate(&audio.samples, rate, threshold_db),
                sample_rate: rate,
            },
            Self::Gain { db } => Audio {
                samples: gain(&audio.samples, db),
                sample_rate: rate,
            },
            Self::Dc { offset } => Audio {
                samples: audio.samples.iter().map(|&s| s + offset as f32).collect(),
                sample_rate: rate,
            },
            Self::Rate { hz } => Audio {
                samples: resample::resample(&audio.samples, rate, hz)?,
                sample_rate: hz,
            },
            Self::Mp3 { kbps } => mp3_round_trip(&quantised(audio), rate, kbps)?,
            Self::Vorbis { kbps } => vorbis_round_trip(&quantised(audio), rate, kbps)?,
            Self::Pad { seconds } => {
                let n = (seconds * rate as f64).round() as usize;
                let mut samples = Vec::with_capacity(audio.samples.len() + 2 * n);
                samples.resize(n, 0.0);
                samples.extend_from_slice(&audio.samples);
                samples.resize(samples.len() + n, 0.0);
                Audio {
                    samples,
                    sample_rate: rate,
                }
            }
            Self::Noise { kind, snr_db } => Audio {
                samples: add_noise(&audio.samples, rate, kind, snr_db, seed),
                sample_rate: rate,
            },
        };
        for s in &mut out.samples {
            *s = s.clamp(-1.0, 1.0);
        }
        Ok(out)
    }
}

fn quantised(audio: &Audio) -> Vec<i16> {
    audio
        .samples
        .iter()
        .map(|&s| (s as f64 * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// `samples` scaled by `db` decibels (exactly; clipping happens on quantisation).
pub fn gain(samples: &[f32], db: f64) -> Vec<f32> {
    let g = 10f64.powf(db / 20.0);
    samples.iter().map(|&s| (s as f64 * g) as f32).collect()
}

/// A block noise gate (see [`Perturbation::Gate`]).
pub fn gate(samples: &[f32], sample_rate: u32, threshold_db: f64) -> Vec<f32> {
    let block = ((GATE_BLOCK_SECONDS * sample_rate as f64).round() as usize).max(1);
    let peak = samples.iter().fold(0.0f64, |m, &s| m.max((s as f64).abs()));
    let mut out = samples.to_vec();
    if peak == 0.0 {
        return out;
    }
    let threshold = peak * 10f64.powf(threshold_db / 20.0);
    let quiet: Vec<bool> = samples
        .chunks(block)
        .map(|b| {
            let power = b.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / b.len() as f64;
            power.sqrt() < threshold
        })
        .collect();
    for (i, chunk) in out.chunks_mut(block).enumerate() {
        let neighbours_quiet =
            (i == 0 || quiet[i - 1]) && quiet.get(i + 1).copied().unwrap_or(true);
        if quiet[i] && neighbours_quiet {
            chunk.iter_mut().for_each(|s| *s = 0.0);
        }
    }
    out
}

fn mean_power(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / samples.len() as f64
}

/// Noise of `kind` added at `snr_db` below the signal's mean power.
fn add_noise(samples: &[f32], rate: u32, kind: NoiseKind, snr_db: f64, seed: u64) -> Vec<f32> {
    let noise: Vec<f32> = match kind {
        NoiseKind::White => {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..samples.len())
                .map(|_| rng.sample::<f64, _>(StandardNormal) as f32)
                .collect()
        }
        NoiseKind::Babble => babble(samples.len(), rate, seed),
    };
    let (ps, pn) = (mean_power(samples), mean_power(&noise));
    if ps == 0.0 || pn == 0.0 {
        return samples.to_vec();
    }
    let g = (ps / pn / 10f64.powf(snr_db / 10.0)).sqrt();
    samples
        .iter()
        .zip(&noise)
        .map(|(&s, &n)| (s as f64 + g * n as f64) as f32)
        .collect()
}

/// Babble: [`BABBLE_TALKERS`] synthetic talkers at equal power, each starting at a random
/// point of a longer stretch so their syllables do not line up.
fn babble(len: usize, rate: u32, seed: u64) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    let mut rng = StdRng::seed_from_u64(seed);
    let seconds = len as f64 / rate as f64 + 1.0;
    for talker in 0..BABBLE_TALKERS {
        let voice =
            crate::synth::speech_like(rate, seconds, seed.wrapping_mul(31).wrapping_add(talker));
        let offset = rng.random_range(0..=(voice.len() - len));
        let level = mean_power(&voice[offset..offset + len]).sqrt();
        if level == 0.0 {
            continue;
        }
        for (o, &v) in out.iter_mut().zip(&voice[offset..]) {
            *o += v / level as f32;
        }
    }
    out
}

fn mp3_round_trip(pcm: &[i16], rate: u32, kbps: u32) -> Result<Audio, PerturbError> {
    use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, MonoPcm, Quality};
    let fail = |why: String| PerturbError::Encode { codec: "MP3", why };
    let bitrate = match kbps {
        8 => Bitrate::Kbps8,
        16 => Bitrate::Kbps16,
        24 => Bitrate::Kbps24,
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        80 => Bitrate::Kbps80,
        96 => Bitrate::Kbps96,
        112 => Bitrate::Kbps112,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        192 => Bitrate::Kbps192,
        224 => Bitrate::Kbps224,
        256 => Bitrate::Kbps256,
        320 => Bitrate::Kbps320,
        other => return Err(fail(format!("{other} kbit/s is not an MP3 bit rate"))),
    };
    let mut builder = Builder::new().ok_or_else(|| fail("cannot allocate LAME".into()))?;
    builder
        .set_num_channels(1)
        .map_err(|e| fail(format!("mono: {e}")))?;
    builder
        .set_sample_rate(rate)
        .map_err(|e| fail(format!("{rate} Hz: {e}")))?;
    builder
        .set_brate(bitrate)
        .map_err(|e| fail(format!("{kbps} kbit/s: {e}")))?;
    builder
        .set_quality(Quality::Good)
        .map_err(|e| fail(format!("quality: {e}")))?;
    let mut encoder = builder.build().map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()));
    encoder
        .encode_to_vec(MonoPcm(pcm), &mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    bytes.reserve(7200);
    encoder
        .flush_to_vec::<FlushNoGap>(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    decode_codec("MP3", bytes)
}

fn vorbis_round_trip(pcm: &[i16], rate: u32, kbps: u32) -> Result<Audio, PerturbError> {
    use vorbis_rs::{VorbisBitrateManagementStrategy, VorbisEncoderBuilder};
    let fail = |why: String| PerturbError::Encode {
        codec: "Vorbis",
        why,
    };
    let nz_rate = NonZeroU32::new(rate).ok_or_else(|| fail("zero sample rate".into()))?;
    let average_bitrate =
        NonZeroU32::new(kbps * 1000).ok_or_else(|| fail("zero bit rate".into()))?;
    // A fixed stream serial: the same input always encodes to the same bytes.
    let mut encoder = VorbisEncoderBuilder::new_with_serial(nz_rate, NonZeroU8::MIN, Vec::new(), 1)
        .bitrate_management_strategy(VorbisBitrateManagementStrategy::Abr { average_bitrate })
        .build()
        .map_err(|e| fail(format!("{kbps} kbit/s at {rate} Hz: {e}")))?;
    let floats: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32768.0).collect();
    for block in floats.chunks(4096) {
        encoder
            .encode_audio_block([block])
            .map_err(|e| fail(e.to_string()))?;
    }
    let bytes = encoder.finish().map_err(|e| fail(e.to_string()))?;
    decode_codec("Vorbis", bytes)
}

fn decode_codec(codec: &'static str, bytes: Vec<u8>) -> Result<Audio, PerturbError> {
    decode_bytes(bytes).map_err(|source| PerturbError::Decode { codec, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::speech_like;

    fn speech(rate: u32) -> Audio {
        Audio {
            samples: speech_like(rate, 2.0, 11),
            sample_rate: rate,
        }
    }

    fn tone(rate: u32, hz: f64, seconds: f64, amplitude: f64) -> Vec<f32> {
        (0..(seconds * rate as f64) as usize)
            .map(|i| {
                (amplitude * (std::f64::consts::TAU * hz * i as f64 / rate as f64).sin()) as f32
            })
            .collect()
    }

    fn power(x: &[f32]) -> f64 {
        mean_power(x)
    }

    /// Power of `x` at frequency `hz` (a single DFT bin, by correlation).
    fn power_at(x: &[f32], rate: u32, hz: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let w = std::f64::consts::TAU * hz * i as f64 / rate as f64;
            re += v as f64 * w.cos();
            im += v as f64 * w.sin();
        }
        (re * re + im * im) / (x.len() as f64).powi(2) * 2.0
    }

    #[test]
    fn names_parse_and_print_back() {
        for p in Perturbation::standard_set() {
            let again: Perturbation = p.to_string().parse().unwrap();
            assert_eq!(again, p);
        }
        let list = Perturbation::parse_list(
            "gate,gain:-20,dc:0.01,rate:8000,mp3:64,vorbis:64,pad:2,noise:white:20,noise:babble:20",
        )
        .unwrap();
        assert_eq!(list.len(), 9);
        assert_eq!(list[1], Perturbation::Gain { db: -20.0 });
        assert_eq!(list[7].to_string(), "noise:white:20");
        assert_eq!(
            "gate:-50".parse::<Perturbation>().unwrap().to_string(),
            "gate:-50"
        );
    }

    #[test]
    fn random_chains_are_valid_varied_and_reproducible() {
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..200)
                .map(|_| Perturbation::random(&mut rng))
                .collect::<Vec<_>>()
        };
        let chains = draw(3);
        assert_eq!(chains, draw(3));
        let mut kinds = std::collections::BTreeSet::new();
        for p in &chains {
            p.check().unwrap_or_else(|e| panic!("{p}: {e}"));
            kinds.insert(p.to_string().split(':').next().unwrap().to_owned());
        }
        assert_eq!(kinds.len(), 8, "{kinds:?}");
    }

    #[test]
    fn chains_can_be_limited_to_some_kinds() {
        let mut rng = StdRng::seed_from_u64(5);
        let kinds: Vec<ChainKind> = "rate, mp3".split(',').map(|k| k.parse().unwrap()).collect();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let p = Perturbation::random_of(&kinds, &mut rng);
            assert!(
                matches!(p, Perturbation::Rate { .. } | Perturbation::Mp3 { .. }),
                "{p}"
            );
            seen.insert(p.to_string().split(':').next().unwrap().to_owned());
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        // Every kind by name; all kinds draw exactly what `random` draws.
        for k in ChainKind::ALL {
            assert_eq!(k.to_string().parse::<ChainKind>().unwrap(), k);
        }
        let err = "reverb".parse::<ChainKind>().unwrap_err().to_string();
        assert!(
            err.contains("unknown recording-chain kind") && err.contains("reverb"),
            "{err}"
        );
        let (mut a, mut b) = (StdRng::seed_from_u64(9), StdRng::seed_from_u64(9));
        for _ in 0..50 {
            assert_eq!(
                Perturbation::random(&mut a),
                Perturbation::random_of(&ChainKind::ALL, &mut b)
            );
        }
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        for (text, needle) in [
            ("reverb", "unknown perturbation"),
            ("gain", "unknown perturbation"),
            ("gain:loud", "not a number"),
            ("gain:NaN", "not a number"),
            ("mp3:65", "MP3 bit rates"),
            ("rate:0", "rate must lie"),
            ("noise:pink:20", "unknown noise"),
            ("gate:10", "negative"),
            ("dc:2", "full scale"),
            ("gate,,gain:1", "unknown perturbation"),
        ] {
            let e = Perturbation::parse_list(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn gain_is_exact_and_clips_like_a_converter() {
        let x = speech_like(16_000, 0.5, 3);
        let y = gain(&x, -20.0);
        for (a, b) in x.iter().zip(&y) {
            assert!((*a as f64 * 0.1 - *b as f64).abs() <= 1e-7 * a.abs() as f64 + 1e-12);
        }
        // A 0.5 tone raised by 12 dB would reach 2: it clips at full scale instead.
        let loud = Perturbation::Gain { db: 12.0 }
            .apply(
                &Audio {
                    samples: tone(16_000, 440.0, 0.1, 0.5),
                    sample_rate: 16_000,
                },
                0,
            )
            .unwrap();
        let peak = loud.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert_eq!(peak, 1.0);
        assert!(loud.samples.iter().filter(|s| s.abs() == 1.0).count() > 100);
    }

    #[test]
    fn the_gate_really_yields_zeros_and_keeps_speech() {
        let a = speech(16_000);
        let g = Perturbation::Gate {
            threshold_db: -30.0,
        }
        .apply(&a, 0)
        .unwrap();
        assert_eq!(g.samples.len(), a.samples.len());
        let zeros = g.samples.iter().filter(|&&s| s == 0.0).count();
        // speech_like pauses are breath noise about 40 dB below the peak.
        let before = a.samples.iter().filter(|&&s| s == 0.0).count();
        assert!(
            zeros > before + a.samples.len() / 10,
            "{before} -> {zeros} zeros"
        );
        // The loud parts are untouched.
        let loud_same = a
            .samples
            .iter()
            .zip(&g.samples)
            .filter(|(x, _)| x.abs() > 0.2)
            .all(|(x, y)| x == y);
        assert!(loud_same);
    }

    #[test]
    fn dc_and_padding_do_what_they_say() {
        let a = speech(16_000);
        let d = Perturbation::Dc { offset: 0.01 }.apply(&a, 0).unwrap();
        let mean_in = a.samples.iter().map(|&s| s as f64).sum::<f64>() / a.samples.len() as f64;
        let mean_out = d.samples.iter().map(|&s| s as f64).sum::<f64>() / d.samples.len() as f64;
        assert!((mean_out - mean_in - 0.01).abs() < 1e-4);
        let p = Perturbation::Pad { seconds: 0.5 }.apply(&a, 0).unwrap();
        assert_eq!(p.samples.len(), a.samples.len() + 16_000);
        assert!(
            p.samples[..8000]
                .iter()
                .chain(&p.samples[p.samples.len() - 8000..])
                .all(|&s| s == 0.0)
        );
    }

    #[test]
    fn rate_conversion_is_band_limited() {
        let rate = 16_000;
        let mut x = tone(rate, 1000.0, 1.0, 0.3);
        for (v, h) in x.iter_mut().zip(tone(rate, 6000.0, 1.0, 0.3)) {
            *v += h;
        }
        let y = Perturbation::Rate { hz: 8000 }
            .apply(
                &Audio {
                    samples: x.clone(),
                    sample_rate: rate,
                },
                0,
            )
            .unwrap();
        assert_eq!(y.sample_rate, 8000);
        assert_eq!(y.samples.len(), 8000);
        // 1 kHz passes; 6 kHz (above the new Nyquist) is removed rather than aliased to 2 kHz.
        let kept = power_at(&y.samples, 8000, 1000.0) / power_at(&x, rate, 1000.0);
        assert!((kept - 1.0).abs() < 0.05, "{kept}");
        let alias = power_at(&y.samples, 8000, 2000.0) / power_at(&x, rate, 6000.0);
        assert!(alias < 1e-4, "alias {alias}");
    }

    #[test]
    fn noise_is_added_at_the_stated_snr_and_is_reproducible() {
        let a = speech(16_000);
        for kind in [NoiseKind::White, NoiseKind::Babble] {
            let p = Perturbation::Noise { kind, snr_db: 20.0 };
            let y = p.apply(&a, 5).unwrap();
            let diff: Vec<f32> = y
                .samples
                .iter()
                .zip(&a.samples)
                .map(|(y, x)| y - x)
                .collect();
            let snr = 10.0 * (power(&a.samples) / power(&diff)).log10();
            assert!((snr - 20.0).abs() < 0.1, "{kind:?}: {snr}");
            assert_eq!(p.apply(&a, 5).unwrap().samples, y.samples);
            assert_ne!(p.apply(&a, 6).unwrap().samples, y.samples);
        }
    }

    #[test]
    fn codec_round_trips_decode_through_the_normal_decoder() {
        for rate in [16_000, 48_000] {
            let a = speech(rate);
            for p in [
                Perturbation::Mp3 { kbps: 64 },
                Perturbation::Vorbis { kbps: 64 },
            ] {
                let y = p
                    .apply(&a, 0)
                    .unwrap_or_else(|e| panic!("{p} at {rate}: {e}"));
                assert_eq!(y.sample_rate, rate, "{p}");
                // Encoder delay and padding: within 0.1 s of the input's length.
                let dn = (y.samples.len() as f64 - a.samples.len() as f64).abs();
                assert!(
                    dn < 0.1 * rate as f64,
                    "{p} at {rate}: {} vs {}",
                    y.samples.len(),
                    a.samples.len()
                );
                // Lossy but the same sound: power within 1.5 dB, and not the input itself.
                let ratio = 10.0 * (power(&y.samples) / power(&a.samples)).log10();
                assert!(ratio.abs() < 1.5, "{p} at {rate}: {ratio} dB");
                assert_ne!(
                    y.samples[..a.samples.len().min(y.samples.len())],
                    a.samples[..a.samples.len().min(y.samples.len())]
                );
            }
        }
    }

    #[test]
    fn every_output_is_finite_and_within_full_scale() {
        let a = speech(16_000);
        for p in Perturbation::standard_set() {
            let y = p.apply(&a, 1).unwrap();
            assert!(!y.samples.is_empty(), "{p}");
            assert!(
                y.samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0),
                "{p}"
            );
        }
    }
}
