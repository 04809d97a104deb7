//! The built-in synthetic corpus: deterministic, speech-like recordings whose prosody follows
//! the emotion and whose voice follows the speaker, so fedser runs end to end with no download.
//!
//! A source–filter synthesiser: Rosenberg glottal pulses (with jitter and shimmer, aspiration
//! noise for breathy voices, a tilt filter for the voice quality) drive a cascade of four
//! formant resonators that glide between vowel-like targets; fricative noise bursts and
//! plosive gaps separate syllables; pauses separate words. Emotion moves pitch level and range,
//! speaking rate, loudness, spectral tilt, jitter, breathiness and tremor; the speaker sets
//! sex, pitch, vocal-tract length (formant scaling) and their own habits. Every emotion effect
//! is drawn per utterance from a spread wider than its mean shift on any single cue, and
//! recording gain, length and background noise vary at random, so no single statistic
//! (duration, loudness, mean pitch) gives the class away; the cues together do.

use std::f64::consts::{PI, TAU};

use fedser_core::Emotion;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal, StandardNormal};

use crate::corpus::{AudioSource, Corpus, CorpusError, Gender, Utterance};

/// Size and seed of the synthetic corpus.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of speakers (half male, half female).
    pub speakers: usize,
    /// Utterances per speaker and emotion (classes are balanced).
    pub per_emotion: usize,
    /// Sample rate of the rendered audio in Hz.
    pub sample_rate: u32,
    /// Seed of everything: the same seed gives the same corpus, sample for sample.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            speakers: 24,
            per_emotion: 8,
            sample_rate: 16_000,
            seed: 7,
        }
    }
}

/// A speaker's voice, and the device they record on (each speaker is one client).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Voice {
    pub gender: Gender,
    /// Habitual pitch in Hz.
    pub f0: f64,
    /// Vocal-tract scaling of the formants (about 1 for men, 1.15 for women).
    pub formant_scale: f64,
    /// Personal speaking-rate factor.
    pub rate: f64,
    /// Personal pitch-range factor.
    pub range: f64,
    /// Personal breathiness (aspiration level).
    pub breathiness: f64,
    /// Personal spectral tilt (−1 dark .. +1 bright).
    pub tilt: f64,
    /// The speaker's device: recording level in dB ...
    pub device_gain_db: f64,
    /// ... background noise level (SNR in dB) ...
    pub device_snr_db: f64,
    /// ... and noise colour (pink or white).
    pub device_pink_noise: bool,
}

/// Everything needed to render one utterance, deterministically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticUtterance {
    pub voice: Voice,
    pub emotion: Emotion,
    pub sample_rate: u32,
    pub seed: u64,
}

/// Per-emotion prosody: mean shifts that the renderer jitters per utterance.
struct Prosody {
    /// Pitch level factor.
    pitch: f64,
    /// Pitch range factor (accents, declination).
    range: f64,
    /// Speaking-rate factor (syllables per second).
    rate: f64,
    /// Loudness in dB.
    loudness_db: f64,
    /// Added spectral tilt (+ brighter).
    tilt: f64,
    /// Jitter: relative period perturbation (standard deviation).
    jitter: f64,
    /// Shimmer: relative amplitude perturbation.
    shimmer: f64,
    /// Added aspiration (breathy voice).
    breath: f64,
    /// Pitch tremor depth (relative) at 5–8 Hz.
    tremor: f64,
    /// Syllable attack time in seconds.
    attack: f64,
    /// Pause length factor between words.
    pause: f64,
    /// First-formant shift (vocal effort raises F1).
    f1: f64,
    /// Formant bandwidth factor (breathy, lax voices are wider).
    bandwidth: f64,
}

