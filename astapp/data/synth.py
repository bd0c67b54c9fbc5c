"""Synthetic, varied audio for tests, benchmarks and the built-in example.

Each class has its own kind of sound (tone, chirp, noise band, click train, ...), drawn with random
pitch, level, onset and background noise, so a model has something real to learn and no two clips are
the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KINDS = ("tone", "chirp", "noise", "clicks", "am", "harmonic", "sweep_down", "bursts", "fm", "square")


def make_signal(kind: str, seconds: float, sr: int = 16_000, rng: np.random.Generator | None = None) -> np.ndarray:
    """One clip of the given kind, float32 in [-1, 1]."""
    rng = rng or np.random.default_rng(0)
    n = max(1, int(round(seconds * sr)))
    t = np.arange(n, dtype=np.float64) / sr
    f0 = float(rng.uniform(200, 1200))
    if kind == "tone":
        x = np.sin(2 * np.pi * f0 * t)
    elif kind == "chirp":
        f1 = f0 * rng.uniform(2, 4)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * max(seconds, 1e-3))))
    elif kind == "sweep_down":
        f1 = f0 * rng.uniform(2, 4)
        x = np.sin(2 * np.pi * (f1 * t - (f1 - f0) * t**2 / (2 * max(seconds, 1e-3))))
    elif kind == "noise":
        x = rng.standard_normal(n)
        k = int(rng.integers(8, 64))
        x = np.convolve(x, np.ones(k) / k, mode="same") * 3
    elif kind == "clicks":
        x = np.zeros(n)
        period = int(sr / rng.uniform(4, 20))
        x[:: max(period, 1)] = 1.0
        x = np.convolve(x, np.hanning(64), mode="same")
    elif kind == "am":
        x = np.sin(2 * np.pi * f0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * t))
    elif kind == "harmonic":
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
    elif kind == "bursts":
        x = rng.standard_normal(n) * (np.sin(2 * np.pi * rng.uniform(1, 4) * t) > 0.3)
    elif kind == "fm":
        x = np.sin(2 * np.pi * f0 * t + rng.uniform(2, 6) * np.sin(2 * np.pi * rng.uniform(3, 12) * t))
    elif kind == "square":
        x = np.sign(np.sin(2 * np.pi * f0 / 2 * t)) * 0.5
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    x = np.asarray(x, dtype=np.float64)
    x /= max(float(np.max(np.abs(x))), 1e-9)
    x = x * rng.uniform(0.2, 0.9) + rng.standard_normal(n) * rng.uniform(0.001, 0.02)
    return np.clip(x, -1, 1).astype(np.float32)


def write_wav(path: Path, wav: np.ndarray, sr: int = 16_000, subtype: str | None = None) -> Path:
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, sr, subtype=subtype)
    return path


def make_class_folders(
    root: Path,
    n_classes: int = 3,
    per_class: int = 6,
    seconds: float | tuple[float, float] = 1.0,
    sr: int = 16_000,
    seed: int = 0,
    ext: str = ".wav",
) -> list[str]:
    """Write `root/<class>/<n>.wav` folders of generated clips; returns the class names."""
    rng = np.random.default_rng(seed)
    names = [KINDS[i % len(KINDS)] + ("" if i < len(KINDS) else str(i)) for i in range(n_classes)]
    for ci, name in enumerate(names):
        for j in range(per_class):
            secs = seconds if isinstance(seconds, (int, float)) else float(rng.uniform(*seconds))
            wav = make_signal(KINDS[ci % len(KINDS)], secs, sr, rng)
            write_wav(Path(root) / name / f"{name}_{j:04d}{ext}", wav, sr)
    return names


TONE_CLASSES = {"low": 250.0, "mid": 700.0, "high": 1800.0, "top": 4500.0}


def make_tone_classes(root: Path, per_class: int = 25, seconds: float = 1.0, flip: float = 0.0, seed: int = 0,
                      classes: dict[str, float] | None = None, sr: int = 16_000) -> list[str]:
    """Clearly separable classes (a tone at its own frequency, +-3 %) as `root/<class>/<class>_NNN.wav`;
    then `flip` of the files are moved into another class's folder (a wrong label). Returns the moved
    files as "<folder they are in>/<name>": the label issues a finder should report."""
    classes = classes or TONE_CLASSES
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    files = []
    for name, f in classes.items():
        for j in range(per_class):
            x = np.sin(2 * np.pi * f * rng.uniform(0.97, 1.03) * t) * rng.uniform(0.3, 0.9)
            x = x + rng.standard_normal(n) * 0.01
            files.append(write_wav(Path(root) / name / f"{name}_{j:03d}.wav", x.astype(np.float32), sr))
    moved = []
    for i in rng.choice(len(files), size=int(round(flip * len(files))), replace=False):
        f = files[int(i)]
        others = [c for c in classes if c != f.parent.name]
        dest = Path(root) / others[int(rng.integers(len(others)))] / f.name
        f.rename(dest)
        moved.append(f"{dest.parent.name}/{f.name}")
    return moved


def make_multilabel_dataset(root: Path, kinds: tuple[str, ...] = ("tone", "noise", "clicks"), per_combo: int = 6,
                            seconds: float = 1.0, seed: int = 0, max_labels: int = 3) -> Path:
    """Clips that mix 1..max_labels of `kinds` (every combination, `per_combo` clips each) plus labels.csv
    with the kinds of each clip joined by ',' (a multi-label manifest); returns root."""
    from itertools import combinations

    rng = np.random.default_rng(seed)
    root = Path(root)
    rows = ["file,labels"]
    combos = [c for k in range(1, max_labels + 1) for c in combinations(kinds, k)]
    for ci, combo in enumerate(combos):
        for j in range(per_combo):
            mix = sum(make_signal(kind, seconds, 16_000, rng) for kind in combo) / len(combo)
            name = f"clips/{ci:02d}_{j:02d}.wav"
            write_wav(root / name, np.asarray(mix, dtype=np.float32))
            rows.append(f'{name},"{",".join(combo)}"')
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root
