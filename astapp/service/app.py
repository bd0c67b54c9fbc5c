"""`Service`: the one object the web app talks to (one per process, over the job queue).

Sessions are opened from a token (`open`); every method then takes the `Session`, so a run, a file
or a state of another session is never reachable. Caches (the example's report, loaded predictors)
live here, not in module globals of the UI.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from astapp.core.config import DEFAULT_MODEL, SCRATCH_SIZES, env_flag
from astapp.core.fsutil import atomic_write_text
from astapp.jobs.sessions import Session
from astapp.service.augmenting import AugmentingMixin
from astapp.service.crossval import CrossValidationMixin
from astapp.service.datasets import DatasetsMixin
from astapp.service.evaluation import EvaluationMixin
from astapp.service.predicting import PredictingMixin, PredictorCache
from astapp.service.publishing import PublishingMixin
from astapp.service.recording import RecordingMixin
from astapp.service.state import SessionState, StateStore
from astapp.service.thresholds import ThresholdsMixin
from astapp.service.training import TrainingMixin

log = logging.getLogger(__name__)

OFFLINE_DEFAULT = "scratch:tiny"  # trains the example to ~0.85 accuracy in under a minute on 2 CPU cores
SECRET_FILE = ".browser_secret"


def default_model(hub_online: bool) -> str:
    """`ASTAPP_MODEL` when set; the pretrained AST when the Hub answers; else a from-scratch model."""
    env = os.environ.get("ASTAPP_MODEL", "").strip()
    if env:
        return env
    return DEFAULT_MODEL if hub_online else OFFLINE_DEFAULT


def model_choices(default: str, hub_online: bool) -> list[str]:
    choices = [default]
    if hub_online and DEFAULT_MODEL not in choices:
        choices.append(DEFAULT_MODEL)
    return choices + [f"scratch:{s}" for s in SCRATCH_SIZES if f"scratch:{s}" not in choices]


def hardware() -> str:
    """'cuda' when an NVIDIA GPU is usable, else 'cpu' (asks torch only if it is already loaded)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return "cuda" if torch.cuda.is_available() else "cpu"
        except Exception:  # noqa: BLE001
            return "cpu"
    return "cuda" if Path("/dev/nvidia0").exists() else "cpu"


def hf_login_enabled() -> bool:
    """"Sign in with Hugging Face" is offered on a Space with OAuth (`hf_oauth: true` makes the Hub set
    OAUTH_CLIENT_ID), or when `ASTAPP_HF_LOGIN=1` asks for it; elsewhere nothing changes."""
    return env_flag("ASTAPP_HF_LOGIN") or bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID"))


class Service(DatasetsMixin, AugmentingMixin, TrainingMixin, EvaluationMixin, PredictingMixin, PublishingMixin,
              CrossValidationMixin, RecordingMixin, ThresholdsMixin):
    """Datasets, previews, training jobs, runs, evaluation, prediction, publishing and session state."""

    def __init__(self, manager: Any = None, hub_online: bool | None = None, hub_api: Any = None):
        from astapp.core.hub import hub_reachable
        from astapp.jobs.manager import get_manager

        self.manager = manager or get_manager()
        self.root = Path(self.manager.root)
        self.hub_online = hub_reachable(timeout=2.0) if hub_online is None else hub_online
        self.default_model = default_model(self.hub_online)
        self.model_choices = model_choices(self.default_model, self.hub_online)
        self.hardware = hardware()
        self.store = StateStore()
        self.predictors = PredictorCache()
        self.hub_api = hub_api  # huggingface_hub.HfApi for publishing (None: its default; tests inject one)
        self.hf_login = hf_login_enabled()

    def open(self, token: str) -> Session:
        """The session of an owner token: validated, its workspace created and marked as in use."""
        return Session.open(token, self.root)

    def state(self, session: Session) -> SessionState:
        """The session's saved choices (runs picked in Evaluate and Predict, preview clip, top-k, ...)."""
        return self.store.load(session)

    def remember(self, session: Session, **changes: Any) -> None:
        """Save some of the session's choices (names of `SessionState` fields)."""
        self.store.update(session, **changes)

    def browser_secret(self) -> str:
        """A stable per-installation secret for the browser's owner token (so it survives restarts)."""
        path = self.root / SECRET_FILE
        try:
            value = path.read_text(encoding="utf-8").strip()
            if len(value) >= 16:
                return value
        except OSError:
            pass
        value = secrets.token_hex(16)
        try:
            atomic_write_text(path, value)
        except OSError:
            log.warning("Could not save the browser secret in %s; sessions reset on restart.", self.root)
        return value
