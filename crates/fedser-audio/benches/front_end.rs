//! Front-end micro-benchmarks on 3 s of speech-like audio (`cargo bench -p fedser-audio`).
//! For the comparison with python_speech_features / librosa / torchaudio on real speech, see
//! `tools/bench_mfcc.sh`.

use fedser_audio::clean::{DenoiseConfig, denoise};
use fedser_audio::resample::resample;
use fedser_audio::synth::speech_like;
use fedser_audio::{Mfcc, MfccConfig, decode_bytes};

fn main() {
    divan::main();
}

fn speech(rate: u32) -> Vec<f32> {
    speech_like(rate, 3.0, 1)
}

fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for &s in samples {
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    cursor.into_inner()
}

#[divan::bench]
fn mfcc_psf_3s_16k(bencher: divan::Bencher) {
    let x = speech(16000);
    let mut m = Mfcc::new(&MfccConfig::psf(), 16000).unwrap();
    bencher.bench_local(|| m.compute(divan::black_box(&x)).unwrap());
}

#[divan::bench]
fn mfcc_librosa_3s_16k(bencher: divan::Bencher) {
    let x = speech(16000);
    let mut m = Mfcc::new(&MfccConfig::librosa(), 16000).unwrap();
    bencher.bench_local(|| m.compute(divan::black_box(&x)).unwrap());
}

#[divan::bench]
fn decode_wav16_3s_16k(bencher: divan::Bencher) {
    let bytes = wav_bytes(&speech(16000), 16000);
    bencher.bench_local(|| decode_bytes(divan::black_box(bytes.clone())).unwrap());
}

#[divan::bench]
fn resample_3s_22050_to_16k(bencher: divan::Bencher) {
    let x = speech(22050);
    bencher.bench_local(|| resample(divan::black_box(&x), 22050, 16000).unwrap());
}

#[divan::bench]
fn denoise_3s_16k(bencher: divan::Bencher) {
    let x = speech(16000);
    let cfg = DenoiseConfig::default();
    bencher.bench_local(|| denoise(divan::black_box(&x), 16000, &cfg));
}
