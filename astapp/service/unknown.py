"""The unknown score ("none of these") of a run in the app: its histogram, the threshold the user picks, and
recalibration with the user's own "other" sounds.

The threshold lives in the run's exported model (`unknown.json`, `astapp.evaluation.unknown`), so Predict,
Listen live, `astapp predict`, the download and the model card all use what is saved here; the predictor
cache notices the change (`service.predicting.PredictorCache`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.errors import AccessError, UploadError
from astapp.core.runfolder import MODEL
from astapp.jobs.manager import JobManager
from astapp.jobs.registry import RunInfo
from astapp.jobs.sessions import Session

OLD_MODEL = ("This model was exported before unknown scores, so it always answers one of its classes; calibrate "
             "it below (or `python3 -m astapp calibrate --run RUN`) to give it one.")


@dataclass
class UnknownView:
    """What the Evaluate tab shows of a run's unknown score."""

    available: bool  # the model has an unknown score
    note: str = ""  # why it has none, or no threshold
    method: str = ""
    threshold: float | None = None
    keep: float | None = None
    known: list[float] = field(default_factory=list)  # the validation clips' scores
    other: list[float] = field(default_factory=list)  # the user's "other" sounds' scores
    auroc: float | None = None
    low: float = 0.0  # the slider's range: the scores with a margin
    high: float = 1.0


def view_of(stats: Any) -> UnknownView:
    """An `UnknownView` of `astapp.evaluation.unknown.UnknownStats` (None: a model from before them)."""
    if stats is None:
        return UnknownView(False, OLD_MODEL)
    cal = stats.calibration or {}
    known = [float(x) for x in cal.get("known") or []]
    other = [float(x) for x in cal.get("other") or []]
    values = known + other + ([stats.threshold] if stats.threshold is not None else [])
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((hi - lo) * 0.1, 1e-3)
    return UnknownView(True, stats.reason, stats.method, stats.threshold, stats.keep, known, other,
                       cal.get("auroc"), round(lo - pad, 4), round(hi + pad, 4))


def shares_line(view: UnknownView, threshold: float | None) -> str:
    """What a threshold does, in words: the share of known clips kept and of other sounds rejected."""
    if not view.available:
        return view.note
    if threshold is None:
        return view.note or "No threshold yet."
    kept = sum(x <= threshold for x in view.known)
    line = f"At {threshold:.4g}: **{kept} of {len(view.known)} known (validation) clips kept**"
    line += f" ({kept / len(view.known):.1%})" if view.known else ""
    if view.other:
        rejected = sum(x > threshold for x in view.other)
        line += f"; {rejected} of {len(view.other)} other sounds rejected ({rejected / len(view.other):.1%})"
    auroc = f" AUROC known vs other: {view.auroc:.3f}." if view.auroc is not None else ""
    if view.auroc is not None and view.auroc < 0.5:
        auroc += (" These other sounds score lower than the known clips, so no threshold flags them: add them as a "
                  "class of their own (e.g. 'other') and train again.")
    return line + "." + auroc + " Clips above the threshold are called \"unknown\"; the top classes stay listed."


class UnknownScores:
    """A run's unknown score: view, threshold edits, recalibration."""

    def __init__(self, manager: JobManager):
        self.manager = manager

    def _run(self, session: Session, run_id: str | None, write: bool = False) -> RunInfo:
        if not run_id:
            raise AccessError("Pick a finished run first.")
        info = self.manager.get_run(session.owner, run_id)
        if write and info.readonly:
            raise AccessError(f"Run {run_id} belongs to another session; only its owner may change its threshold.")
        if not (info.path / MODEL / "config.json").is_file():
            raise AccessError(f"Run {run_id} has no trained model yet; wait until it has saved one.")
        return info

    def view(self, session: Session, run_id: str | None) -> UnknownView:
        """The run's unknown score as saved in its model."""
        from astapp.evaluation import unknown

        return view_of(unknown.load(self._run(session, run_id).path / MODEL))

    def save(self, session: Session, run_id: str | None, threshold: Any) -> UnknownView:
        """Save a threshold the user picked into the run's model (Predict and the export use it from now)."""
        from astapp.evaluation import unknown

        try:
            t = float(threshold)
        except (TypeError, ValueError):
            t = math.nan
        if not math.isfinite(t):
            raise UploadError(f"The unknown threshold must be a number, not {threshold!r}.")
        info = self._run(session, run_id, write=True)
        return view_of(unknown.save_threshold(info.path / MODEL, t))

    def calibrate(self, session: Session, run_id: str | None, files: list[str | Path] | None,
                  keep: float | None = None) -> UnknownView:
        """Refit (a model from before unknown scores) and recalibrate on the validation clips and, when given, the
        uploaded "other" sounds (files or zips), as `python3 -m astapp calibrate` does."""
        from astapp.evaluation import unknown
        from astapp.predict.calibrate import recalibrate

        info = self._run(session, run_id, write=True)
        result = recalibrate(info.path, [Path(str(f)) for f in files or []], keep)
        view = view_of(unknown.load(info.path / MODEL))
        view.note = " ".join(x for x in (view.note, result.get("note", "")) if x)
        return view
