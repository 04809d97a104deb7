//! The robust front end gives a recording and its copies from other recording chains the same
//! features: a gated copy (silence as exact digital zeros), a quieter copy, one with a DC
//! offset, one padded with silence and one recorded at 8 kHz. The classic and wideband front
//! ends, which these tests also run, do not: that is what the robust one is for.

use fedser_audio::synth::{speech_like, white_noise};
use fedser_audio::{Audio, FrontEnd, FrontEndConfig, Perturbation};
use fedser_core::FeatureMatrix;

/// A studio-like recording: a second of room tone, speech, another second; pauses and room
/// tone hold only a faint noise floor, 80 dB below the peak (a 16-bit recording of a quiet
/// room).
fn studio_recording() -> Audio {
    let rate = 16_000;
    let mut speech = vec![0.0f32; rate as usize];
    speech.extend(speech_like(rate, 3.0, 21));
    speech.extend(vec![0.0f32; rate as usize]);
    let gated = Perturbation::Gate {
        threshold_db: -40.0,
    }
    .apply(
        &Audio {
            samples: speech,
            sample_rate: rate,
        },
        0,
    )
    .unwrap();
    let peak = gated.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let floor = white_noise(gated.samples.len(), 4);
    let samples = gated
        .samples
        .iter()
        .zip(&floor)
        .map(|(s, n)| s + n * peak * 1e-4)
        .collect();
    Audio {
        samples,
        sample_rate: rate,
    }
}

fn features(cfg: &FrontEndConfig, audio: &Audio) -> FeatureMatrix {
    let mut front = FrontEnd::new(cfg.clone()).unwrap();
    let prepared = front.prepare(audio.clone()).unwrap();
    front.mfcc(&prepared).unwrap()
}

/// The largest difference between the two recordings' utterance means of a coefficient, in
/// units of that coefficient's standard deviation over the clean recording's frames: what the
/// DNN's statistics and every z-score see.
fn mean_shift(a: &FeatureMatrix, b: &FeatureMatrix) -> f64 {
    let stats = |m: &FeatureMatrix, c: usize| {
        let v: Vec<f64> = m.rows().map(|r| r[c] as f64).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        (mean, sd)
    };
    (0..a.coeffs())
        .map(|c| {
            let ((ma, sa), (mb, _)) = (stats(a, c), stats(b, c));
            (ma - mb).abs() / sa.max(1e-9)
        })
        .fold(0.0, f64::max)
}

/// Stated tolerance: every coefficient's utterance mean within 0.1 standard deviations.
const TOLERANCE: f64 = 0.1;

#[test]
fn gated_copy_gives_the_same_training_features() {
    let clean = studio_recording();
    let gated = Perturbation::Gate {
        threshold_db: -60.0,
    }
    .apply(&clean, 0)
    .unwrap();
    assert!(gated.samples.iter().filter(|&&s| s == 0.0).count() > clean.samples.len() / 10);
    let robust = FrontEndConfig::robust();
    let shift = mean_shift(&features(&robust, &clean), &features(&robust, &gated));
    assert!(shift < TOLERANCE, "robust front end: shift {shift:.3}");
    let classic = FrontEndConfig::classic();
    let shift = mean_shift(&features(&classic, &clean), &features(&classic, &gated));
    assert!(
        shift > 5.0 * TOLERANCE,
        "classic front end: shift only {shift:.3}"
    );
}

#[test]
fn gain_dc_and_padding_leave_the_features_in_place() {
    let clean = studio_recording();
    let robust = FrontEndConfig::robust();
    let reference = features(&robust, &clean);
    for name in ["gain:-30", "gain:6", "dc:0.01", "pad:2"] {
        let p: Perturbation = name.parse().unwrap();
        let copy = p.apply(&clean, 0).unwrap();
        let f = features(&robust, &copy);
        let frames = (f.frames() as i64 - reference.frames() as i64).abs();
        assert!(
            frames <= 2,
            "{name}: {} frames against {}",
            f.frames(),
            reference.frames()
        );
        let shift = mean_shift(&reference, &f);
        assert!(shift < TOLERANCE, "{name}: shift {shift:.3}");
    }
}

