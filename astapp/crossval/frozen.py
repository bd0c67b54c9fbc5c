"""Frozen-mode cross-validation: one backbone pass over every clip, then one head per fold (seconds)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.core import runfolder
from astapp.core.config import TrainConfig
from astapp.core.scores import softmax
from astapp.crossval.clips import (
    Clips,
    embeddings_key,
    fit_head,
    fold_scores,
    per_clip,
    summarise,
)
from astapp.data.folds import FoldPlan
from astapp.training.stages import Stages

BACKBONE_SHARE = 0.9  # of a frozen CV run's time: the head fits after the pass take seconds


def _rows_of(clip_of_row: np.ndarray, clips: list[int]) -> np.ndarray:
    return np.flatnonzero(np.isin(clip_of_row, np.asarray(clips, dtype=np.int64)))


@torch.no_grad()
def _probs(head: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return softmax(head(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy())


def frozen_cv(cfg: TrainConfig, stages: Stages, clips: Clips, plan: FoldPlan) -> dict[str, Any]:
    from transformers import set_seed

    from astapp.features.cache import FeatureCache, cached_stats
    from astapp.features.fbank import Fbank, choose_max_length
    from astapp.model.loading import load_model
    from astapp.training.devices import resolve_precision, use_cuda
    from astapp.training.fastmodes import compute_cache, frozen_part
    from astapp.training.pipeline import cache_root
    from astapp.training.trainer_utils import ArrayDataset

    rows = clips.rows
    max_length = int(cfg.max_length) if cfg.max_length != "auto" else \
        choose_max_length([float(d) for d in rows["duration"]])
    if cfg.augment.active:
        stages.emit({"type": "warning", "message": "Augmentation is ignored in frozen cross-validation: the backbone's "
                                               "embeddings are computed once per clip."})
    stages.stage("stats", f"Computing dataset statistics at {max_length} frames", max_length=max_length)
    mean, std = cached_stats(cache_root(cfg) / "stats", rows, max_length)
    stages.stage("model", f"Loading the model {cfg.model}")
    set_seed(cfg.seed)
    model = load_model(cfg.model, clips.label_names, max_length)
    cuda = use_cuda(cfg.device)
    precision = resolve_precision(cfg.precision, cuda)
    device = torch.device("cuda" if cuda else "cpu")
    stages.stage("features", "Computing input features")
    feats = FeatureCache(cache_root(cfg) / "features", Fbank(max_length, mean, std), rows,
                         progress=stages.progress("features"))
    path = cache_root(cfg) / "embeddings" / f"emb-{embeddings_key(cfg, feats.key, precision)}.npy"
    t0 = time.time()
    emb_rows = _cached(path, len(feats), model.config.hidden_size)
    if emb_rows is None:
        report = stages.progress("features", span=(0.0, BACKBONE_SHARE))
        model.to(device).eval()
        emb_rows = compute_cache(frozen_part(model, 0), ArrayDataset(feats, [0] * len(feats)),
                                 (model.config.hidden_size,), path, device,
                                 progress=lambda d, n: report(d / n, f"Running the backbone once: {d}/{n} clips"),
                                 cpu_bf16=precision == "bf16" and not cuda)
        model.to("cpu")
    backbone_seconds = time.time() - t0
    emb_rows = np.asarray(emb_rows, dtype=np.float32)
    y_rows = np.asarray(clips.labels)[clips.clip_of_row]
    head0 = copy.deepcopy(model.classifier).float().cpu()
    n, c = len(clips.paths), len(clips.label_names)
    oof = np.zeros((n, c))
    folds = []
    y = np.asarray(clips.labels)
    for f, name in enumerate(plan.names):
        train, val = plan.split(f)
        tr, va = _rows_of(clips.clip_of_row, train), _rows_of(clips.clip_of_row, val)
        stages.stage("training", f"Fold {name} of {len(plan.names)}: fitting the head on {len(train)} clips")
        head = fit_head(copy.deepcopy(head0), emb_rows[tr], y_rows[tr], cfg, c)
        p = per_clip(_probs(head, emb_rows[va]), clips.clip_of_row[va], n)[val]
        oof[val] = p
        s = fold_scores(y[val], p, clips.label_names)
        folds.append({"fold": name, **s, "clips": len(val), "train_clips": len(train)})
        stages.stage("fold", f"Fold {name}: accuracy {s['accuracy']:.3f}, macro F1 {s['f1_macro']:.3f} "
                         f"on {len(val)} clips", **folds[-1])
    out = {"oof": oof, "folds": folds, "embeddings": per_clip(emb_rows, clips.clip_of_row, n),
           "embedding_source": f"the frozen backbone of {cfg.model}", "backbone_seconds": backbone_seconds}
    if cfg.cv_final:
        out["final"] = _final(cfg, stages, model, head0, emb_rows, y_rows, max_length, mean, std, folds)
    return out


def _cached(path: Path, n: int, hidden: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return arr if arr.shape == (n, hidden) else None


def _final(cfg: TrainConfig, stages: Stages, model: Any, head0: torch.nn.Module, emb: np.ndarray, y: np.ndarray, max_length: int,
           mean: float, std: float, folds: list[dict[str, Any]]) -> Path:
    """The head trained on every clip, exported with the backbone as the run's model/."""
    from astapp.model.folder import export_model

    stages.stage("training", f"Training the final head on all {len(y)} examples")
    model.classifier = fit_head(copy.deepcopy(head0), emb, y, cfg, len(head0.dense.weight))
    mean_scores, _ = summarise(folds)
    stages.stage("exporting", "Saving the final model")
    extra = {"metrics": {"cv_accuracy": mean_scores["accuracy"], "cv_f1_macro": mean_scores["f1_macro"]},
             "mode": cfg.mode, "source_model": cfg.model, "trained_on": "all clips (after cross-validation)"}
    return export_model(model, list(model.config.id2label[i] for i in range(len(model.config.id2label))),
                        max_length, mean, std, Path(cfg.output) / runfolder.MODEL, extra=extra)
