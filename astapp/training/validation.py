"""A trained model's final validation metrics, with per-clip predictions: the one definition of what
metrics.json holds for a training run and for a distilled student (so Evaluate reads both the same way)."""

from __future__ import annotations

from typing import Any

import numpy as np

from astapp.core.scores import softmax
from astapp.evaluation.metrics import classification_metrics


def evaluate_validation(trainer: Any, val_ds: Any, labels: list[str], val_split: Any) -> dict[str, Any]:
    """Metrics of `trainer`'s (restored) model on the validation clips; multi-label: mAP, per-label AP and
    tuned thresholds."""
    if np.ndim(val_ds.labels) == 2:
        from astapp.evaluation.multilabel import evaluate as evaluate_multilabel

        return evaluate_multilabel(trainer, val_ds, labels, val_split)
    pred = trainer.predict(val_ds, metric_key_prefix="eval")
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    probs = softmax(logits)
    y_true, y_pred = np.asarray(pred.label_ids), probs.argmax(-1)
    metrics = classification_metrics(y_true, y_pred, labels)
    metrics["loss"] = pred.metrics.get("eval_loss")
    paths = list(val_split["path"])
    metrics["predictions"] = [{"path": paths[i], "true": labels[int(y_true[i])], "pred": labels[int(y_pred[i])],
                               "prob": float(probs[i, y_pred[i]])} for i in range(len(y_true))]
    return metrics
