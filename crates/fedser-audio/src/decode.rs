//! Decoding of audio files to mono f32 samples in [-1, 1] plus the sample rate.
//!
//! WAV goes through `hound` when it can (PCM 8/16/24/32-bit, float 32, extensible); everything
//! else — float 64 WAV, A-law/µ-law, odd chunk layouts, FLAC, OGG Vorbis, MP3 — through
//! `symphonia`. Integer PCM is scaled by 2^(bits−1) (int16 / 32768, the librosa and fedser
//! convention); float PCM passes through unchanged. Channels are averaged to mono.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// Decoded mono audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Mono samples (integer PCM maps to [-1, 1)).
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl Audio {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Lowest and highest sample rates accepted (anything outside is a corrupt header).
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = 1_000..=768_000;
/// Most channels accepted.
pub const MAX_CHANNELS: usize = 64;

/// Why a recording could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the file is empty (0 bytes)")]
    EmptyFile,
    #[error("not a recognised audio format ({0})")]
    UnknownFormat(String),
    #[error("corrupt or unsupported audio: {0}")]
    Corrupt(String),
    #[error("the recording holds no samples")]
    NoSamples,
    #[error("absurd sample rate {0} Hz (accepted: 1000..=768000)")]
    BadRate(u64),
    #[error("absurd channel count {0} (accepted: 1..=64)")]
    BadChannels(usize),
    #[error("sample {index} is not a finite number ({value})")]
    NonFinite { index: usize, value: f32 },
}

/// A decoding failure with the file it happened to.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Decode { path: PathBuf, source: DecodeError },
}

/// Reads and decodes an audio file.
pub fn decode_file(path: &Path) -> Result<Audio, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode_bytes(bytes).map_err(|source| LoadError::Decode {
        path: path.to_owned(),
        source,
    })
}

/// Decodes an in-memory audio file; the format is recognised from its content.
pub fn decode_bytes(bytes: Vec<u8>) -> Result<Audio, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::EmptyFile);
    }
    let is_riff = bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE";
    let hound = || {
        decode_wav_hound(&bytes).or_else(|| {
            // Metadata chunks some recorders write malformed (an odd-sized LIST whose INFO
            // list is cut short) trip the decoders; the samples are intact, so read the file
            // again with only its `fmt ` and `data` chunks.
            let canonical = canonical_wav(&bytes)?;
            decode_wav_hound(&canonical)
        })
    };
    let (interleaved, rate, channels) = match is_riff.then(hound).flatten() {
        Some(decoded) => decoded?,
        None => {
            if is_riff {
                check_riff_fmt(&bytes)?;
            }
            // A decoder bug must not take the caller down: a panic inside symphonia (the fuzzer
            // found arithmetic overflows on hostile headers) becomes an error for this file.
            std::panic::catch_unwind(move || decode_symphonia(bytes)).unwrap_or_else(|_| {
                Err(DecodeError::Corrupt(
                    "the decoder failed on this file's structure".into(),
                ))
            })?
        }
    };
    finish(interleaved, rate, channels)
}