/// A recording cut tight around the speech (20 ms of room tone at each end, as EMO-DB's are)
/// and its copy padded with 2 s of digital silence give the same features, frame for frame
/// (within 0.2 log units), with the robust front end (trimmed to the speech) and with the
/// wideband one when it fills its margins (cut down to, and filled up to, exactly 0.5 s).
#[test]
fn a_tightly_cut_recording_and_its_padded_copy_agree_frame_for_frame() {
    let tight = tight_cut(&studio_recording());
    let padded = Perturbation::Pad { seconds: 2.0 }.apply(&tight, 0).unwrap();
    let robust = FrontEndConfig::robust();
    let (a, b) = (features(&robust, &tight), features(&robust, &padded));
    assert_eq!(a.frames(), b.frames());
    assert!(max_difference(&a, &b) < 0.2);
    // Trimmed to the speech: at most its 3 s of 20 ms frames (its quiet fade-in and
    // fade-out fall under the floor), and no room tone.
    assert!((135..=152).contains(&a.frames()), "{}", a.frames());
    wideband_fill_agrees(&tight, &padded);
}

/// The studio recording's speech (1 s to 4 s) with 20 ms of room tone either side.
fn tight_cut(studio: &Audio) -> Audio {
    let rate = studio.sample_rate as usize;
    Audio {
        samples: studio.samples[rate - rate / 50..4 * rate + rate / 50].to_vec(),
        sample_rate: studio.sample_rate,
    }
}

/// The largest difference between two matrices of the same shape.
fn max_difference(a: &FeatureMatrix, b: &FeatureMatrix) -> f32 {
    a.rows()
        .zip(b.rows())
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0f32, f32::max)
}

fn wideband_fill_agrees(tight: &Audio, padded: &Audio) {
    let filled = FrontEndConfig::wideband_filled();
    let (a, b) = (features(&filled, tight), features(&filled, padded));
    assert_eq!(a.frames(), b.frames());
    // Not bit for bit: the mean removed from each copy is taken over its own length.
    let worst = max_difference(&a, &b);
    assert!(worst < 0.2, "{worst}");
    assert!(mean_shift(&a, &b) < TOLERANCE / 10.0);
    // Kept 0.5 s at each end: 4 s of 20 ms frames, give or take the trimmer's 10 ms hop.
    assert!((195..=205).contains(&a.frames()), "{}", a.frames());
    // Without filling, the padded copy keeps silence the tight one never had.
    let unfilled = FrontEndConfig::wideband();
    let (c, d) = (features(&unfilled, tight), features(&unfilled, padded));
    assert!(
        d.frames() > c.frames() + 40,
        "{} {}",
        c.frames(),
        d.frames()
    );
}

