"""What the training tests share: one torch thread and a shared cache, a tiny run's config, its history,
and the validation predictions of an exported folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import ASTForAudioClassification

from astapp.core.config import TrainConfig


def one_thread_fixture(cache: str = "astapp-cache", threads: int | None = 1):
    """An autouse fixture for a test module: one data cache shared by the session's tests under `cache`, and
    `threads` torch threads (1: deterministic sums, fair to a shared CPU; None: as the code under test sets
    them, e.g. the CLI's `main()`), restored afterwards."""

    @pytest.fixture(autouse=True)
    def one_thread(tmp_path_factory, monkeypatch):
        monkeypatch.setenv("ASTAPP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / cache))
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        yield
        torch.set_num_threads(before)

    return one_thread


one_thread = one_thread_fixture()


def cfg_for(out: Path, tiny_ast: Path, data: Path, **kw) -> TrainConfig:
    base = {"data": str(data), "model": str(tiny_ast), "output": str(out), "epochs": 2, "batch_size": 4,
            "lr": 1e-3, "max_length": 64, "seed": 0, "precision": "fp32"}  # same numerics on every CPU
    return TrainConfig.from_dict({**base, **kw})


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def val_probs_from_export(model_dir: Path, data: Path, predictions: list[dict]) -> tuple[list[str], np.ndarray]:
    """Top label and its probability per validation clip from the exported folder alone (fresh load)."""
    from astapp.data.audio import load_audio
    from astapp.features.fbank import Fbank

    settings = json.loads((model_dir / "astapp.json").read_text())
    fbank = Fbank(settings["max_length"], settings["mean"], settings["std"])
    model = ASTForAudioClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        probs = model(fbank([load_audio(data / p["path"]) for p in predictions])).logits.softmax(-1)
    top = probs.max(-1)
    return [settings["labels"][i] for i in top.indices.tolist()], top.values.numpy()




KNOWN_TONES = {"low": 300.0, "high": 3000.0}


def tone_run(root: Path, tiny_ast: Path, **kw) -> tuple[Path, Path, Path]:
    """A tiny finished run on two tone classes with an unknown score (issue 25), and a folder of "other"
    sounds (a tone between them): (run folder, its dataset, the other sounds)."""
    from astapp.data.synth import make_tone_classes
    from astapp.service import train_run

    data, other = root / "tones", root / "other"
    make_tone_classes(data, per_class=10, classes=KNOWN_TONES, seed=3)
    make_tone_classes(other, per_class=6, classes={"mid": 1200.0}, seed=4)
    res = train_run(cfg_for(root / "run", tiny_ast, data, **{"mode": "full", "val_split": 0.4, "max_length": 128,
                                                              "epochs": 1, **kw}))  # recorded: config.json too
    assert res.state == "finished", res
    return root / "run", data, other
