//! Audio in, clean mono f32 out, MFCCs out: the front end of fedser. No machine learning here.
//!
//! - [`decode`]: WAV (PCM 8/16/24/32-bit, float 32/64, any channel count, extensible),
//!   FLAC, OGG Vorbis and MP3 → mono f32 in [-1, 1] plus the sample rate.
//! - [`resample`]: band-limited rate conversion (16 kHz by default in the pipeline).
//! - [`clean`]: peak normalisation, spectral denoising, silence trimming.
//! - [`mfcc`]: MFCCs matching python_speech_features (`psf`) or librosa (`librosa`).
//! - [`pipeline`]: all of the above as one configured front end.
//! - [`perturb`]: what devices do to recordings (gates, gain, rates, codecs, noise).
//! - [`synth`]: deterministic speech-like test signals.

pub mod clean;
pub mod decode;
pub mod mfcc;
pub mod perturb;
pub mod pipeline;
pub mod resample;
pub mod synth;

#[cfg(test)]
pub(crate) use synth as testsignal;

pub use decode::{Audio, DecodeError, LoadError, decode_bytes, decode_file};
pub use mfcc::{Mfcc, MfccConfig, MfccError, MfccStyle, WindowKind};
pub use perturb::{ChainKind, PerturbError, Perturbation};
pub use pipeline::{ExtractError, FrontEnd, FrontEndConfig};
