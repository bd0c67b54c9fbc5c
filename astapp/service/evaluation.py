"""Evaluation for the app: a finished run's metrics.json as tables, a matrix and the clips it got wrong."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AccessError, UploadError
from astapp.core.paths import inside
from astapp.core.runfolder import CONFIG, CV, METRICS, read_json
from astapp.jobs.manager import JobManager
from astapp.jobs.registry import RunInfo
from astapp.jobs.sessions import Session
from astapp.service.datasets import play_audio
from astapp.service.thresholds import current_thresholds, is_multi_label, label_table, relabel


@dataclass
class Evaluation:
    """What the Evaluate tab shows of one run."""

    run: RunInfo
    accuracy: float | None
    f1_macro: float | None
    labels: list[str]
    confusion: list[list[int]]
    per_class: list[dict[str, Any]]  # {class, precision, recall, f1, support}
    predictions: list[dict[str, Any]]  # {path, true, pred, prob} per validation clip
    mistakes: list[dict[str, Any]] = field(default_factory=list)  # wrong predictions, most confident first
    players: list[tuple[str, tuple[int, np.ndarray]]] = field(default_factory=list)  # (label, audio)
    cross_validation: bool = False  # a CV run without a final model: scores are the mean over folds
    multi_label: bool = False  # then: mAP, per-label AP and the thresholds the exported model uses
    map: float | None = None
    map_micro: float | None = None
    f1_micro: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    label_rows: list[dict[str, Any]] = field(default_factory=list)  # {label, ap, threshold, precision, ...}
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # label -> precision/recall curve


class Evaluating:
    """What the Evaluate tab shows of a finished run."""

    def __init__(self, manager: JobManager):
        self.manager = manager

    def load(self, session: Session, run_id: str, players: int = 6) -> Evaluation:
        """The run's metrics.json as an `Evaluation` (with up to `players` of its mistakes to play)."""
        info = self.manager.get_run(session.owner, run_id)
        metrics = read_json(info.path / METRICS)
        cv = read_json(info.path / CV) if not metrics else {}
        if cv.get("folds"):  # a cross-validation without a final model: its scores are the folds' mean
            mean = cv.get("mean") or {}
            return Evaluation(info, mean.get("accuracy"), mean.get("f1_macro"), list(cv.get("labels") or []), [],
                              [], [], cross_validation=True)
        if not metrics:
            raise AccessError(f"Run {run_id} has no metrics yet ({info.state}); wait until it has evaluated once.")
        labels = [str(x) for x in metrics.get("labels") or []]
        per_class = [{"class": name, **{k: round(float(v[k]), 3) for k in ("precision", "recall", "f1")},
                      "support": int(v["support"])}
                     for name, v in (metrics.get("per_class") or {}).items()]
        preds = [p for p in metrics.get("predictions") or [] if isinstance(p, dict)]
        multi = is_multi_label(metrics)
        if multi:  # scores cut at the thresholds the exported model uses now (they may have been edited)
            thresholds = current_thresholds(metrics, info.path)
            label_rows, f1_micro = label_table(metrics, thresholds)
            preds = relabel(preds, thresholds)
            per_class = [{"class": r["label"], **{k: r[k] for k in ("precision", "recall", "f1", "support")}}
                         for r in label_rows]
        wrong = sorted((p for p in preds if p.get("true") != p.get("pred")), key=lambda p: -float(p.get("prob") or 0))
        result = Evaluation(info, metrics.get("accuracy"), metrics.get("f1_macro"), labels,
                            metrics.get("confusion_matrix") or [], per_class, preds, wrong)
        if multi:
            result.multi_label, result.map, result.map_micro = True, metrics.get("map"), metrics.get("map_micro")
            result.f1_micro, result.thresholds, result.label_rows = f1_micro, thresholds, label_rows
            result.curves = {k: v.get("curve") or {} for k, v in (metrics.get("per_class") or {}).items()}
        data_root = str(read_json(info.path / CONFIG).get("data", ""))
        for p in wrong:
            if len(result.players) == players:
                break
            path = clip_path(data_root, str(p.get("path", "")))
            audio = play_audio(path) if path else None
            if audio is not None:
                result.players.append((f"{Path(str(p['path'])).name}: {p.get('true')} → heard as {p.get('pred')}",
                                       audio))
        return result


def clip_path(data_root: str, rel: str) -> Path | None:
    """A validation clip on disk, only if it is inside the run's dataset folder."""
    from astapp.data.ingest import scan

    if not data_root or not rel or not Path(data_root).is_dir():
        return None
    bases = [Path(data_root)]
    with contextlib.suppress(UploadError):
        bases.append(scan(Path(data_root)).root)
    for base in bases:
        try:
            p = inside(base, rel)
        except AccessError:
            continue
        if p.is_file():
            return p
    return None
