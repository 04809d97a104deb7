//! Decoding of real file layouts, built here byte for byte (WAV) or committed as small
//! fixtures made by `tools/golden/make_codec_fixtures.py` (FLAC, OGG Vorbis, MP3), and the
//! bad-input cases: each must give a clear error naming the file, never a panic.

use std::path::{Path, PathBuf};

use fedser_audio::decode::{DecodeError, LoadError};
use fedser_audio::{decode_bytes, decode_file};

const PCM: u16 = 1;
const FLOAT: u16 = 3;
const EXTENSIBLE: u16 = 0xFFFE;

/// A RIFF/WAVE file: `fmt ` (16 bytes, or 40 for extensible), optional extra chunks placed
/// before `data` (odd-sized ones padded, as RIFF requires), then the data chunk.
fn wav(
    format: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: &[u8],
    extra: &[(&[u8; 4], &[u8])],
) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut fmt = Vec::new();
    fmt.extend(
        (if format == EXTENSIBLE {
            EXTENSIBLE
        } else {
            format
        })
        .to_le_bytes(),
    );
    fmt.extend(channels.to_le_bytes());
    fmt.extend(rate.to_le_bytes());
    fmt.extend((rate * block as u32).to_le_bytes());
    fmt.extend(block.to_le_bytes());
    fmt.extend(bits.to_le_bytes());
    if format == EXTENSIBLE {
        fmt.extend(22u16.to_le_bytes()); // cbSize
        fmt.extend(bits.to_le_bytes()); // valid bits
        fmt.extend(0u32.to_le_bytes()); // channel mask
        // KSDATAFORMAT_SUBTYPE_PCM
        fmt.extend([
            1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
        ]);
    }
    let mut body = b"WAVE".to_vec();
    let mut chunk = |id: &[u8; 4], payload: &[u8]| {
        body.extend(id);
        body.extend((payload.len() as u32).to_le_bytes());
        body.extend(payload);
        if payload.len() % 2 == 1 {
            body.push(0);
        }
    };
    chunk(b"fmt ", &fmt);
    for (id, payload) in extra {
        chunk(id, payload);
    }
    chunk(b"data", data);
    let mut out = b"RIFF".to_vec();
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
    }
}

#[test]
fn pcm_integer_depths_scale_to_unit_range() {
    let u8_data = [0u8, 64, 128, 192, 255];
    let a = decode_bytes(wav(PCM, 1, 8000, 8, &u8_data, &[])).unwrap();
    assert_close(&a.samples, &[-1.0, -0.5, 0.0, 0.5, 127.0 / 128.0], 1e-6);
    assert_eq!(a.sample_rate, 8000);

    let i16_data: Vec<u8> = [-32768i16, -16384, 0, 16384, 32767]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let a = decode_bytes(wav(PCM, 1, 16000, 16, &i16_data, &[])).unwrap();
    assert_close(&a.samples, &[-1.0, -0.5, 0.0, 0.5, 32767.0 / 32768.0], 0.0);

    let i24_data: Vec<u8> = [-8388608i32, 4194304, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes()[..3].to_vec())
        .collect();
    let a = decode_bytes(wav(PCM, 1, 16000, 24, &i24_data, &[])).unwrap();
    assert_close(&a.samples, &[-1.0, 0.5, 0.0], 1e-7);

    let i32_data: Vec<u8> = [i32::MIN, 1 << 30]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let a = decode_bytes(wav(PCM, 1, 16000, 32, &i32_data, &[])).unwrap();
    assert_close(&a.samples, &[-1.0, 0.5], 1e-7);
}

