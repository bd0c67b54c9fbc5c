"""Multi-label training and evaluation: a sigmoid per label, BCE, mAP, and per-label thresholds.

A clip may carry any number of labels, so accuracy says little: the run is judged by mean average
precision (macro over labels, and micro over all clip-label pairs), which does not depend on a
threshold, and best-epoch selection uses macro mAP. The thresholds that turn scores into labels are
then tuned per label on validation (the one that maximises that label's F1) and exported with the
model, so prediction returns every label above its own threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, precision_recall_curve, precision_recall_fscore_support

from astapp.core.scores import sigmoid

PROBLEM_TYPE = "multi_label_classification"
DEFAULT_THRESHOLD = 0.5
CURVE_POINTS = 50  # points kept per precision/recall curve in metrics.json


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per label (targets may be soft after mixup), mean over labels and clips."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.to(logits.device, torch.float32))


def per_class_ap(y_true: np.ndarray, probs: np.ndarray) -> list[float | None]:
    """Average precision of each label; None where validation has no positive (AP is undefined)."""
    return [float(average_precision_score(y_true[:, c], probs[:, c])) if y_true[:, c].any() else None
            for c in range(y_true.shape[1])]


def mean_ap(y_true: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(macro mAP over labels with positives, micro AP over every clip-label pair)."""
    y_true = (np.asarray(y_true) > 0.5).astype(int)
    aps = [a for a in per_class_ap(y_true, probs) if a is not None]
    macro = float(np.mean(aps)) if aps else 0.0
    micro = float(average_precision_score(y_true.ravel(), np.asarray(probs).ravel())) if y_true.any() else 0.0
    return macro, micro


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray) -> list[float]:
    """Per label, the score threshold with the highest F1 on these clips (midway between neighbouring
    scores, so it generalises a little better than a score itself); 0.5 for a label without positives."""
    y_true = (np.asarray(y_true) > 0.5).astype(int)
    out = []
    for c in range(y_true.shape[1]):
        if not y_true[:, c].any():
            out.append(DEFAULT_THRESHOLD)
            continue
        p, r, t = precision_recall_curve(y_true[:, c], probs[:, c])
        f1 = 2 * p[:-1] * r[:-1] / np.maximum(p[:-1] + r[:-1], 1e-12)
        best = int(np.argmax(f1))
        below = probs[:, c][probs[:, c] < t[best]]
        out.append(float((t[best] + below.max()) / 2) if below.size else float(t[best]))
    return out


def at_thresholds(y_true: np.ndarray, probs: np.ndarray, thresholds: list[float] | float) -> dict[str, float]:
    """Exact-match accuracy and macro/micro precision, recall and F1 with scores cut at `thresholds`."""
    y_true = (np.asarray(y_true) > 0.5).astype(int)
    y_pred = (np.asarray(probs) >= np.asarray(thresholds, dtype=np.float64)).astype(int)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    _, _, fmi, _ = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    return {"accuracy": float((y_true == y_pred).all(axis=1).mean()) if len(y_true) else 0.0,
            "precision_macro": float(p), "recall_macro": float(r), "f1_macro": float(f), "f1_micro": float(fmi)}


def scalar_metrics(y_true: np.ndarray, probs: np.ndarray, thresholds: list[float] | float = DEFAULT_THRESHOLD
                   ) -> dict[str, float]:
    macro, micro = mean_ap(y_true, probs)
    return {"map": macro, "map_micro": micro, **at_thresholds(y_true, probs, thresholds)}


def make_compute_metrics():
    """A `Trainer(compute_metrics=...)` for multi-label evaluation: mAP (picks the best epoch) and F1 at 0.5."""

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        return scalar_metrics(np.asarray(eval_pred.label_ids), sigmoid(logits))

    return compute_metrics


def evaluate(trainer: Any, val_ds: Any, labels: list[str], val_split: Any) -> dict[str, Any]:
    """Final validation metrics of the restored model: mAP, per-label AP and curve, tuned thresholds.

    The thresholds are tuned on the same validation clips they are reported on, so `*_tuned` figures
    are optimistic; `*_at_0.5` are the untuned reference.
    """
    pred = trainer.predict(val_ds, metric_key_prefix="eval")
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    probs = sigmoid(logits)
    y_true = (np.asarray(pred.label_ids) > 0.5).astype(int)
    thresholds = tune_thresholds(y_true, probs)
    at_half = at_thresholds(y_true, probs, DEFAULT_THRESHOLD)
    metrics: dict[str, Any] = scalar_metrics(y_true, probs, thresholds)
    metrics.update({f"{k}_at_0.5": v for k, v in at_half.items()})
    metrics.update(problem_type=PROBLEM_TYPE, labels=list(labels), loss=pred.metrics.get("eval_loss"),
                   thresholds={lab: round(t, 4) for lab, t in zip(labels, thresholds, strict=True)})
    aps = per_class_ap(y_true, probs)
    y_pred = (probs >= np.asarray(thresholds)).astype(int)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0,
                                                 labels=list(range(len(labels))))
    metrics["per_class"] = {lab: {"ap": aps[c], "threshold": round(thresholds[c], 4), "precision": float(p[c]),
                                  "recall": float(r[c]), "f1": float(f[c]), "support": int(s[c]),
                                  "curve": _curve(y_true[:, c], probs[:, c])}
                            for c, lab in enumerate(labels)}
    paths = list(val_split["path"])
    metrics["predictions"] = [
        {"path": paths[i], "true": [labels[c] for c in np.flatnonzero(y_true[i])],
         "pred": [labels[c] for c in np.flatnonzero(y_pred[i])],
         "probs": {labels[c]: round(float(probs[i, c]), 4) for c in range(len(labels))}} for i in range(len(y_true))]
    return metrics


def _curve(y: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """The precision/recall curve of one label, thinned to CURVE_POINTS points."""
    if not y.any():
        return {"precision": [], "recall": []}
    p, r, _ = precision_recall_curve(y, scores)
    keep = np.unique(np.linspace(0, len(p) - 1, min(len(p), CURVE_POINTS)).round().astype(int))
    return {"precision": [round(float(x), 4) for x in p[keep]], "recall": [round(float(x), 4) for x in r[keep]]}

