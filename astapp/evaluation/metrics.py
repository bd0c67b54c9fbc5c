"""Classification metrics (scikit-learn): the numbers the UI, metrics.json and best-epoch selection use.

Macro averages are taken over *all* classes (not only those present in this split), with
zero_division=0, so runs on the same labels are comparable and a never-predicted class counts as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

SCALARS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def scalar_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                   num_labels: int) -> dict[str, float]:
    """accuracy and macro precision/recall/F1 over classes 0..num_labels-1."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:
        return {k: 0.0 for k in SCALARS}
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=list(range(num_labels)),
                                                 average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "precision_macro": float(p),
            "recall_macro": float(r), "f1_macro": float(f)}


def classification_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                           labels: Sequence[str]) -> dict[str, Any]:
    """Scalars plus confusion matrix (rows = true, columns = predicted), labels and a per-class report."""
    labels = [str(x) for x in labels]
    ids = list(range(len(labels)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out: dict[str, Any] = scalar_metrics(y_true, y_pred, len(labels))
    cm = confusion_matrix(y_true, y_pred, labels=ids) if y_true.size else np.zeros((len(ids), len(ids)), int)
    p, r, f, s = (precision_recall_fscore_support(y_true, y_pred, labels=ids, average=None, zero_division=0)
                  if y_true.size else (np.zeros(len(ids)),) * 3 + (np.zeros(len(ids), int),))
    out["confusion_matrix"] = cm.astype(int).tolist()
    out["labels"] = labels
    out["per_class"] = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                               "support": int(s[i])} for i, name in enumerate(labels)}
    return out


def make_compute_metrics(num_labels: int):
    """A `Trainer(compute_metrics=...)` function returning the scalar metrics."""

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        return scalar_metrics(eval_pred.label_ids, np.argmax(logits, axis=-1), num_labels)

    return compute_metrics
