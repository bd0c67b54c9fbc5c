"""The Runs table of the app: every run of the session side by side, what changed between chosen runs, their
curves overlaid; rename, delete (confirmed) and the default model Predict shows.

Runs come from `jobs.registry` for the session's owner only, so one user never sees (or renames, or deletes)
another's. A run deleted while it is being compared is left out of the comparison and named in `missing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.errors import AccessError, UploadError
from astapp.jobs.compare import (
    CURVE_METRICS,
    SORT_KEYS,
    RunRow,
    comparable,
    curve,
    differing_settings,
    row_of,
    rows_in,
    sort_rows,
    split_groups,
)
from astapp.jobs.manager import JobManager
from astapp.jobs.record import RunRecord
from astapp.jobs.registry import run_dir
from astapp.jobs.sessions import Session
from astapp.service.state import StateStore

MAX_NAME = 80


@dataclass
class Comparison:
    """Chosen runs side by side: only the settings that differ, whether one split validated them all."""

    rows: list[RunRow]
    differing: dict[str, dict[str, Any]]  # setting -> {run id: value}
    comparable: bool
    missing: list[str] = field(default_factory=list)  # chosen ids that are gone (deleted meanwhile)

    def note(self) -> str:
        """One sentence for the user about what the comparison means."""
        parts = []
        if self.missing:
            parts.append(f"Gone since you picked them (deleted): {', '.join(self.missing)}.")
        if len(self.rows) < 2:
            parts.append("Pick two or more runs to compare them.")
        elif not self.comparable:
            parts.append("Not comparable: these runs validated on different clips (another dataset version or "
                         "split settings), so their scores do not rank them; compare runs with the same split number.")
        elif not self.differing:
            parts.append("These runs used the same settings.")
        return " ".join(parts)


class Runs:
    """The session's runs as a table; rename, delete, the default model for Predict."""

    def __init__(self, manager: JobManager, store: StateStore):
        self.manager = manager
        self.root = Path(manager.root)
        self.store = store

    def table(self, session: Session, sort: str = "created", descending: bool | None = None) -> list[RunRow]:
        """Every run the session's owner has, sorted by `sort` (runs without that score last)."""
        rows = [row_of(info.path, info.name, info.state) for info in self.manager.list_runs(session.owner)
                if not info.readonly]
        return sort_rows(rows, sort, descending)

    def view(self, session: Session) -> dict[str, Any]:
        """The table's sort column and the runs chosen to compare, as the user left them (a reload keeps them)."""
        saved = self.store.load(session).runs_view
        return {"sort": saved.get("sort") if saved.get("sort") in SORT_KEYS else "created",
                "compare": [str(x) for x in saved.get("compare") or [] if isinstance(x, str)]}

    def remember(self, session: Session, sort: str | None = None, chosen: list[str] | None = None) -> None:
        with self.store.edit(session) as state:
            if sort is not None:
                state.runs_view["sort"] = sort if sort in SORT_KEYS else "created"
            if chosen is not None:
                state.runs_view["compare"] = [str(x) for x in chosen]

    def default_run(self, session: Session) -> str | None:
        return self.store.load(session).default_run

    def compare(self, session: Session, run_ids: list[str]) -> Comparison:
        """The chosen runs (own runs only) with the settings that differ between them."""
        rows, missing = [], []
        for rid in dict.fromkeys(str(r) for r in run_ids if r):
            try:
                d = run_dir(self.root, session.owner, rid, write=True)
            except AccessError:
                missing.append(rid)
                continue
            rows.append(row_of(d))
        return compare_runs(rows, missing)

    def curves(self, session: Session, run_ids: list[str], metric: str = "f1_macro") -> dict[str, tuple[list[float], list[float]]]:
        """{run name: (epochs, values)} of one validation metric for each chosen run that still exists."""
        if metric not in CURVE_METRICS:
            raise UploadError(f"The curve metric must be one of {', '.join(CURVE_METRICS)}, not {metric!r}.")
        out = {}
        for row in self.compare(session, run_ids).rows:
            out[f"{row.name} ({row.id[-6:]})"] = curve(run_dir(self.root, session.owner, row.id, write=True), metric)
        return out

    def rename(self, session: Session, run_id: str, name: str) -> None:
        """A new display name for one of the owner's runs."""
        name = " ".join(str(name or "").split())
        if not name or len(name) > MAX_NAME:
            raise UploadError(f"A run's name must have 1 to {MAX_NAME} characters; type a short name.")
        RunRecord(run_dir(self.root, session.owner, run_id, write=True), enabled=True).rename(name)

    def delete(self, session: Session, run_id: str, confirmed: bool) -> None:
        """Delete one of the owner's runs, only when the user confirmed it; it stops being the default."""
        if not confirmed:
            raise UploadError(f"Deleting run {run_id} cannot be undone: tick 'yes, delete it' and press delete again.")
        self.manager.delete_run(session.owner, run_id)
        with self.store.edit(session) as state:
            if state.default_run == run_id:
                state.default_run = None
            if state.predict_run == run_id:
                state.predict_run = None
            if state.evaluate_run == run_id:
                state.evaluate_run = None

    def set_default(self, session: Session, run_id: str | None) -> None:
        """Make a run with a finished model the one Predict shows (None: Predict follows the newest again)."""
        if run_id:
            info = self.manager.get_run(session.owner, run_id)
            if not info.has_model or info.readonly:
                raise AccessError(f"Run {run_id} has no finished model of yours; pick a finished run as the default.")
        with self.store.edit(session) as state:
            state.default_run = run_id or None
            state.predict_run = run_id or None
            state.picked_over.pop("predict", None)


def compare_runs(rows: list[RunRow], missing: list[str] | None = None) -> Comparison:
    """`Comparison` of rows already read (the app's chosen runs, or the CLI's)."""
    return Comparison(rows, differing_settings({r.id: r.config for r in rows}), comparable(rows), list(missing or []))


def runs_in_folder(folder: str | Path, sort: str = "created") -> list[RunRow]:
    """The CLI's table: every run folder directly inside `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UploadError(f"{folder} is not a folder of runs; give the folder your train --output folders are in.")
    return sort_rows(rows_in(folder), sort)


def split_numbers(rows: list[RunRow]) -> dict[str, int]:
    """Run id -> its validation split's number: equal numbers validated on the same clips."""
    return split_groups(rows)