#[test]
fn float_32_and_64_pass_through() {
    let f32_data: Vec<u8> = [0.25f32, -0.75]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let a = decode_bytes(wav(FLOAT, 1, 22050, 32, &f32_data, &[])).unwrap();
    assert_close(&a.samples, &[0.25, -0.75], 0.0);

    let f64_data: Vec<u8> = [0.125f64, -0.5, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let a = decode_bytes(wav(FLOAT, 1, 48000, 64, &f64_data, &[])).unwrap();
    assert_close(&a.samples, &[0.125, -0.5, 0.0], 0.0);
    assert_eq!(a.sample_rate, 48000);
}

#[test]
fn channels_are_averaged() {
    // Stereo frames (L, R): (0.5, 0.0), (1.0, -1.0) in 16-bit.
    let data: Vec<u8> = [16384i16, 0, 32767, -32767]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let a = decode_bytes(wav(PCM, 2, 16000, 16, &data, &[])).unwrap();
    assert_close(&a.samples, &[0.25, 0.0], 1e-6);
    // Three channels.
    let data: Vec<u8> = [3000i16, 6000, 9000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let a = decode_bytes(wav(PCM, 3, 16000, 16, &data, &[])).unwrap();
    assert_close(&a.samples, &[6000.0 / 32768.0], 1e-6);
}

#[test]
fn extensible_and_odd_chunks_are_read() {
    let data: Vec<u8> = [8192i16, -8192]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let a = decode_bytes(wav(EXTENSIBLE, 1, 16000, 16, &data, &[])).unwrap();
    assert_close(&a.samples, &[0.25, -0.25], 0.0);
    // A LIST/INFO chunk, an FLLR filler chunk (Apple tools) and an odd-sized unknown chunk
    // (followed by its RIFF pad byte) before the data.
    let list: &[u8] = b"INFOISFT\x05\x00\x00\x00fedsr\x00";
    let fllr = vec![0u8; 4044];
    let odd: &[u8] = b"abc";
    let extra: &[(&[u8; 4], &[u8])] = &[(b"LIST", list), (b"FLLR", &fllr), (b"junk", odd)];
    let a = decode_bytes(wav(PCM, 1, 16000, 16, &data, extra)).unwrap();
    assert_close(&a.samples, &[0.25, -0.25], 0.0);
    // An odd-sized LIST chunk whose INFO list is cut short (7 bytes, then the pad byte), as
    // some recorders and editors write: the samples are intact and read.
    let short_list: &[u8] = b"INFOabc";
    let a = decode_bytes(wav(PCM, 1, 16000, 16, &data, &[(b"LIST", short_list)])).unwrap();
    assert_close(&a.samples, &[0.25, -0.25], 0.0);
    // The same without the pad byte (a writer that forgot it).
    let mut unpadded = wav(PCM, 1, 16000, 16, &data, &[(b"LIST", short_list)]);
    let at = unpadded.windows(4).position(|w| w == b"data").unwrap();
    unpadded.remove(at - 1);
    let n = unpadded.len() as u32 - 8;
    unpadded[4..8].copy_from_slice(&n.to_le_bytes());
    let a = decode_bytes(unpadded).unwrap();
    assert_close(&a.samples, &[0.25, -0.25], 0.0);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Frequency from zero crossings in the middle of the signal.
fn tone_hz(samples: &[f32], rate: u32) -> f64 {
    let mid = &samples[samples.len() / 5..samples.len() * 4 / 5];
    let crossings = mid
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (mid.len() as f64 / rate as f64)
}

fn rms(samples: &[f32]) -> f64 {
    let mid = &samples[samples.len() / 5..samples.len() * 4 / 5];
    (mid.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / mid.len() as f64).sqrt()
}

#[test]
fn compressed_formats_decode_to_the_encoded_tone() {
    // (file, rate, expected mono amplitude of the 440 Hz sine)
    for (name, rate, amplitude) in [
        ("tone_16000_1ch.flac", 16000, 0.5),
        ("tone_44100_2ch.flac", 44100, 0.375),
        ("tone_22050_1ch.ogg", 22050, 0.5),
        ("tone_44100_2ch.mp3", 44100, 0.375),
        ("tone_16000_1ch.mp3", 16000, 0.5),
        ("tone_16000_1ch_f64.wav", 16000, 0.5),
        (
            "tone_16000_4ch_ext24.wav",
            16000,
            (0.5 + 0.25 + 0.125) / 4.0,
        ),
    ] {
        let a = decode_file(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.sample_rate, rate, "{name}");
        let want_seconds = if name.contains(".wav") { 0.1 } else { 0.5 };
        assert!(
            (a.seconds() - want_seconds).abs() < 0.06,
            "{name}: {} s",
            a.seconds()
        );
        let hz = tone_hz(&a.samples, rate);
        assert!((hz - 440.0).abs() < 5.0, "{name}: {hz} Hz");
        let want_rms = amplitude / 2f64.sqrt();
        assert!(
            (rms(&a.samples) - want_rms).abs() < 0.02,
            "{name}: rms {}",
            rms(&a.samples)
        );
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fedser-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Decoding `bytes` saved as `name` fails with a message naming the file and containing `what`.
fn assert_fails(name: &str, bytes: &[u8], what: &str) {
    let path = temp_file(name, bytes);
    let err = decode_file(&path).expect_err(name).to_string();
    assert!(err.contains(name), "error does not name the file: {err}");
    assert!(
        err.to_lowercase().contains(what),
        "{name}: expected {what:?} in: {err}"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let good: Vec<u8> = wav(PCM, 1, 16000, 16, &[1, 0, 2, 0], &[]);
    assert_fails("empty.wav", &[], "empty");
    assert_fails("header_cut.wav", &good[..20], "audio");
    assert_fails(
        "text.wav",
        b"this is not audio at all, just some text",
        "not a recognised audio format",
    );
    assert_fails(
        "no_samples.wav",
        &wav(PCM, 1, 16000, 16, &[], &[]),
        "no samples",
    );
    let nan: Vec<u8> = [0.5f32, f32::NAN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_fails(
        "nan.wav",
        &wav(FLOAT, 1, 16000, 32, &nan, &[]),
        "not a finite number",
    );
    let inf: Vec<u8> = [f64::INFINITY]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_fails(
        "inf.wav",
        &wav(FLOAT, 1, 16000, 64, &inf, &[]),
        "not a finite number",
    );
    assert_fails(
        "rate.wav",
        &wav(PCM, 1, 5_000_000, 16, &[1, 0], &[]),
        "sample rate",
    );
    assert_fails(
        "rate_low.wav",
        &wav(PCM, 1, 100, 16, &[1, 0], &[]),
        "sample rate",
    );
    let many = vec![0u8; 2 * 200];
    assert_fails(
        "channels.wav",
        &wav(PCM, 200, 16000, 16, &many, &[]),
        "channel",
    );
    // Bytes that look like the start of each compressed format, then garbage.
    assert_fails(
        "fake.flac",
        b"fLaC\x00\x00\x00\x22garbage-garbage-garbage",
        "",
    );
    assert_fails("fake.ogg", b"OggS\x00\x02garbagegarbagegarbage", "");
    assert_fails("fake.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x10\xff\xfb", "");
}

#[test]
fn missing_file_names_the_path() {
    let err = decode_file(Path::new("/nonexistent/fedser/missing.wav")).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));
    assert!(err.to_string().contains("missing.wav"));
}

#[test]
fn truncated_data_keeps_the_samples_present() {
    let data: Vec<u8> = (0..100i16).flat_map(|v| (v * 100).to_le_bytes()).collect();
    let mut bytes = wav(PCM, 1, 16000, 16, &data, &[]);
    bytes.truncate(bytes.len() - 51); // cut mid-sample
    let a = decode_bytes(bytes).unwrap();
    assert_eq!(a.samples.len(), 74);
    assert_eq!(a.samples[10], 1000.0 / 32768.0);
    assert!(matches!(decode_bytes(vec![]), Err(DecodeError::EmptyFile)));
}

/// Inputs the fuzzer (`fuzz/`) found crashing the decoder, kept as regressions.
#[test]
fn fuzz_regressions_are_errors_not_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let result = decode_file(&path);
        assert!(
            result.is_err(),
            "{}: decoded a hostile file",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 1);
}
