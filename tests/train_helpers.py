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


@pytest.fixture(autouse=True)
def one_thread(tmp_path_factory, monkeypatch):
    """One torch thread (deterministic sums, fair to a shared CPU) and one shared data cache."""
    monkeypatch.setenv("ASTAPP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "astapp-cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


