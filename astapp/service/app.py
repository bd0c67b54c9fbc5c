"""`Service`: the one object the web app talks to (one per process, over the job queue).

Sessions are opened from a token (`open`); every method of it and of its parts then takes the
`Session`, so a run, a file or a state of another session is never reachable. The parts are plain
objects built here, each handed the collaborators it uses (the job queue, the state store, the
datasets part ...), so who calls whom reads off the constructor. Caches (the example's report,
loaded predictors) live in the parts, not in module globals of the UI.
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
from astapp.core.runfolder import CV, METRICS
from astapp.jobs.registry import RunInfo
from astapp.jobs.sessions import Session
from astapp.service.augmenting import Augmenting
from astapp.service.crossval import CrossValidating
from astapp.service.datasets import Datasets
from astapp.service.detecting import Detecting
from astapp.service.distilling import Distilling
from astapp.service.evaluation import Evaluating
from astapp.service.pooling import Pooling
from astapp.service.predicting import Predicting, PredictorCache
from astapp.service.publishing import Publishing
from astapp.service.recording import Recording
from astapp.service.reviewing import Reviewing
from astapp.service.runs import Runs
from astapp.service.state import SessionState, StateStore, followed_run
from astapp.service.thresholds import Thresholds
from astapp.service.training import Training
from astapp.service.tuning import Tuning
from astapp.service.unknown import UnknownScores
from astapp.service.versioning import Versioning

log = logging.getLogger(__name__)

OFFLINE_DEFAULT = "scratch:tiny"  # trains the example to ~0.85 accuracy in under a minute on 2 CPU cores
SECRET_FILE = ".browser_secret"
PICKERS = {"evaluate": {"need_metrics": True}, "predict": {"need_model": True}}  # the run pickers' lists


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


class Service:
    """The sessions, their state and runs, and one part per job of the app, each given what it needs:

    `datasets` (the chosen dataset and its clips), `augmenting`, `training` (the Train form and its jobs),
    `evaluation`, `thresholds` (multi-label runs), `unknown` (the "none of these" score), `crossval`,
    `predicting` (and the model download), `detecting` (events in long recordings), `publishing` (to the Hub),
    `recording` (clips recorded in the browser), `versioning` (dataset versions and the clips waiting for the
    next one), `reviewing` (detected events reviewed by ear, back into training), `pooling` (unlabeled audio,
    search, label next), `distilling` (a small fast student), `runs_table` (runs side by side) and `tuning`
    (the settings search)."""

    def __init__(self, manager: Any = None, hub_online: bool | None = None, hub_api: Any = None):
        from astapp.core.hub import hub_reachable
        from astapp.jobs.manager import get_manager

        self.manager = manager or get_manager()
        self.root = Path(self.manager.root)
        self.hub_online = hub_reachable(timeout=2.0) if hub_online is None else hub_online
        self.default_model = default_model(self.hub_online)
        self.model_choices = model_choices(self.default_model, self.hub_online)
        self.hardware = hardware()
        self.hf_login = hf_login_enabled()
        self.store = StateStore()
        self.datasets = Datasets(self.root, self.store)
        self.augmenting = Augmenting(self.store, self.datasets)
        self.training = Training(self.manager, self.store, self.datasets, self.augmenting, self.default_model,
                                 self.hub_online)
        self.evaluation = Evaluating(self.manager)
        self.thresholds = Thresholds(self.manager)
        self.unknown = UnknownScores(self.manager)
        self.crossval = CrossValidating(self.manager, self.store, self.datasets, self.training)
        self.predicting = Predicting(self.root, PredictorCache())
        self.detecting = Detecting(self.predicting)
        self.publishing = Publishing(self.root, self.manager, hub_api)
        self.recording = Recording(self.datasets)
        self.versioning = Versioning(self.datasets)
        self.reviewing = Reviewing(self.manager, self.versioning, self.detecting)
        self.pooling = Pooling(self.datasets, self.default_model)
        self.distilling = Distilling(self.manager)
        self.runs_table = Runs(self.manager, self.store)
        self.tuning = Tuning(self.manager, self.training)

    def open(self, token: str) -> Session:
        """The session of an owner token: validated, its workspace created and marked as in use."""
        return Session.open(token, self.root)

    def state(self, session: Session) -> SessionState:
        """The session's saved choices (runs picked in Evaluate and Predict, preview clip, top-k, ...)."""
        return self.store.load(session)

    def remember(self, session: Session, **changes: Any) -> None:
        """Save some of the session's choices (names of `SessionState` fields)."""
        self.store.update(session, **changes)

    def runs(self, session: Session, need_model: bool = False, need_metrics: bool = False) -> list[RunInfo]:
        """The session's visible runs, newest first (only those with a model, or with metrics, if asked)."""
        return [r for r in self.manager.list_runs(session.owner)
                if (not need_model or r.has_model) and (not need_metrics or (r.path / METRICS).is_file()
                                                        or (r.path / CV).is_file())]

    def picker(self, session: Session, tab: str) -> tuple[list[RunInfo], str | None]:
        """The runs `tab` ("evaluate": with metrics, "predict": with a model) lists, newest first, and the
        one it shows: the user's pick until a newer run finishes, else the newest."""
        runs = self.runs(session, **PICKERS[tab])
        state = self.store.load(session)
        ids = [r.id for r in runs]
        shown = followed_run(getattr(state, f"{tab}_run"), state.picked_over.get(tab), ids)
        if tab == "predict" and state.default_run in ids and shown != state.predict_run:
            shown = state.default_run  # a default model outlasts newer runs; a later pick in Predict still wins
        return runs, shown

    def pick_run(self, session: Session, tab: str, run_id: str | None) -> None:
        """Remember the run the user picked in `tab` as they pick it, and the newest run then: a run
        newer than that (one that finishes later) ends the pick."""
        runs = self.runs(session, **PICKERS[tab])
        with self.store.edit(session) as state:
            setattr(state, f"{tab}_run", run_id)
            state.picked_over[tab] = runs[0].id if runs else None

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