fn prosody(e: Emotion) -> Prosody {
    match e {
        Emotion::Neutral => Prosody {
            pitch: 1.0,
            range: 1.0,
            rate: 1.0,
            loudness_db: 0.0,
            tilt: 0.0,
            jitter: 0.006,
            shimmer: 0.04,
            breath: 0.0,
            tremor: 0.0,
            attack: 0.03,
            pause: 1.0,
            f1: 1.0,
            bandwidth: 1.0,
        },
        Emotion::Happy => Prosody {
            pitch: 1.15,
            range: 1.9,
            rate: 1.08,
            loudness_db: 2.5,
            tilt: 0.3,
            jitter: 0.008,
            shimmer: 0.05,
            breath: 0.05,
            tremor: 0.0,
            attack: 0.025,
            pause: 0.9,
            f1: 1.08,
            bandwidth: 0.9,
        },
        Emotion::Angry => Prosody {
            pitch: 1.1,
            range: 1.4,
            rate: 1.1,
            loudness_db: 5.0,
            tilt: 0.85,
            jitter: 0.01,
            shimmer: 0.09,
            breath: -0.05,
            tremor: 0.0,
            attack: 0.008,
            pause: 0.8,
            f1: 1.14,
            bandwidth: 0.75,
        },
        Emotion::Sad => Prosody {
            pitch: 0.92,
            range: 0.45,
            rate: 0.8,
            loudness_db: -3.5,
            tilt: -0.75,
            jitter: 0.009,
            shimmer: 0.06,
            breath: 0.25,
            tremor: 0.0,
            attack: 0.05,
            pause: 1.6,
            f1: 0.94,
            bandwidth: 1.35,
        },
        Emotion::Fear => Prosody {
            pitch: 1.22,
            range: 1.1,
            rate: 1.15,
            loudness_db: -0.5,
            tilt: 0.1,
            jitter: 0.025,
            shimmer: 0.08,
            breath: 0.4,
            tremor: 0.035,
            attack: 0.02,
            pause: 1.2,
            f1: 1.03,
            bandwidth: 1.15,
        },
    }
}

/// Vowel targets (F1, F2, F3 in Hz for a male vocal tract).
const VOWELS: [[f64; 3]; 6] = [
    [730.0, 1090.0, 2440.0],
    [270.0, 2290.0, 3010.0],
    [300.0, 870.0, 2240.0],
    [530.0, 1840.0, 2480.0],
    [660.0, 1720.0, 2410.0],
    [570.0, 840.0, 2410.0],
];

