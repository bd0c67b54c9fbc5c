"""What the detection tests share: long recordings with known events, written in blocks, and an oracle scorer.

The oracle stands in for a trained model where a test is about detection's own logic (windows, hysteresis,
resume, formats): class k is a pure tone at FREQS[k], and a window's probability of class k is the share of
its 25 ms frames where that tone stands out of the noise, so its answers are exact and instant. The real
model path (Predictor, torch and ONNX) is tested with a tiny trained model in test_quality.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
FREQS = (520.0, 1520.0, 3000.0)
LABELS = ["beep", "hum", "whistle"]


def tone(label: str, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * FREQS[LABELS.index(label)] * t)).astype(np.float32)


def write_recording(path: Path, seconds: float, events: Sequence[tuple[str, float, float]], sr: int = SR,
                    channels: int = 1, noise: float = 0.01, seed: int = 0, block_seconds: float = 60.0,
                    subtype: str = "PCM_16") -> Path:
    """A recording of `seconds` of noise with tones at (label, start, end), written block by block."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=channels, subtype=subtype) as f:
        total = int(round(seconds * sr))
        block = int(block_seconds * sr)
        for lo in range(0, total, block):
            n = min(block, total - lo)
            x = (rng.standard_normal(n) * noise).astype(np.float32)
            t = (lo + np.arange(n)) / sr
            for label, start, end in events:
                on = (t >= start) & (t < end)
                if on.any():
                    x[on] += (0.3 * np.sin(2 * np.pi * FREQS[LABELS.index(label)] * t[on])).astype(np.float32)
            f.write(np.repeat(x[:, None], channels, axis=1) if channels > 1 else x)
    return path


class OracleScorer:
    """A fake model answering `astapp.detection.scores.Scorer` from the tones themselves (see the module doc)."""

    def __init__(self, labels: Sequence[str] = LABELS, multi_label: bool = True, window_seconds: float = 1.0,
                 batch_size: int = 4, background: bool = False, unknown_threshold: float | None = None):
        self.labels = list(labels) + (["background"] if background and not multi_label else [])
        self.multi_label = multi_label
        self.thresholds: dict[str, float] = {}
        self.window_samples = int(window_seconds * SR)
        self.batch_size = batch_size
        self.unknown_threshold = unknown_threshold
        self.model_id = f"oracle-{multi_label}-{window_seconds}"
        self.calls = 0
        self.unknown_for: set[str] = set()  # labels the "model" does not know: high unknown score

    def _fractions(self, w: np.ndarray) -> np.ndarray:
        frames = len(w) // 400
        if frames == 0:
            return np.zeros(len(FREQS))
        spec = np.abs(np.fft.rfft(w[:frames * 400].reshape(frames, 400) * np.hanning(400), axis=1))
        # a window shorter than the model's is padded: its fractions count over the whole window
        return np.asarray([(spec[:, int(f / 40)] > 5.0).sum() / (self.window_samples // 400) for f in FREQS])

    def outputs(self, windows):
        self.calls += 1
        fr = np.stack([self._fractions(np.asarray(w)) for w in windows])[:, :len(LABELS)]
        if self.multi_label:
            probs = fr
        else:
            probs = np.concatenate([fr, np.clip(1 - fr.sum(1, keepdims=True), 0, 1)], axis=1)[:, :len(self.labels)]
        unk = None
        if self.unknown_threshold is not None:
            unk = np.asarray([max([fr[i, LABELS.index(u)] for u in self.unknown_for] or [0.0])
                              for i in range(len(windows))])
        return probs.astype(np.float32), unk


def match(found, truth, tol):
    """Each true (label, start, end) has one found event of its label with both ends within tol."""
    return all(any(e.label == lab and abs(e.start - s) <= tol and abs(e.end - t) <= tol for e in found)
               for lab, s, t in truth)


def write_training_clips(root: Path, per_class: int = 16, seconds: float = 1.0, seed: int = 0) -> Path:
    """Clips like the recordings' windows: each class's tone (+-3 %, varied level) on noise, and a
    "background" class of noise alone (the model's way to say "nothing here")."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    for name in [*LABELS, "background"]:
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            x = rng.standard_normal(n) * rng.uniform(0.005, 0.03)
            if name != "background":
                f = FREQS[LABELS.index(name)] * rng.uniform(0.97, 1.03)
                x = x + np.sin(2 * np.pi * f * t) * rng.uniform(0.15, 0.5)
            sf.write(str(root / name / f"{name}_{j:03d}.wav"), x.astype(np.float32), SR)
    return root


def random_events(seconds: float, n: int, seed: int = 0, min_len: float = 1.5, max_len: float = 4.0,
                  gap: float = 2.0) -> list[tuple[str, float, float]]:
    """n non-overlapping events of random classes and lengths, at least `gap` apart, within `seconds`."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, float, float]] = []
    t = gap
    for _ in range(n):
        length = float(rng.uniform(min_len, max_len))
        start = t + float(rng.uniform(0, gap))
        if start + length + gap > seconds:
            break
        out.append((LABELS[int(rng.integers(len(LABELS)))], round(start, 3), round(start + length, 3)))
        t = start + length + gap
    return out
