"""Multi-label runs in the app: mAP, per-label AP and the thresholds the exported model uses.

The thresholds were tuned on validation by the engine; the user may change them here. The change is
written into the exported model's config.json (so Predict, `astapp predict` and the downloaded model
all use it) and precision/recall/F1 are recomputed from the saved validation scores, so the table
always describes the thresholds the model has now.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AccessError, UploadError
from astapp.core.runfolder import METRICS, MODEL, read_json
from astapp.jobs.manager import JobManager
from astapp.jobs.sessions import Session

MULTI_LABEL = "multi_label_classification"
COLUMNS = ["label", "ap", "threshold", "precision", "recall", "f1", "support"]


def is_multi_label(metrics: dict[str, Any]) -> bool:
    return metrics.get("problem_type") == MULTI_LABEL


def current_thresholds(metrics: dict[str, Any], run: Path) -> dict[str, float]:
    """The thresholds the exported model uses now (its config.json), else those the run tuned."""
    saved = read_json(run / MODEL / "config.json").get("thresholds") or {}
    tuned = metrics.get("thresholds") or {}
    return {str(k): float(saved.get(k, v)) for k, v in tuned.items()}


def label_table(metrics: dict[str, Any], thresholds: dict[str, float]) -> tuple[list[dict[str, Any]], float]:
    """Per label {label, ap, threshold, precision, recall, f1, support} at `thresholds`, and micro F1."""
    labels = [str(x) for x in metrics.get("labels") or []]
    preds = [p for p in metrics.get("predictions") or [] if isinstance(p, dict) and isinstance(p.get("probs"), dict)]
    scores = np.array([[float(p["probs"].get(lab, 0.0)) for lab in labels] for p in preds]).reshape(-1, len(labels))
    truth = np.array([[lab in (p.get("true") or []) for lab in labels] for p in preds]).reshape(-1, len(labels))
    cut = np.array([thresholds.get(lab, 0.5) for lab in labels])
    guess = scores >= cut
    tp, fp, fn = (truth & guess).sum(0), (~truth & guess).sum(0), (truth & ~guess).sum(0)
    rows = []
    for i, lab in enumerate(labels):
        prec = tp[i] / (tp[i] + fp[i]) if tp[i] + fp[i] else 0.0
        rec = tp[i] / (tp[i] + fn[i]) if tp[i] + fn[i] else 0.0
        ap = (metrics.get("per_class") or {}).get(lab, {}).get("ap")
        rows.append({"label": lab, "ap": None if ap is None else round(float(ap), 3),
                     "threshold": round(float(cut[i]), 3), "precision": round(float(prec), 3),
                     "recall": round(float(rec), 3), "f1": round(float(2 * prec * rec / (prec + rec)) if prec + rec
                                                              else 0.0, 3), "support": int(truth[:, i].sum())})
    t, f, n = tp.sum(), fp.sum(), fn.sum()
    micro = float(2 * t / (2 * t + f + n)) if t + f + n else 0.0
    return rows, micro


class Thresholds:
    """Editing a multi-label run's per-label thresholds."""

    def __init__(self, manager: JobManager):
        self.manager = manager

    def save(self, session: Session, run_id: str, thresholds: dict[str, Any]) -> dict[str, float]:
        """Save edited per-label thresholds (each in (0, 1)) into the run's exported model; returns them."""
        from astapp.model.folder import save_thresholds

        info = self.manager.get_run(session.owner, run_id)
        metrics = read_json(info.path / METRICS)
        if not is_multi_label(metrics):
            raise AccessError(f"Run {run_id} is not multi-label; only multi-label runs have per-label thresholds.")
        known = [str(x) for x in metrics.get("labels") or []]
        clean: dict[str, float] = {}
        for label, value in thresholds.items():
            try:
                t = float(value)
            except (TypeError, ValueError):
                t = math.nan
            if str(label) not in known:
                raise UploadError(f"{label!r} is not a label of this run; its labels are {', '.join(known)}.")
            if not 0.0 < t < 1.0:
                raise UploadError(f"The threshold for {label!r} must be a number between 0 and 1 (not {value!r}).")
            clean[str(label)] = round(t, 4)
        current = current_thresholds(metrics, info.path)
        current.update(clean)
        if not (info.path / MODEL / "config.json").is_file():
            raise AccessError(f"Run {run_id} has no exported model to save thresholds into.")
        save_thresholds(info.path / MODEL, current)
        return current


def relabel(preds: list[dict[str, Any]], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Validation predictions with `pred` recomputed at `thresholds` (and `prob` the top score)."""
    out = []
    for p in preds:
        probs = p.get("probs") if isinstance(p.get("probs"), dict) else {}
        pred = [lab for lab, s in probs.items() if float(s) >= thresholds.get(lab, 0.5)]
        out.append({**p, "pred": sorted(pred), "true": sorted(p.get("true") or []),
                    "prob": max((float(s) for s in probs.values()), default=0.0)})
    return out