/// Builds the corpus: `speakers × 5 × per_emotion` utterances, rendered on demand.
pub fn corpus(cfg: &SyntheticConfig) -> Result<Corpus, CorpusError> {
    if cfg.speakers < 2 || cfg.speakers > 100_000 {
        return Err(CorpusError::Synthetic(format!(
            "speakers must lie in 2..=100000, got {}",
            cfg.speakers
        )));
    }
    if cfg.per_emotion == 0 || cfg.per_emotion > 10_000 {
        return Err(CorpusError::Synthetic(format!(
            "utterances per emotion must lie in 1..=10000, got {}",
            cfg.per_emotion
        )));
    }
    if !(8_000..=48_000).contains(&cfg.sample_rate) {
        return Err(CorpusError::Synthetic(format!(
            "sample rate must lie in 8000..=48000 Hz, got {}",
            cfg.sample_rate
        )));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut utterances = Vec::with_capacity(cfg.speakers * Emotion::COUNT * cfg.per_emotion);
    for s in 0..cfg.speakers {
        let voice = random_voice(&mut rng, s);
        let speaker = format!("synth_{s:03}");
        for emotion in Emotion::ALL {
            for k in 0..cfg.per_emotion {
                utterances.push(Utterance {
                    id: format!("{speaker}_{}_{k:03}", emotion.name()),
                    source: AudioSource::Synthetic(SyntheticUtterance {
                        voice,
                        emotion,
                        sample_rate: cfg.sample_rate,
                        seed: rng.random(),
                    }),
                    speaker: speaker.clone(),
                    gender: Some(voice.gender),
                    emotion,
                });
            }
        }
    }
    Ok(Corpus::new("synthetic", utterances, Default::default()))
}

fn random_voice(rng: &mut StdRng, index: usize) -> Voice {
    let gender = if index.is_multiple_of(2) {
        Gender::Male
    } else {
        Gender::Female
    };
    let n =
        |rng: &mut StdRng, mean: f64, sd: f64| Normal::new(mean, sd).expect("valid sd").sample(rng);
    let (f0, scale) = match gender {
        Gender::Male => (n(rng, 118.0, 18.0).clamp(75.0, 180.0), n(rng, 1.0, 0.05)),
        Gender::Female => (n(rng, 208.0, 25.0).clamp(140.0, 300.0), n(rng, 1.15, 0.05)),
    };
    Voice {
        gender,
        f0,
        formant_scale: scale.clamp(0.85, 1.35),
        rate: n(rng, 1.0, 0.12).clamp(0.7, 1.35),
        range: n(rng, 1.0, 0.25).clamp(0.5, 1.6),
        breathiness: n(rng, 0.08, 0.06).clamp(0.0, 0.3),
        tilt: n(rng, 0.0, 0.2).clamp(-0.5, 0.5),
        device_gain_db: rng.random_range(-10.0..4.0),
        device_snr_db: rng.random_range(15.0..35.0),
        device_pink_noise: rng.random_bool(0.5),
    }
}

/// The utterance-level plan the renderer follows (exposed so tests can check that single
/// cues do not reveal the class).
#[derive(Debug, Clone)]
pub struct Plan {
    /// Mean pitch over voiced syllables in Hz.
    pub mean_f0: f64,
    /// Duration in seconds.
    pub seconds: f64,
    /// Recording gain in dB (microphone distance, level).
    pub gain_db: f64,
    syllables: Vec<Syllable>,
    jitter: f64,
    shimmer: f64,
    breath: f64,
    tilt: f64,
    tremor: f64,
    tremor_hz: f64,
    attack: f64,
    snr_db: f64,
    pink_noise: bool,
    bandwidth: f64,
}

#[derive(Debug, Clone)]
struct Syllable {
    /// Start and length of the voiced nucleus, in seconds.
    start: f64,
    len: f64,
    /// Onset consonant: 0 none, 1 fricative, 2 plosive (gap + burst), lasting `onset` s.
    onset_kind: u8,
    onset: f64,
    /// Pitch at the start and end of the nucleus.
    f0_from: f64,
    f0_to: f64,
    /// Vowel targets (scaled formants) at the start and end.
    from: [f64; 3],
    to: [f64; 3],
    /// Linear amplitude.
    amp: f64,
}

/// Draws the plan of `u`: syllables, pitch, timing, level and noise.
pub fn plan(u: &SyntheticUtterance) -> Plan {
    let mut rng = StdRng::seed_from_u64(u.seed);
    let p = prosody(u.emotion);
    let v = u.voice;
    let g = |rng: &mut StdRng, sd: f64| -> f64 { rng.sample::<f64, _>(StandardNormal) * sd };
    // Per-utterance realisation of each cue: the spread is as large as the emotion's shift.
    let pitch = v.f0 * p.pitch * (1.0 + g(&mut rng, 0.1));
    let range = (v.range * p.range * (1.0 + g(&mut rng, 0.35))).max(0.15);
    let rate = (v.rate * p.rate * (1.0 + g(&mut rng, 0.12))).clamp(0.5, 1.8);
    let loud_db = p.loudness_db + g(&mut rng, 2.5);
    let tilt = (v.tilt + p.tilt + g(&mut rng, 0.15)).clamp(-0.95, 0.95);
    let breath = (v.breathiness + p.breath + g(&mut rng, 0.08)).clamp(0.0, 0.6);
    let jitter = (p.jitter * (1.0 + g(&mut rng, 0.4))).clamp(0.001, 0.05);
    let shimmer = (p.shimmer * (1.0 + g(&mut rng, 0.4))).clamp(0.005, 0.2);
    let tremor = (p.tremor * (1.0 + g(&mut rng, 0.5))).max(0.0);
    let attack = (p.attack * (1.0 + g(&mut rng, 0.3))).clamp(0.004, 0.08);

    // Words of 1–3 syllables; utterance length from the number of words (the "text").
    let words = rng.random_range(2..=6);
    let mut t = rng.random_range(0.08..0.3);
    let mut syllables = Vec::new();
    let mut vowel = VOWELS[rng.random_range(0..VOWELS.len())];
    let word_sizes: Vec<usize> = (0..words).map(|_| rng.random_range(1..=3)).collect();
    let n_syll: usize = word_sizes.iter().sum();
    let mut index = 0;
    for (w, &size) in word_sizes.iter().enumerate() {
        for _ in 0..size {
            let onset_kind = rng.random_range(0..3u8);
            let onset = match onset_kind {
                0 => 0.0,
                1 => rng.random_range(0.04..0.09) / rate,
                _ => rng.random_range(0.03..0.06) / rate,
            };
            t += onset;
            let len = rng.random_range(0.12..0.26) / rate;
            // Pitch: declination over the utterance, accents on some syllables, scaled by range.
            let position = index as f64 / n_syll.max(1) as f64;
            let declination = 1.0 + 0.08 * range * (0.5 - position);
            let accent = if rng.random_bool(0.35) {
                rng.random_range(1.5..4.0) * range
            } else {
                rng.random_range(-1.0..1.0) * range
            };
            let semis = |s: f64| 2f64.powf(s / 12.0);
            let f0_from = pitch * declination * semis(accent);
            let f0_to = pitch * declination * semis(accent * rng.random_range(-0.5..0.8));
            let next = VOWELS[rng.random_range(0..VOWELS.len())];
            let scale = v.formant_scale;
            syllables.push(Syllable {
                start: t,
                len,
                onset_kind,
                onset,
                f0_from: f0_from.clamp(60.0, 600.0),
                f0_to: f0_to.clamp(60.0, 600.0),
                from: [vowel[0] * p.f1, vowel[1], vowel[2]].map(|f| f * scale),
                to: [next[0] * p.f1, next[1], next[2]].map(|f| f * scale),
                amp: 1.0 + g(&mut rng, 0.15),
            });
            vowel = next;
            t += len;
            index += 1;
        }
        if w + 1 < words {
            t += rng.random_range(0.04..0.16) * p.pause / rate;
        }
    }
    t += rng.random_range(0.08..0.3);
    let voiced_f0: f64 = syllables
        .iter()
        .map(|s| (s.f0_from + s.f0_to) / 2.0 * s.len)
        .sum::<f64>()
        / syllables.iter().map(|s| s.len).sum::<f64>();
    Plan {
        mean_f0: voiced_f0,
        seconds: t,
        gain_db: u.voice.device_gain_db + loud_db + rng.random_range(-2.0..2.0),
        syllables,
        jitter,
        shimmer,
        breath,
        tilt,
        tremor,
        tremor_hz: rng.random_range(5.0..8.0),
        attack,
        snr_db: u.voice.device_snr_db + rng.random_range(-3.0..3.0),
        pink_noise: u.voice.device_pink_noise,
        bandwidth: p.bandwidth * (1.0 + g(&mut rng, 0.1)).max(0.5),
    }
}

/// A two-pole resonator with unity gain at DC (Klatt's formant filter).
#[derive(Default, Clone, Copy)]
struct Resonator {
    a: f64,
    b: f64,
    c: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn tune(&mut self, freq: f64, bandwidth: f64, rate: f64) {
        let freq = freq.min(rate * 0.45);
        let r = (-PI * bandwidth / rate).exp();
        self.c = -r * r;
        self.b = 2.0 * r * (TAU * freq / rate).cos();
        self.a = 1.0 - self.b - self.c;
    }

    fn step(&mut self, x: f64) -> f64 {
        let y = self.a * x + self.b * self.y1 + self.c * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Renders one utterance: mono f32 samples at `u.sample_rate`.
pub fn render(u: &SyntheticUtterance) -> Vec<f32> {
    let plan = plan(u);
    let sr = u.sample_rate as f64;
    let n = (plan.seconds * sr).ceil() as usize;
    let mut rng = StdRng::seed_from_u64(u.seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut out = vec![0.0f64; n];
    let mut consonants = vec![0.0f64; n];

    // Voiced nuclei: glottal source -> tilt -> formant cascade.
    let mut formants = [Resonator::default(); 4];
    let bandwidths = [90.0, 110.0, 160.0, 250.0];
    for s in &plan.syllables {
        let start = (s.start * sr) as usize;
        let len = ((s.len * sr) as usize).min(n.saturating_sub(start));
        let mut phase = 0.0f64; // position within the current glottal period, 0..1
        let mut period_f0 = s.f0_from;
        let mut pulse_amp = 1.0;
        let mut tilt_state = 0.0f64;
        let mut prev = 0.0f64;
        for (i, o) in out[start..start + len].iter_mut().enumerate() {
            let t = i as f64 / len.max(1) as f64;
            if i % 32 == 0 {
                for (j, r) in formants.iter_mut().enumerate() {
                    let f = if j < 3 {
                        // Glide from the previous vowel over the first 40 % of the nucleus.
                        let k = (t / 0.4).min(1.0);
                        s.from[j] + (s.to[j] - s.from[j]) * k
                    } else {
                        3500.0 * u.voice.formant_scale
                    };
                    r.tune(f, bandwidths[j] * plan.bandwidth, sr);
                }
            }
            phase += period_f0 / sr;
            if phase >= 1.0 {
                phase -= 1.0;
                // A new period: pitch contour, tremor and jitter; shimmer on amplitude.
                let time = s.start + t * s.len;
                let contour = s.f0_from + (s.f0_to - s.f0_from) * t;
                let tremor = 1.0 + plan.tremor * (TAU * plan.tremor_hz * time).sin();
                let jitter = 1.0 + rng.sample::<f64, _>(StandardNormal) * plan.jitter;
                period_f0 = (contour * tremor * jitter).clamp(50.0, 800.0);
                pulse_amp = (1.0 + rng.sample::<f64, _>(StandardNormal) * plan.shimmer).max(0.2);
            }
            // Rosenberg pulse: opening 40 % of the period, closing 16 %, then closed.
            let g = if phase < 0.4 {
                0.5 * (1.0 - (PI * phase / 0.4).cos())
            } else if phase < 0.56 {
                (PI * (phase - 0.4) / 0.32).cos()
            } else {
                0.0
            };
            let source = pulse_amp * g;
            // Lip radiation (differentiation), aspiration noise in the open phase.
            let mut x = source - prev;
            prev = source;
            let noise: f64 = rng.sample(StandardNormal);
            x += plan.breath * 0.08 * noise * (0.3 + g);
            // Spectral tilt: low-pass for dark voices, extra high-frequency boost for bright.
            tilt_state = 0.6 * tilt_state + 0.4 * x;
            let y = if plan.tilt < 0.0 {
                x + (-plan.tilt) * (tilt_state - x)
            } else {
                x + plan.tilt * (x - tilt_state)
            };
            let mut v = y;
            for r in &mut formants {
                v = r.step(v);
            }
            // Syllable envelope: attack, sustain, release.
            let time_in = i as f64 / sr;
            let time_left = (len - i) as f64 / sr;
            let env = (time_in / plan.attack).min(1.0) * (time_left / 0.04).min(1.0);
            *o += v * env * s.amp;
        }
        // Onset consonant before the nucleus.
        let onset_start = ((s.start - s.onset) * sr).max(0.0) as usize;
        if s.onset_kind > 0 && onset_start < start {
            let mut fric = Resonator::default();
            fric.tune(4200.0 * u.voice.formant_scale, 1800.0, sr);
            let m = start - onset_start;
            let mut last = 0.0;
            for (i, o) in consonants[onset_start..start].iter_mut().enumerate() {
                let noise: f64 = rng.sample(StandardNormal);
                let hp = noise - last;
                last = noise;
                let env = match s.onset_kind {
                    1 => (PI * i as f64 / m as f64).sin(),
                    // Plosive: silence (closure) then a short burst.
                    _ => {
                        if i * 4 > m * 3 {
                            1.0
                        } else {
                            0.0
                        }
                    }
                };
                *o += env * fric.step(hp);
            }
        }
    }

    // Level: normalise the voice to a reference RMS, then apply the recording gain.
    let speech_rms = (out.iter().map(|v| v * v).sum::<f64>() / n as f64)
        .sqrt()
        .max(1e-9);
    let gain = 0.08 / speech_rms * 10f64.powf(plan.gain_db / 20.0);
    let noise_rms = 0.08 * 10f64.powf(plan.gain_db / 20.0) / 10f64.powf(plan.snr_db / 20.0);
    let mut pink = 0.0f64;
    let mut samples: Vec<f32> = out
        .iter()
        .map(|&v| {
            let w: f64 = rng.sample(StandardNormal);
            let noise = if plan.pink_noise {
                pink = 0.95 * pink + 0.3 * w;
                pink
            } else {
                w
            };
            (v * gain + noise * noise_rms) as f32
        })
        .collect();
    // Never clip: a loud take is scaled under full scale, as a recording engineer would.
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak > 0.99 {
        let k = 0.99 / peak;
        samples.iter_mut().for_each(|s| *s *= k);
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SyntheticConfig {
        SyntheticConfig {
            speakers: 6,
            per_emotion: 3,
            ..Default::default()
        }
    }

    #[test]
    fn balanced_deterministic_and_seeded() {
        let a = corpus(&small()).unwrap();
        assert_eq!(a.len(), 6 * 5 * 3);
        assert_eq!(a.per_emotion(), [18; 5]);
        assert_eq!(a.speakers().len(), 6);
        let b = corpus(&small()).unwrap();
        let render_first = |c: &Corpus| match &c.utterances[0].source {
            AudioSource::Synthetic(s) => render(s),
            AudioSource::File(_) => unreachable!(),
        };
        assert_eq!(render_first(&a), render_first(&b));
        let c = corpus(&SyntheticConfig {
            seed: 99,
            ..small()
        })
        .unwrap();
        assert_ne!(render_first(&a), render_first(&c));
    }

    #[test]
    fn rendered_audio_is_bounded_speech_length_and_not_silent() {
        let c = corpus(&small()).unwrap();
        for u in c.utterances.iter().step_by(7) {
            let AudioSource::Synthetic(s) = &u.source else {
                unreachable!()
            };
            let x = render(s);
            let secs = x.len() as f64 / 16000.0;
            assert!((0.5..9.0).contains(&secs), "{}: {secs} s", u.id);
            let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(peak > 0.01 && peak <= 0.99, "{}: peak {peak}", u.id);
            assert!(x.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(
            corpus(&SyntheticConfig {
                speakers: 1,
                ..small()
            })
            .is_err()
        );
        assert!(
            corpus(&SyntheticConfig {
                per_emotion: 0,
                ..small()
            })
            .is_err()
        );
        assert!(
            corpus(&SyntheticConfig {
                sample_rate: 100,
                ..small()
            })
            .is_err()
        );
    }
}
