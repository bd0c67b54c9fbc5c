"""What the scale tests share (tests/scale/, bench/bench_scale.py): a tiny exported model and a folder of generated recordings (one broken)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from astapp.data.synth import make_signal, write_wav
from astapp.model.folder import export_model
from astapp.model.loading import load_model

LABELS = ["bark", "chainsaw", "rain"]


def export_tiny(tiny_ast: Path, out: Path, seed: int = 0) -> Path:
    """The tiny checkpoint with a new 3-class head (seeded) at 100 frames, exported as Predict loads it."""
    torch.manual_seed(seed)
    export_model(load_model(str(tiny_ast), LABELS, 100), LABELS, 100, -5.5, 3.25, out)
    return out


def recordings(root: Path, count: int, seconds: float) -> list[str]:
    """`count` generated recordings of `seconds` (±30 %) plus one that is not audio, as sorted path strings."""
    kinds = ["chirp", "tone", "noise"]
    for i in range(count):
        wav = make_signal(kinds[i % 3], seconds * (0.7 + 0.6 * i / max(count - 1, 1)), rng=np.random.default_rng(i))
        write_wav(root / f"rec{i:02d}.wav", wav)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    return sorted(str(p) for p in root.iterdir())
