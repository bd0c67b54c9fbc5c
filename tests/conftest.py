"""Shared fixtures: tiny local AST checkpoints and generated audio datasets (no Hub, no downloads)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads (torch's, scikit-learn's t-SNE) that wait for work sleep instead of spinning: the tests share
# two cores with a Gradio server, Chromium and each other, and a spinning thread burns the CPU they need (a tiny
# 2-thread training took 5.9 s of CPU spinning, 1.0 s passive, on the shared machine). Set before anything
# loads OpenMP; subprocesses (app.py, the CLI, torchrun) inherit it. Results are the same either way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
    reads transformers' warnings must not depend on which tests ran before it (test order follows folders),
    nor on a background thread of an earlier test quieting it late: every test starts and ends at WARNING."""
    import sys

    def reset() -> None:
        hf = sys.modules.get("transformers.utils.logging")
        if hf is not None:
            hf.set_verbosity(hf.WARNING)
            hf.enable_progress_bar()

    reset()
    yield
    reset()


@pytest.fixture(scope="session")
def tiny_ast(tmp_path_factory) -> Path:
    """A tiny AST checkpoint folder (max_length 128 frames) loadable with from_pretrained."""
    return build_tiny_ast(tmp_path_factory.mktemp("tiny_ast") / "ckpt")


@pytest.fixture(scope="session")
def built_app(tmp_path_factory):
    """The app built once (not launched) over a job manager that never starts: for tests that read what the
    page is given (components, events, endpoints). A build is ~2 s of CPU; they share one."""
    from astapp.jobs.manager import JobManager
    from astapp.ui.app import build_app

    return build_app(JobManager(tmp_path_factory.mktemp("built_app"), start=False), hub_online=False)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """3 classes x 8 generated 1-second clips as one folder per class."""
    root = tmp_path_factory.mktemp("data") / "sounds"
    make_class_folders(root, n_classes=3, per_class=8, seconds=1.0, seed=1)
    return root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every real-browser journey is also `slow` (Chromium start-up plus a whole page journey), so the fast
    lane `pytest -m "not slow"` leaves them out without each file having to say so twice."""
    for item in items:
        if item.get_closest_marker("browser") is not None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)



def _freeze_the_heap() -> None:
    """Collect what is garbage now, then freeze what survives out of the garbage collector's sight.

    Every training run pays full collections (`astapp.jobs.record.release_memory` after each job, and
    accelerate's `free_memory` at the start of every `Trainer.train`), and a full collection walks every
    tracked object: what importing torch, transformers, gradio and datasets leaves (over half a million
    objects, about 0.3 s of CPU per collection, seconds of wall time on a loaded machine) plus whatever the
    session has built up since. A run trained in slices pays that twice per slice, inside the slice's time
    budget, which left slices one step long and made tests/jobs/test_slicing.py 15 times slower inside the
    whole suite than alone. Frozen objects are still freed when their last reference goes (only reference
    cycles among them are never collected), so freezing the long-lived heap changes no test's behaviour.
    """
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    """The test modules are imported (and with them the whole stack): freeze that before any test runs."""
    _freeze_the_heap()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After a test module's last test (its module fixtures are gone), freeze what the module imported lazily."""
    yield
    if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", None):
        _freeze_the_heap()
