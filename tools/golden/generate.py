#!/usr/bin/env python3
"""Golden MFCC vectors for fedser's tests, computed by python_speech_features 0.6 and librosa 0.11.

Writes into crates/fedser-audio/tests/golden/ (committed):
  <signal>.wav            16-bit PCM mono input, generated here from fixed seeds
  <signal>.<config>.csv   MFCC matrix, one frame per row, no header, %.10e
  manifest.json           library versions, and each signal's rate, length and configs

Every library receives the samples as floats in [-1, 1] (int16 / 32768), fedser's convention.

Signals: speech-like harmonic signals at 16 kHz, 22.05 kHz and 48 kHz (at 48 kHz a 20 ms
frame of 960 samples is longer than NFFT 512), linear and log chirps, a three-sine mix at
8 kHz, digital silence, a clip shorter than one frame, and low-level white noise.

Configs (see CONFIGS below; fedser's tests mirror them):
  psf_paper      psf.mfcc(winlen=.02, winstep=.02, numcep=13, nfilt=26, nfft=512)  (rect window)
  psf_hamming    as psf_paper with winfunc=numpy.hamming and nfft = next pow2 >= frame (min 512)
  psf_default    psf.mfcc with every default (25 ms / 10 ms, nfft 512)
  librosa_paper  librosa.feature.mfcc(n_mfcc=13, n_fft=next pow2 >= win (min 512),
                 win_length=hop_length=round(.02*sr))
  librosa_default librosa.feature.mfcc(n_mfcc=13) (n_fft 2048, hop 512)

Run (needs numpy, scipy, python_speech_features==0.6, librosa==0.11.0; the environment made by
../shared/peers/setup.sh has them, or `pip install -r tools/golden/requirements.txt`):
  python tools/golden/generate.py
"""
import json
import os
import platform
import sys

import numpy as np
import scipy.io.wavfile as wavfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "crates", "fedser-audio", "tests", "golden")


def to_i16(x):
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def speech_like(sr, seconds, seed):
    """Syllables of a harmonic source (gliding pitch, 1/k tilt, moving formants) and pauses."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    out = np.zeros(n)
    pos = 0
    vowels = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480]], float)
    while pos < n:
        pos += int(rng.uniform(0.05, 0.15) * sr)
        ln = min(int(rng.uniform(0.15, 0.3) * sr), n - pos)
        if ln <= 0:
            break
        t = np.arange(ln) / ln
        f0 = rng.uniform(90, 260) * (1 + rng.uniform(-0.3, 0.3) * t)
        phase = np.cumsum(2 * np.pi * f0 / sr)
        a, b = vowels[rng.integers(4)], vowels[rng.integers(4)]
        formants = a[None, :] + (b - a)[None, :] * t[:, None]
        sig = np.zeros(ln)
        k = 1
        while k * f0.min() < sr / 2:
            f = k * f0
            shape = np.exp(-(((f[:, None] - formants) / 120.0) ** 2)).sum(1) + 0.05
            sig += np.where(f < sr / 2, shape / k * np.sin(k * phase), 0.0)
            k += 1
        out[pos:pos + ln] = 0.25 * np.sin(np.pi * t) ** 0.6 * sig
        pos += ln
    out += 0.002 * rng.standard_normal(n)
    return out


def signals():
    rng = np.random.default_rng(20240101)
    s = {}
    s["speech_16k"] = (16000, speech_like(16000, 1.3, 1))
    s["speech_22k05"] = (22050, speech_like(22050, 1.1, 2))
    s["speech_48k"] = (48000, speech_like(48000, 0.6, 3))
    sr, n = 16000, 16000 + 123
    t = np.arange(n) / sr
    x = 0.5 * np.sin(2 * np.pi * (100 * t + (7000 - 100) / (2 * n / sr) * t ** 2)) + 0.01 * rng.standard_normal(n)
    x[: int(0.1 * sr)] = 0.0
    s["chirp_16k"] = (sr, x)
    sr = 8000
    t = np.arange(int(0.75 * sr)) / sr
    s["sines_8k"] = (sr, 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t)
                     + 0.1 * np.sin(2 * np.pi * 3000 * t))
    sr, n = 44100, 22050
    t = np.arange(n) / sr
    k = (18000 / 50) ** (1 / (n / sr))
    s["logchirp_44k1"] = (sr, 0.6 * np.sin(2 * np.pi * 50 * (k ** t - 1) / np.log(k)))
    s["silence_16k"] = (16000, np.zeros(8000))
    s["short_16k"] = (16000, 0.3 * np.sin(2 * np.pi * 300 * np.arange(200) / 16000))
    s["noise_16k"] = (16000, 0.01 * rng.standard_normal(12000))
    return s


def next_pow2_at_least(n, start=512):
    v = start
    while v < n:
        v *= 2
    return v


def configs(psf, librosa, sr):
    win = int(round(0.02 * sr))
    rect = lambda m: np.ones((m,))  # noqa: E731
    return {
        "psf_paper": (dict(winlen=0.02, winstep=0.02, numcep=13, nfilt=26, nfft=512, window="rect"),
                      lambda x, y: psf.mfcc(x, sr, winlen=0.02, winstep=0.02, numcep=13, nfilt=26, nfft=512,
                                            winfunc=rect)),
        "psf_hamming": (dict(winlen=0.02, winstep=0.02, numcep=13, nfilt=26, nfft=next_pow2_at_least(win),
                             window="hamming"),
                        lambda x, y: psf.mfcc(x, sr, winlen=0.02, winstep=0.02, numcep=13, nfilt=26,
                                              nfft=next_pow2_at_least(win), winfunc=np.hamming)),
        "psf_default": (dict(winlen=0.025, winstep=0.01, numcep=13, nfilt=26, nfft=512, window="rect"),
                        lambda x, y: psf.mfcc(x, sr)),
        "librosa_paper": (dict(win=win, hop=win, nfft=next_pow2_at_least(win), n_mels=128),
                          lambda x, y: librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=next_pow2_at_least(win),
                                                            hop_length=win, win_length=win).T),
        "librosa_default": (dict(win=2048, hop=512, nfft=2048, n_mels=128),
                            lambda x, y: librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13).T),
    }


def main():
    import python_speech_features as psf
    import librosa
    from importlib.metadata import version

    os.makedirs(OUT, exist_ok=True)
    manifest = {"generator": "tools/golden/generate.py",
                "versions": {"python": platform.python_version(), "numpy": np.__version__,
                             "python_speech_features": version("python_speech_features"),
                             "librosa": librosa.__version__},
                "input_scale": "int16 / 32768", "signals": {}}
    for name, (sr, x) in signals().items():
        path = os.path.join(OUT, name + ".wav")
        wavfile.write(path, sr, to_i16(x))
        _, pcm = wavfile.read(path)
        x64 = pcm.astype(np.float64) / 32768.0
        y32 = (pcm.astype(np.float32) / 32768.0).astype(np.float32)  # what librosa.load returns
        entry = {"sample_rate": sr, "samples": int(pcm.shape[0]), "configs": {}}
        for cname, (params, fn) in configs(psf, librosa, sr).items():
            m = np.asarray(fn(x64, y32), dtype=np.float64)
            np.savetxt(os.path.join(OUT, f"{name}.{cname}.csv"), m, fmt="%.10e", delimiter=",")
            entry["configs"][cname] = dict(params, shape=list(m.shape))
        manifest["signals"][name] = entry
        print(name, sr, pcm.shape[0], {k: v["shape"] for k, v in entry["configs"].items()}, file=sys.stderr)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
