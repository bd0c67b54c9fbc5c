"""The dataset as clips for cross-validation, and what every strategy shares: per-clip scores, the
linear-probe head, fold scores, their summary, the cache key of backbone embeddings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.core.config import TrainConfig
from astapp.evaluation.metrics import scalar_metrics


@dataclasses.dataclass
class Clips:
    """The dataset as clips (files) and rows (windows): row r belongs to clip `clip_of_row[r]`."""

    paths: list[str]
    labels: list[int]
    folds: list[str | None]
    label_names: list[str]
    rows: Any  # datasets.Dataset of every window, in clip order
    clip_of_row: np.ndarray
    root: Path | None = None  # the dataset folder the paths are relative to


def load_clips(cfg: TrainConfig, progress: Callable[[float, str], None] | None = None) -> tuple[Clips, Any]:
    """Every decoded clip of the dataset (one build, the engine's cache) and the dataset's report."""
    from datasets import Dataset

    from astapp.data.dataset import build_dataset
    from astapp.training.pipeline import cache_root

    bundle = build_dataset(cfg.data, cache_root(cfg), cfg.audio, cfg.val_split, cfg.seed, progress=progress)
    rows = Dataset.from_file(str(bundle.cache_dir / "data.arrow"))  # every window, in decode order
    paths = list(bundle.file_folds) or list(dict.fromkeys(rows["path"]))
    index = {p: i for i, p in enumerate(paths)}
    row_paths = rows["path"]
    keep = [r for r, p in enumerate(row_paths) if p in index]
    if len(keep) < len(row_paths):
        rows = rows.select(keep)
        row_paths = [row_paths[r] for r in keep]
    clip_of_row = np.asarray([index[p] for p in row_paths], dtype=np.int64)
    labels = [0] * len(paths)
    for r, lab in enumerate(rows["label"]):
        labels[int(clip_of_row[r])] = int(lab)
    folds = [bundle.file_folds.get(p) for p in paths]
    return Clips(paths, labels, folds, list(bundle.labels), rows, clip_of_row, Path(bundle.root)), bundle.report


def per_clip(probs: np.ndarray, clip_of_row: np.ndarray, n: int) -> np.ndarray:
    """Average the rows (windows) of each clip: (n, C); clips without rows stay zero."""
    out = np.zeros((n, probs.shape[1]), dtype=np.float64)
    count = np.zeros(n)
    np.add.at(out, clip_of_row, probs)
    np.add.at(count, clip_of_row, 1)
    return out / np.maximum(count, 1)[:, None]


def fit_head(head: torch.nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, num_labels: int,
             ) -> torch.nn.Module:
    """Fit the classifier head (LayerNorm then Linear) to embeddings as a linear probe: L-BFGS logistic
    regression on the layer-normed embeddings, written into the Linear layer. Convex and run to
    convergence, so a fold's score does not depend on a learning rate or an epoch count that suit
    fine-tuning, not a head alone; class-weighted when the run asks for it."""
    from sklearn.linear_model import LogisticRegression

    ln, dense = head.layernorm, head.dense
    with torch.no_grad():
        ln.reset_parameters()
        z = ln(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy().astype(np.float64)
    probe = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced" if cfg.class_weighted else None)
    probe.fit(z, y)
    w = np.zeros((num_labels, z.shape[1]))
    b = np.full(num_labels, -30.0)  # a class the probe never saw is never predicted
    coef, icpt = probe.coef_, probe.intercept_
    if len(probe.classes_) == 2:  # sklearn's binary form: one row for the second class
        coef, icpt = np.vstack([-coef / 2, coef / 2]), np.r_[-icpt / 2, icpt / 2]
    for row, c in enumerate(probe.classes_):
        w[int(c)], b[int(c)] = coef[row], icpt[row]
    with torch.no_grad():
        dense.weight.copy_(torch.from_numpy(w).to(dense.weight.dtype))
        dense.bias.copy_(torch.from_numpy(b).to(dense.bias.dtype))
    return head.eval()


def fold_scores(y: np.ndarray, probs: np.ndarray, names: list[str]) -> dict[str, float]:
    """Accuracy and macro F1 over the classes the fold's clips have (a class a fold lacks is not a 0)."""
    from sklearn.metrics import f1_score

    pred = probs.argmax(-1)
    acc = scalar_metrics(y, pred, len(names))["accuracy"]
    f1 = f1_score(y, pred, labels=sorted(set(np.asarray(y).tolist())), average="macro", zero_division=0)
    return {"accuracy": float(acc), "f1_macro": float(f1)}


def summarise(folds: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and (population) standard deviation of each score over the folds."""
    mean, std = {}, {}
    for key in ("accuracy", "f1_macro"):
        vals = np.asarray([f[key] for f in folds], dtype=np.float64)
        mean[key], std[key] = float(vals.mean()), float(vals.std())
    mean["clips"] = float(np.mean([f["clips"] for f in folds]))
    return mean, std


def embeddings_key(cfg: TrainConfig, feature_key: str, precision: str) -> str:
    """Names cached backbone embeddings: the features, the model (and its files' times) and the precision."""
    src = Path(cfg.model)
    stamp = ""
    if src.exists():
        cfg_file = src / "model" / "config.json" if (src / "model").is_dir() else src / "config.json"
        stamp = str(cfg_file.stat().st_mtime_ns) if cfg_file.is_file() else ""
    text = json.dumps({"f": feature_key, "m": cfg.model, "s": stamp, "p": precision, "v": 1})
    return hashlib.sha256(text.encode()).hexdigest()[:20]


