#!/usr/bin/env python3
"""Small compressed-audio fixtures for fedser's decoder tests (committed, ~30 KB in all).

Writes crates/fedser-audio/tests/fixtures/tone_<rate>_<channels>ch.{flac,ogg,mp3}: 0.5 s of a
440 Hz sine at amplitude 0.5 (the right channel, when there is one, at amplitude 0.25), encoded
by libsndfile through the `soundfile` package. Also WAV variants libsndfile writes that are
awkward to build by hand: 64-bit float and WAVE_FORMAT_EXTENSIBLE 24-bit in 4 channels.

  python tools/golden/make_codec_fixtures.py      (needs numpy and soundfile==0.14.0)
"""
import os

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "crates", "fedser-audio", "tests", "fixtures")


def tone(rate, channels, seconds=0.5):
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    cols = [left, 0.5 * left, 0.25 * left, 0.0 * left][:channels]
    return np.stack(cols, axis=1)


def main():
    os.makedirs(OUT, exist_ok=True)
    for rate, ch, ext, fmt, sub in [
        (16000, 1, "flac", "FLAC", "PCM_16"),
        (44100, 2, "flac", "FLAC", "PCM_24"),
        (22050, 1, "ogg", "OGG", "VORBIS"),
        (44100, 2, "mp3", "MP3", "MPEG_LAYER_III"),
        (16000, 1, "mp3", "MP3", "MPEG_LAYER_III"),
    ]:
        path = os.path.join(OUT, f"tone_{rate}_{ch}ch.{ext}")
        sf.write(path, tone(rate, ch), rate, format=fmt, subtype=sub)
        print(path, os.path.getsize(path))
    sf.write(os.path.join(OUT, "tone_16000_1ch_f64.wav"), tone(16000, 1, 0.1), 16000, format="WAV", subtype="DOUBLE")
    sf.write(os.path.join(OUT, "tone_16000_4ch_ext24.wav"), tone(16000, 4, 0.1), 16000, format="WAVEX", subtype="PCM_24")


if __name__ == "__main__":
    main()