/// A RIFF WAVE holding only the `fmt ` and `data` chunks of `bytes` (every other chunk is
/// skipped, with a debug line); `None` without both. Chunks are walked with RIFF's pad byte
/// after odd sizes, or without it where a writer left it out (the next chunk id then starts
/// one byte earlier).
fn canonical_wav(bytes: &[u8]) -> Option<Vec<u8>> {
    let id_at = |p: usize| -> Option<&[u8]> {
        bytes
            .get(p..p + 4)
            .filter(|id| id.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
    };
    let (mut fmt, mut data) = (None, None);
    let mut pos = 12;
    while pos + 8 <= bytes.len() && data.is_none() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = pos + 8;
        let end = body.saturating_add(len).min(bytes.len());
        match id {
            b"fmt " => fmt = Some(&bytes[body..end]),
            b"data" => data = Some(&bytes[body..end]),
            other => tracing::debug!(
                "skipping the {:?} chunk ({len} bytes)",
                String::from_utf8_lossy(other)
            ),
        }
        let padded = body.saturating_add(len).saturating_add(len % 2);
        pos = if len % 2 == 1 && id_at(padded).is_none() && id_at(padded - 1).is_some() {
            padded - 1
        } else {
            padded
        };
    }
    let (fmt, data) = (fmt?, data?);
    let mut out = Vec::with_capacity(data.len() + fmt.len() + 28);
    out.extend(b"RIFF");
    out.extend(((4 + 8 + fmt.len() + fmt.len() % 2 + 8 + data.len()) as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend((fmt.len() as u32).to_le_bytes());
    out.extend(fmt);
    if fmt.len() % 2 == 1 {
        out.push(0);
    }
    out.extend(b"data");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    Some(out)
}

/// Rejects absurd channel counts and rates in a RIFF `fmt ` chunk before any decoder does
/// arithmetic on them.
fn check_riff_fmt(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        if id == b"fmt " {
            let Some(fmt) = bytes.get(pos + 8..pos + 16) else {
                return Err(DecodeError::Corrupt("truncated fmt chunk".into()));
            };
            let channels = u16::from_le_bytes([fmt[2], fmt[3]]) as usize;
            let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            if channels == 0 || channels > MAX_CHANNELS {
                return Err(DecodeError::BadChannels(channels));
            }
            if !RATE_RANGE.contains(&rate) {
                return Err(DecodeError::BadRate(rate as u64));
            }
            return Ok(());
        }
        pos = pos
            .saturating_add(8)
            .saturating_add(len)
            .saturating_add(len % 2);
    }
    Ok(())
}

/// The WAV path: hound parses the header (fmt, extensible, skipped chunks); the common sample
/// layouts are then converted straight from the byte slice, the others read through hound.
/// `None` when hound cannot read this WAV variant (symphonia then tries).
#[allow(clippy::type_complexity)]
fn decode_wav_hound(bytes: &[u8]) -> Option<Result<(Vec<f32>, u64, usize), DecodeError>> {
    let mut cursor = Cursor::new(bytes);
    let (spec, declared) = {
        let reader = hound::WavReader::new(&mut cursor).ok()?;
        (reader.spec(), reader.len() as usize)
    };
    let channels = spec.channels as usize;
    let data_start = cursor.position() as usize;
    if channels == 0 {
        return Some(Err(DecodeError::BadChannels(0)));
    }
    if let Some(samples) = convert_data_chunk(bytes, data_start, declared, spec) {
        return Some(Ok((samples, spec.sample_rate as u64, channels)));
    }
    let reader = hound::WavReader::new(Cursor::new(bytes)).ok()?;
    // Never trust the header for the allocation size: at most what the file can hold.
    let mut out = Vec::with_capacity(declared.min(bytes.len()));
    let outcome = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            read_all(reader.into_samples::<i32>(), &mut out, |s| {
                (s as f64 * scale) as f32
            })
        }
        (hound::SampleFormat::Float, 32) => read_all(reader.into_samples::<f32>(), &mut out, |s| s),
        _ => return None,
    };
    match outcome {
        Ok(()) => {}
        // Fewer samples than the header promised (a truncated file): keep what is there.
        Err(hound::Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            warn_truncated(declared, out.len());
            out.truncate(out.len() - out.len() % channels);
        }
        // A layout hound misreads (e.g. an unusual container width): let symphonia try.
        Err(_) => return None,
    }
    Some(Ok((out, spec.sample_rate as u64, channels)))
}

fn warn_truncated(declared: usize, present: usize) {
    tracing::warn!(
        "WAV data is truncated: header declares {declared} samples, file holds {present}"
    );
}

