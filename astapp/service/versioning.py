"""Dataset versions for the app: the clips waiting for the next version (from the review and from Listen
live), making a version of the chosen dataset with them, listing versions and going back to one.

One lock per owner covers the pending clips, the version index and the review files, so a review
decision, a Listen live "that was wrong" and "Add to dataset" never lose each other's writes.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import DatasetError
from astapp.data.additions import BACKGROUND, Addition, PendingAdditions
from astapp.data.versions import Version, VersionStore, find_store
from astapp.jobs.sessions import Session
from astapp.service.datasets import Datasets, DatasetView, play_audio

LISTEN_SOURCE = "listen live"


@dataclass
class VersionsView:
    """What the Data tab lists: every version (newest first), the one in use, the clips waiting."""

    versions: list[Version]
    current: str | None
    pending: list[Addition]

    def pending_line(self, background: str = BACKGROUND) -> str:
        if not self.pending:
            return "No clips are waiting for the next version."
        by: dict[str, int] = {}
        for a in self.pending:
            by[a.target(background)] = by.get(a.target(background), 0) + 1
        return (f"{len(self.pending)} clip(s) wait for the next version: "
                + ", ".join(f"{label} {n}" for label, n in sorted(by.items())))


def dataset_versions(folder: str) -> dict[str, Any]:
    """What `python -m astapp versions --data DIR` shows: every version of the store DIR belongs to (oldest
    first) with what changed, and which of them DIR is. The CLI's view of the Data tab's version list."""
    store, this = find_store(folder)
    rows = [{**asdict(v), "summary": v.summary, "exists": Path(v.root).is_dir()} for v in store.list()]
    return {"store": str(store.folder), "this": this, "versions": rows}


class Versioning:
    """The session's dataset versions and the clips waiting for the next one."""

    def __init__(self, datasets: Datasets):
        self.datasets = datasets  # a new version becomes the session's chosen dataset
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    def lock(self, session: Session) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(session.owner, threading.RLock())

    def pending(self, session: Session) -> PendingAdditions:
        return PendingAdditions(session.workspace)

    def view(self, session: Session) -> VersionsView:
        store = VersionStore(session.workspace)
        current = store.of_root(self.datasets.current(session).root)
        return VersionsView(store.list()[::-1], current.name if current else None,
                            self.pending(session).list())

    def keep_window(self, session: Session, wav: np.ndarray, at: float | None = None,
                    source: str = LISTEN_SOURCE) -> Addition:
        """Listen live's "that was wrong": the last window heard becomes a false alarm of the next version."""
        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        nz = np.flatnonzero(np.abs(wav) > 0)
        if nz.size == 0:
            raise DatasetError("Nothing has been heard yet: press record, wait for a wrong answer, then press "
                               "\"that was wrong\".")
        wav = wav[int(nz[0]):]  # the ring buffer starts with zeros until one window has been heard
        end = float(at) if at is not None else len(wav) / 16000
        with self.lock(session):
            return self.pending(session).add(wav, "false_alarm", "", source, max(0.0, end - len(wav) / 16000), end,
                                             origin="listen")

    def discard(self, session: Session, ids: list[str]) -> None:
        with self.lock(session):
            self.pending(session).remove(set(ids))

    def play(self, session: Session, addition_id: str) -> tuple[int, Any] | None:
        pending = self.pending(session)
        return play_audio(pending.path(pending.get(addition_id)))

    def make(self, session: Session, background: str = BACKGROUND) -> tuple[Version, DatasetView]:
        """The next version: the chosen dataset (registered as a version the first time) + every waiting
        clip; it becomes the session's dataset, the waiting list empties. The old version is untouched."""
        with self.lock(session):
            view = self.datasets.current(session)
            store = VersionStore(session.workspace)
            pending = self.pending(session)
            additions = pending.list()
            if not additions:
                raise DatasetError("No clips wait for a new version: confirm, reject or mark sounds in Detect, "
                                   "or press \"that was wrong\" in Listen live, first.")
            listing = self.datasets.listing(view)
            parent = store.of_root(view.root) or store.register(view.name, view.root, len(listing.items))
            version = store.create(parent, listing, additions, pending, background)
            pending.remove({a.id for a in additions})
            return version, self.use(session, version.name)

    def use(self, session: Session, name: str) -> DatasetView:
        """Make version `name` the session's dataset again (every version stays usable)."""
        version = VersionStore(session.workspace).get(str(name or "").strip())
        view = self.datasets.inspect(f"{version.title} · {version.name}", "version", Path(version.root), session.workspace)
        view.source, view.version = version.root, version.summary
        return self.datasets.choose(session, view)