#[test]
fn a_front_end_recorded_before_the_robust_one_reads_back_as_classic() {
    // The front-end entry of a fedser 0.1 model file or run folder.
    let old = r#"{"sample_rate":16000,"normalise":true,"denoise":false,"trim_silence":false,
        "mfcc":{"style":"psf","winlen":0.02,"winstep":0.02,"numcep":13,"nfilt":null,
        "nfft":null,"window":null,"lowfreq":0.0,"highfreq":null,"preemph":0.97,
        "ceplifter":22,"append_energy":true,"top_db":null}}"#;
    let cfg: FrontEndConfig = serde_json::from_str(old).unwrap();
    assert_eq!(cfg, FrontEndConfig::classic());
    // A partial configuration keeps the robust defaults for what it leaves out.
    let partial: FrontEndConfig = serde_json::from_str(r#"{"denoise": true}"#).unwrap();
    assert_eq!(
        partial,
        FrontEndConfig {
            denoise: true,
            ..FrontEndConfig::robust()
        }
    );
    assert!(serde_json::from_str::<FrontEndConfig>(r#"{"dither": 1}"#).is_err());
    // A record from before margins could be filled computes without filling.
    let mut record = serde_json::to_value(FrontEndConfig::wideband_filled()).unwrap();
    record.as_object_mut().unwrap().remove("fill_margins");
    let cfg: FrontEndConfig = serde_json::from_value(record).unwrap();
    assert_eq!(cfg, FrontEndConfig::wideband());
    // And what is recorded now reads back as itself.
    let robust = FrontEndConfig::robust();
    let back: FrontEndConfig =
        serde_json::from_str(&serde_json::to_string(&robust).unwrap()).unwrap();
    assert_eq!(back, robust);
    assert_ne!(robust, FrontEndConfig::classic());
}

#[test]
fn the_floor_needs_the_psf_style_and_a_level_below_the_peak() {
    let librosa = FrontEndConfig {
        mfcc: fedser_audio::MfccConfig::librosa(),
        ..FrontEndConfig::robust()
    };
    let e = FrontEnd::new(librosa).err().unwrap().to_string();
    assert!(e.contains("psf"), "{e}");
    let above = FrontEndConfig {
        floor_db: 3.0,
        ..FrontEndConfig::robust()
    };
    assert!(FrontEnd::new(above).is_err());
}

#[test]
fn digital_silence_and_a_faint_hiss_give_the_same_floor_frames() {
    // A tone burst in the middle; around it exact zeros in one copy, hiss 80 dB below the
    // peak in the other. Under the floor, the silent frames agree to 0.05 (log units).
    let rate = 16_000;
    let mut zeros = vec![0.0f32; 2 * rate as usize];
    for (i, s) in zeros[rate as usize / 2..rate as usize]
        .iter_mut()
        .enumerate()
    {
        *s = 0.5 * (std::f32::consts::TAU * 220.0 * i as f32 / rate as f32).sin();
    }
    let hiss: Vec<f32> = zeros
        .iter()
        .zip(white_noise(zeros.len(), 9))
        .map(|(s, n)| s + n * 0.5e-4)
        .collect();
    let cfg = FrontEndConfig {
        trim_silence: false,
        ..FrontEndConfig::robust()
    };
    let zeros = Audio {
        samples: zeros,
        sample_rate: rate,
    };
    let hiss = Audio {
        samples: hiss,
        sample_rate: rate,
    };
    let (a, b) = (features(&cfg, &zeros), features(&cfg, &hiss));
    assert_eq!(a.frames(), b.frames());
    let last = a.frames() - 1; // the final second is silence in both
    let worst = a
        .row(last)
        .iter()
        .zip(b.row(last))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 0.1, "{worst}");
    // Without the floor, the zeros' log energy sits at psf's epsilon, far below the hiss.
    let classic = FrontEndConfig::classic();
    let (c, d) = (features(&classic, &zeros), features(&classic, &hiss));
    assert!((c.row(last)[0] - d.row(last)[0]).abs() > 10.0);
}

/// A copy recorded at 8 kHz (the telephone band) gives the robust front end the same features:
/// it reads only the band such a device records. The wideband front end, which reads up to
/// 8 kHz, sees the missing upper band.
#[test]
fn an_8_khz_copy_gives_the_same_training_features() {
    let clean = studio_recording();
    let narrow = Perturbation::Rate { hz: 8_000 }.apply(&clean, 0).unwrap();
    assert_eq!(narrow.sample_rate, 8_000);
    let robust = FrontEndConfig::robust();
    let (a, b) = (features(&robust, &clean), features(&robust, &narrow));
    assert!((a.frames() as i64 - b.frames() as i64).abs() <= 1);
    let shift = mean_shift(&a, &b);
    assert!(shift < TOLERANCE, "robust front end: shift {shift:.3}");
    let wideband = FrontEndConfig::wideband();
    let shift = mean_shift(&features(&wideband, &clean), &features(&wideband, &narrow));
    assert!(
        shift > 5.0 * TOLERANCE,
        "wideband front end: shift only {shift:.3}"
    );
}
