"""The teacher: a finished run with its exported model, its settings and its validation score, checked.

Distillation copies what the teacher knows, so an unfinished run is refused (its model is not the one the user
evaluated) and a weak one is allowed with a warning: the student can only be as good as what it copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astapp.core import runfolder
from astapp.core.config import TrainConfig
from astapp.core.errors import TrainingError

WEAK_ACCURACY = 0.6  # below this validation score (accuracy, or mAP when multi-label) the teacher is weak


@dataclass
class Teacher:
    """A finished run that can teach: its folder, exported model, training settings and metrics."""

    run: Path
    config: TrainConfig
    metrics: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.run / runfolder.MODEL

    @property
    def multi_label(self) -> bool:
        return self.metrics.get("problem_type") == "multi_label_classification"

    @property
    def score(self) -> float | None:
        """The validation score that says how well it can teach: mAP when multi-label, else accuracy."""
        return runfolder.number(self.metrics.get("map" if self.multi_label else "accuracy"))

    def warning(self) -> str | None:
        """A sentence when the teacher is weak (distillation is allowed, the student copies its mistakes)."""
        score = self.score
        if score is None or score >= WEAK_ACCURACY:
            return None
        what = "mAP" if self.multi_label else "accuracy"
        return (f"The teacher's validation {what} is only {score:.0%}: the student copies its mistakes too. "
                "Train a better teacher first (more clips or epochs) for a useful student.")


def open_teacher(run: str | Path) -> Teacher:
    """The finished run at `run`, or TrainingError saying what is missing and what to give instead."""
    folder = Path(str(run or "")).expanduser()
    if not str(run or "").strip() or not folder.is_dir():
        raise TrainingError(f"The teacher run {str(run)!r} is not a folder: give a finished run folder (what "
                            "`astapp train --output` wrote, or a run of the app).")
    state = runfolder.read_json(folder / runfolder.STATUS).get("state")
    if state is not None and state != "finished":
        raise TrainingError(f"The run {folder.name} is {state}, not finished: only a finished run can teach. "
                            "Let it finish (or continue it) and distil it then.")
    if not runfolder.has_model(folder):
        raise TrainingError(f"{folder} has no trained model (no model/ folder): train it to the end first.")
    metrics = runfolder.read_json(folder / runfolder.METRICS)
    if not metrics or (folder / runfolder.CONFIG).is_file() is False:
        raise TrainingError(f"{folder} lacks its metrics.json or config.json, which say which clips it was "
                            "trained on: distil a complete run folder.")
    if metrics.get("stopped"):
        raise TrainingError(f"The run {folder.name} was stopped before its last epoch: continue it to the end "
                            "first, so the student learns from the finished model.")
    cfg = TrainConfig.load(folder / runfolder.CONFIG)
    if cfg.task == "cv":
        raise TrainingError(f"{folder.name} is a cross-validation run: distil a training run instead.")
    return Teacher(folder.resolve(), cfg, metrics)
