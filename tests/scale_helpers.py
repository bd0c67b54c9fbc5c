"""What the scale tests share (tests/scale/, bench/bench_scale.py): a tiny exported model and a folder of
generated recordings with tone events, plus one file that is not audio."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from detect_helpers import LABELS, write_recording

from astapp.detection.run import RECORDS
from astapp.model.folder import export_model
from astapp.model.loading import load_model


def export_tiny(tiny_ast: Path, out: Path, seed: int = 0, max_length: int = 100) -> Path:
    """The tiny checkpoint with a new head for the tone labels (seeded), exported as Predict loads it."""
    torch.manual_seed(seed)
    export_model(load_model(str(tiny_ast), LABELS, max_length), LABELS, max_length, -5.5, 3.25, out)
    return out


def recordings(root: Path, count: int, seconds: float) -> Path:
    """`count` recordings of `seconds` (±30 %) with a few tone events each, and broken.wav."""
    for i in range(count):
        length = seconds * (0.7 + 0.6 * i / max(count - 1, 1))
        events = [(LABELS[(i + k) % 3], length * k / 4, length * k / 4 + 2.0) for k in range(1, 4)]
        write_recording(root / f"rec{i:02d}.wav", length, events, seed=i)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    return root


def records(output: Path) -> dict[str, dict]:
    """Every record of an output folder without its timing (the one field that differs between runs)."""
    out = {}
    for p in sorted((output / RECORDS).glob("*.json")):
        rec = json.loads(p.read_text(encoding="utf-8"))
        rec.pop("seconds", None)
        out[p.name] = rec
    return out
