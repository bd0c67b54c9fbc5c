"""A pool of generated sounds shared by the pool tests (built once per session with the tiny AST; a test module
imports the fixtures `pool_data` and `built_pool`, and the folders are shared through the session's base temp).

Tone classes at far-apart frequencies: the tiny random AST separates those (its pooled output follows where the
energy is), where it confuses e.g. a tone with a chirp; a real checkpoint separates far more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astapp.data.synth import make_tone_classes, write_wav

CLASSES = {"low": 250.0, "high": 1800.0, "top": 4500.0}


def tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = np.sin(2 * np.pi * freq * rng.uniform(0.97, 1.03) * t) * rng.uniform(0.3, 0.9)
    return (x + rng.standard_normal(len(t)) * 0.01).astype(np.float32)


@pytest.fixture(scope="session")
def pool_data(tmp_path_factory) -> Path:
    """3 tone classes x 6 clips of 1.5 s (folder = class), one 4 s recording of a low tone, one non-audio file."""
    root = tmp_path_factory.getbasetemp() / "pooldata" / "recordings"
    if root.is_dir():
        return root
    make_tone_classes(root, per_class=6, seconds=1.5, seed=3, classes=CLASSES)
    write_wav(root / "low" / "long_low.wav", tone(CLASSES["low"], 4.0, 9))
    (root / "notes.wav").write_text("not audio at all")
    return root


@pytest.fixture(scope="session")
def built_pool(pool_data, tiny_ast, tmp_path_factory) -> Path:
    import torch

    from astapp.pool.build import build_pool

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.getbasetemp() / "pooldata" / "pool"
    if (out / "pool.json").is_file():
        return out
    try:
        build_pool(pool_data, str(tiny_ast), out, hop=0.5)
    finally:
        torch.set_num_threads(before)
    return out


def class_of(file: str) -> str:
    return file.split("/", 1)[0]
