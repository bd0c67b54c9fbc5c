"""The session's state, kept on the server so a reload or a second tab shows exactly what the user had.

Per owner workspace: `state.json` (the choices: which dataset, augmentation settings, the Train form,
the runs picked in Evaluate and Predict) and `dataset.json` (the chosen dataset with its validation
report, written only when the dataset changes). This module is their only writer; every change is a
read-modify-write under the owner's lock, so two tabs never lose each other's edits.

Edits also arrive out of order: the page's events run concurrently (a preview sent before a change
can finish after it), so a write that carries a stamp (which page, and when it took its values) sets
a field only when no later write of that page has (`newest`): a newer change is never overwritten by
an older one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from astapp.core.config import AugmentConfig
from astapp.core.fsutil import atomic_write_text
from astapp.core.runfolder import read_json
from astapp.jobs.sessions import Session

STATE_FILE, DATASET_FILE = "state.json", "dataset.json"


@dataclass
class SessionState:
    """What the user chose; every field has a default so a new session (or an old file) just works."""

    augment: dict[str, Any] = field(default_factory=lambda: AugmentConfig().to_dict())  # = the CLI's default
    preview: dict[str, Any] = field(default_factory=lambda: {"clip": None, "seed": 0})
    form: dict[str, Any] = field(default_factory=dict)  # Train form values, by field name
    evaluate_run: str | None = None  # the run the user picked in Evaluate (see `followed_run`)
    predict_run: str | None = None  # ... and in Predict
    default_run: str | None = None  # the run marked as the default model (Runs table): Predict falls back to it
    picked_over: dict[str, str | None] = field(default_factory=dict)  # tab -> the newest run when they picked
    top_k: int = 3
    runs_view: dict[str, Any] = field(default_factory=lambda: {"sort": "created", "compare": []})  # the Runs table
    cv: dict[str, Any] = field(default_factory=lambda: {"folds": "auto", "final": False})  # the CV controls
    corrections: dict[str, dict[str, str]] = field(default_factory=dict)  # run id -> {clip: "drop" | label}
    review: dict[str, Any] = field(default_factory=dict)  # Detect: {recording, event, label, min_score, zoom}
    stamps: dict[str, list[Any]] = field(default_factory=dict)  # field ("augment", "form.epochs") -> [page, ms]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionState:
        names = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in d.items() if k in names})
        defaults = cls()
        for f in fields(cls):  # a hand-edited or truncated file never breaks a page
            if not isinstance(getattr(state, f.name), type(getattr(defaults, f.name))) and \
                    getattr(defaults, f.name) is not None:
                setattr(state, f.name, getattr(defaults, f.name))
        return state


Stamp = tuple[str, float]  # (the page's session, when the page took the values: its own clock, in ms)


def newest(state: SessionState, key: str, stamp: Stamp | None) -> bool:
    """Whether a write whose values are as of `stamp` may set `key` (and mark it so): not when a later
    write from the same page already did. Only one page's stamps are compared (one clock, so no skew
    between devices can drop an edit); a write from another page, or without a stamp (an API call, the
    CLI), always counts as the newest, as before."""
    if stamp is None:
        state.stamps.pop(key, None)
        return True
    page, at = str(stamp[0]), float(stamp[1])
    last = state.stamps.get(key)
    if isinstance(last, list) and len(last) == 2 and last[0] == page and float(last[1]) > at:
        return False
    state.stamps[key] = [page, at]
    return True


def followed_run(pick: str | None, over: str | None, ids: list[str]) -> str | None:
    """The run a picker shows (`ids` newest first): the user's pick while no newer run has appeared
    since they made it (`over`: the newest then), else the newest, so a run that just finished is
    what Evaluate and Predict show, after a reload too."""
    newest = ids[0] if ids else None
    return pick if pick in ids and over == newest else newest


class StateStore:
    """Reads and writes the session state files, one lock per owner."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, owner: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(owner, threading.Lock())

    def load(self, session: Session) -> SessionState:
        return SessionState.from_dict(read_json(session.workspace / STATE_FILE))

    @contextmanager
    def edit(self, session: Session) -> Iterator[SessionState]:
        """Change the state in a `with` block; it is saved (atomically) when the block ends."""
        with self._lock(session.owner):
            state = self.load(session)
            yield state
            atomic_write_text(session.workspace / STATE_FILE, json.dumps(asdict(state), ensure_ascii=False))

    def update(self, session: Session, **changes: Any) -> SessionState:
        with self.edit(session) as state:
            for key, value in changes.items():
                if not hasattr(state, key):
                    raise KeyError(key)
                setattr(state, key, value)
        return state

    def dataset(self, session: Session) -> dict[str, Any] | None:
        """The chosen dataset ({name, root, clip_root, kind, report}), or None before any choice.

        A dataset whose folder is gone (deleted by hand, or a workspace restored without its uploads)
        counts as no choice, so the page falls back to the example instead of failing."""
        data = read_json(session.workspace / DATASET_FILE)
        if not data.get("root") or not Path(data["root"]).exists():
            return None
        return data

    def set_dataset(self, session: Session, data: dict[str, Any]) -> None:
        with self._lock(session.owner):
            atomic_write_text(session.workspace / DATASET_FILE, json.dumps(data, ensure_ascii=False))
