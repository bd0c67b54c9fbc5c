"""Shared fixtures: tiny local AST checkpoints and generated audio datasets (no Hub, no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from astapp.data.synth import make_class_folders  # noqa: E402

# the real-browser fixtures (`chromium_path`, `app`), for the tests under e2e/ and any other that asks
pytest_plugins = ["browser_helpers"]


def build_tiny_ast(path: Path, max_length: int = 128, num_labels: int = 2, seed: int = 0) -> Path:
    """Save a tiny randomly initialised AST checkpoint (hidden 64, 2 layers) plus its preprocessor."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(seed)
    cfg = ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                    max_length=max_length, num_labels=num_labels)
    model = ASTForAudioClassification(cfg)
    model.save_pretrained(path)
    ASTFeatureExtractor(max_length=max_length).save_pretrained(path)
    return Path(path)


@pytest.fixture(autouse=True)
def _transformers_verbosity_restored():
    """The in-process CLI quiets transformers for its process (as it should for a user); a later test that
    reads transformers' warnings must not depend on which tests ran before it (test order follows folders)."""
    import sys

    hf = sys.modules.get("transformers.utils.logging")
    level = hf.get_verbosity() if hf else None
    yield
    hf = sys.modules.get("transformers.utils.logging")
    if hf is not None:
        hf.set_verbosity(level if level is not None else hf.WARNING)
        hf.enable_progress_bar()


@pytest.fixture(scope="session")
def tiny_ast(tmp_path_factory) -> Path:
    """A tiny AST checkpoint folder (max_length 128 frames) loadable with from_pretrained."""
    return build_tiny_ast(tmp_path_factory.mktemp("tiny_ast") / "ckpt")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """3 classes x 8 generated 1-second clips as one folder per class."""
    root = tmp_path_factory.mktemp("data") / "sounds"
    make_class_folders(root, n_classes=3, per_class=8, seconds=1.0, seed=1)
    return root