/// Converts the data chunk directly when its samples are packed at `bits / 8` bytes each
/// (checked against the chunk's declared length). `None` for other layouts.
fn convert_data_chunk(
    bytes: &[u8],
    start: usize,
    declared: usize,
    spec: hound::WavSpec,
) -> Option<Vec<f32>> {
    // hound leaves the reader just after the data chunk header: "data" + u32 length.
    let header = bytes.get(start.checked_sub(8)?..start)?;
    if &header[..4] != b"data" {
        return None;
    }
    let data_len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let width = (spec.bits_per_sample / 8) as usize;
    if !spec.bits_per_sample.is_multiple_of(8) || declared.checked_mul(width)? != data_len {
        return None;
    }
    let block = width * spec.channels as usize;
    let available = bytes.len() - start;
    let mut len = data_len.min(available);
    if len < data_len {
        warn_truncated(declared, len / width);
    }
    len -= len % block;
    let data = &bytes[start..start + len];
    let mut samples = vec![0.0f32; len / width];
    // Plain indexed loops over exact chunks: the compiler vectorises these.
    match (spec.sample_format, width) {
        (hound::SampleFormat::Int, 1) => {
            for (o, &b) in samples.iter_mut().zip(data) {
                *o = (b as f32 - 128.0) * (1.0 / 128.0);
            }
        }
        (hound::SampleFormat::Int, 2) => {
            for (o, c) in samples.iter_mut().zip(data.chunks_exact(2)) {
                *o = i16::from_le_bytes([c[0], c[1]]) as f32 * (1.0 / 32768.0);
            }
        }
        (hound::SampleFormat::Int, 3) => {
            for (o, c) in samples.iter_mut().zip(data.chunks_exact(3)) {
                *o = (i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8) as f32 * (1.0 / 8_388_608.0);
            }
        }
        (hound::SampleFormat::Int, 4) => {
            for (o, c) in samples.iter_mut().zip(data.chunks_exact(4)) {
                *o = (i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64 / 2_147_483_648.0) as f32;
            }
        }
        (hound::SampleFormat::Float, 4) => {
            for (o, c) in samples.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        _ => return None,
    }
    Some(samples)
}

fn read_all<S, I: Iterator<Item = hound::Result<S>>>(
    samples: I,
    out: &mut Vec<f32>,
    convert: impl Fn(S) -> f32,
) -> hound::Result<()> {
    for s in samples {
        out.push(convert(s?));
    }
    Ok(())
}

fn decode_symphonia(bytes: Vec<u8>) -> Result<(Vec<f32>, u64, usize), DecodeError> {
    let stream = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut format = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| DecodeError::UnknownFormat(e.to_string()))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| DecodeError::Corrupt("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| DecodeError::Corrupt("the audio track has no codec parameters".into()))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| DecodeError::Corrupt(format!("unsupported codec: {e}")))?;

    let mut rate = params.sample_rate.map(u64::from);
    let mut channels = params.channels.as_ref().map(|c| c.count());
    let mut seen_spec = false;
    let mut out: Vec<f32> = Vec::new();
    let mut skipped_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // Streamed or truncated files end this way: keep what was decoded.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            // A damaged packet: skip it, as players do, and say so.
            Err(SymphoniaError::DecodeError(_)) | Err(SymphoniaError::IoError(_)) => {
                skipped_packets += 1;
                continue;
            }
            Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
        };
        if buf.frames() == 0 {
            continue;
        }
        let spec = buf.spec();
        let (r, ch) = (spec.rate() as u64, spec.channels().count());
        if !seen_spec {
            (rate, channels, seen_spec) = (Some(r), Some(ch), true);
        } else if Some(r) != rate || Some(ch) != channels {
            return Err(DecodeError::Corrupt(format!(
                "the stream changes format mid-way ({rate:?} Hz, {channels:?} channels -> {r} Hz, {ch} channels)"
            )));
        }
        let start = out.len();
        out.resize(start + buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut out[start..]);
    }
    if skipped_packets > 0 {
        tracing::warn!("skipped {skipped_packets} undecodable packet(s)");
    }
    let rate = rate.ok_or_else(|| DecodeError::Corrupt("unknown sample rate".into()))?;
    let channels = channels.ok_or_else(|| DecodeError::Corrupt("unknown channel count".into()))?;
    Ok((out, rate, channels))
}

/// Validates the stream and down-mixes it to mono.
fn finish(interleaved: Vec<f32>, rate: u64, channels: usize) -> Result<Audio, DecodeError> {
    if !(RATE_RANGE.start()..=RATE_RANGE.end()).contains(&&(rate as u32)) || rate > u32::MAX as u64
    {
        return Err(DecodeError::BadRate(rate));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(DecodeError::BadChannels(channels));
    }
    if let Some(index) = first_non_finite(&interleaved) {
        return Err(DecodeError::NonFinite {
            index: index / channels,
            value: interleaved[index],
        });
    }
    let samples = downmix(interleaved, channels);
    if samples.is_empty() {
        return Err(DecodeError::NoSamples);
    }
    Ok(Audio {
        samples,
        sample_rate: rate as u32,
    })
}

/// Index of the first NaN or infinite sample. The common all-finite case is one vectorised
/// pass over the exponent bits (all ones exactly for NaN and infinities).
pub fn first_non_finite(samples: &[f32]) -> Option<usize> {
    const EXPONENT: u32 = 0x7f80_0000;
    let any = samples.iter().fold(0u32, |acc, x| {
        acc | u32::from(x.to_bits() & EXPONENT == EXPONENT)
    });
    if any == 0 {
        None
    } else {
        samples.iter().position(|s| !s.is_finite())
    }
}

/// Averages interleaved channels into one.
pub fn downmix(interleaved: Vec<f32>, channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved;
    }
    let scale = 1.0 / channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * scale)
        .collect()
}
