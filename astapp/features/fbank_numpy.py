"""AST input features in plain numpy, for running an ONNX export where neither torch nor transformers
is installed (`predict --onnx`, a small server).

The same maths as `transformers.ASTFeatureExtractor`'s numpy path (and `astapp.features.fbank.Fbank`):
per 25 ms frame (10 ms hop) remove the DC offset, pre-emphasis 0.97, symmetric Hann window,
|rfft(512)|², 128 kaldi-scale mel filters built in mel space, floor at float32 epsilon, natural log;
frames beyond `max_length` cut, missing frames filled with 0, then `(x - mean) / (2 * std)`.
Computed in float64, so it matches the reference to float32 round-off.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from astapp.core.config import SAMPLE_RATE

FRAME_LENGTH, HOP_LENGTH, FFT_LENGTH = 400, 160, 512
PREEMPHASIS = 0.97
MEL_FLOOR = 1.192092955078125e-07


def window_samples(max_length: int) -> int:
    """Samples that make exactly `max_length` frames."""
    return (int(max_length) - 1) * HOP_LENGTH + FRAME_LENGTH


def _kaldi_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=4)
def mel_filters(num_mel_bins: int = 128) -> np.ndarray:
    """(257, bins) triangular filters spaced on the kaldi mel scale from 20 Hz to 8 kHz, triangles in mel
    space, no normalisation: what ASTFeatureExtractor builds without torchaudio."""
    mels = np.linspace(_kaldi_mel(20.0), _kaldi_mel(SAMPLE_RATE // 2), num_mel_bins + 2)
    fft_mels = _kaldi_mel(np.arange(FFT_LENGTH // 2 + 1) * SAMPLE_RATE / FFT_LENGTH)
    diff = np.diff(mels)
    slopes = mels[None, :] - fft_mels[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def log_mel(wav: np.ndarray, num_mel_bins: int = 128) -> np.ndarray:
    """(frames, bins) natural-log mel energies of a 16 kHz mono clip (no padding, no normalisation)."""
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    n = 0 if wav.size < FRAME_LENGTH else 1 + (wav.size - FRAME_LENGTH) // HOP_LENGTH
    if n == 0:
        return np.zeros((0, num_mel_bins), dtype=np.float64)
    idx = np.arange(FRAME_LENGTH)[None, :] + HOP_LENGTH * np.arange(n)[:, None]
    frames = wav[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * (1 - PREEMPHASIS),
                             frames[:, 1:] - PREEMPHASIS * frames[:, :-1]], axis=1)
    frames = frames * np.hanning(FRAME_LENGTH)
    power = np.abs(np.fft.rfft(frames, n=FFT_LENGTH, axis=1)) ** 2
    return np.log(np.maximum(MEL_FLOOR, power @ mel_filters(num_mel_bins)))


def features(wav: np.ndarray, max_length: int, mean: float, std: float, num_mel_bins: int = 128,
             normalize: bool = True) -> np.ndarray:
    """(max_length, bins) float32 model input of one clip, exactly as the model was trained on."""
    fb = log_mel(np.asarray(wav)[:window_samples(max_length)], num_mel_bins)[:max_length]
    out = np.zeros((int(max_length), num_mel_bins), dtype=np.float64)
    out[:len(fb)] = fb
    if normalize:
        out = (out - mean) / (std * 2)
    return out.astype(np.float32)
