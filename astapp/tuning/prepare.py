"""Before any trial: the clips, the three-way split (search training / search validation / held-back test), and
the one pass of the frozen layers over every clip (cached on disk, so a resumed search does not pass again).

The test share is taken first and never reaches a trial: trials train on the search's training clips and are
scored on its validation clips; the test clips are scored once, at the end (`astapp.tuning.search`).
The input statistics (fbank mean and std) come from the search's training clips only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.core.config import TrainConfig
from astapp.core.errors import DatasetError, TrainingError
from astapp.crossval.clips import embeddings_key, load_clips
from astapp.data.folds import grouped_holdout, source_groups
from astapp.training.stages import Stages
from astapp.tuning.trials import Cached


def cached_mode(mode: str) -> bool:
    return mode == "frozen" or mode.startswith("last-")


def split_three(labels: list[str], paths: list[str], test_share: float, val_share: float,
                seed: int) -> tuple[list[int], list[int], list[int]]:
    """(train, validation, test) clip indices, whole source recordings on one side; the test share first."""
    groups = source_groups(paths).ids
    rest, test = grouped_holdout(labels, groups, test_share, seed + 7919)
    tr, va = grouped_holdout([labels[i] for i in rest], [groups[i] for i in rest], val_share, seed)
    train, val = [rest[i] for i in tr], [rest[i] for i in va]
    if not test or not val:
        raise DatasetError(f"Too few clips to hold back a test share and a validation share ({len(labels)} clips): "
                           "add clips (at least 3 per class) or raise the shares.")
    return train, val, test


def prepare(cfg: TrainConfig, stages: Stages) -> tuple[Any, int, Cached, dict[str, Any]]:
    """(model with its initial head, trainable layer count n, the cached activations and split, facts)."""
    from transformers import set_seed

    from astapp.features.cache import FeatureCache, cached_stats
    from astapp.features.fbank import Fbank, choose_max_length
    from astapp.model.loading import load_model
    from astapp.training.devices import resolve_precision, use_cuda
    from astapp.training.fastmodes import cache_shape, trainable_n
    from astapp.training.pipeline import cache_root

    if not cached_mode(cfg.mode):
        raise TrainingError(f"Mode {cfg.mode} has no frozen layers to pass once; its trials train through the "
                            "engine (astapp.tuning.engine).")
    stages.stage("dataset", "Reading and checking the dataset")
    clips, report = load_clips(cfg, stages.progress("dataset"))
    if getattr(report, "label_mode", "single") == "multi":
        raise DatasetError("The settings search takes single-label datasets; this one gives clips several labels.")
    names = [clips.label_names[y] for y in clips.labels]
    train, val, test = split_three(names, clips.paths, cfg.tune_test_share, cfg.val_split, cfg.seed)
    stages.stage("split", f"{len(train)} clips train each trial, {len(val)} validate it, {len(test)} are held back "
                 "for one test at the end.", train=len(train), validation=len(val), test=len(test))
    rows = clips.rows
    row_sets = [np.flatnonzero(np.isin(clips.clip_of_row, np.asarray(s))) for s in (train, val, test)]
    max_length = int(cfg.max_length) if cfg.max_length != "auto" else \
        choose_max_length([float(d) for d in rows.select(row_sets[0].tolist())["duration"]])
    stages.stage("stats", f"Computing dataset statistics at {max_length} frames", max_length=max_length)
    mean, std = cached_stats(cache_root(cfg) / "stats", rows.select(row_sets[0].tolist()), max_length)
    stages.stage("model", f"Loading the model {cfg.model}")
    set_seed(cfg.seed)
    model = load_model(cfg.model, clips.label_names, max_length).float().eval()
    n = int(trainable_n(model, cfg.mode) or 0)
    cuda = use_cuda(cfg.device)
    precision = resolve_precision(cfg.precision, cuda)
    stages.stage("features", "Computing input features")
    feats = FeatureCache(cache_root(cfg) / "features", Fbank(max_length, mean, std), rows,
                         progress=stages.progress("features"))
    name = f"emb-{embeddings_key(cfg, feats.key, precision)}.npy" if n == 0 else \
        f"top{n}-{embeddings_key(cfg, feats.key, precision)}.npy"
    t0 = time.time()
    x = _one_pass(model, n, feats, cache_shape(model, n, max_length), cache_root(cfg) / "embeddings" / name, cuda,
                  precision, stages)
    facts = {"max_length": max_length, "mean": mean, "std": std, "pass_seconds": time.time() - t0,
             "clips": {"train": len(train), "validation": len(val), "test": len(test)}}
    y_rows = np.asarray(clips.labels)[clips.clip_of_row]
    cached = Cached(x=x, y=y_rows, clip_of_row=clips.clip_of_row, clip_labels=np.asarray(clips.labels),
                    label_names=list(clips.label_names), train_rows=row_sets[0], val_rows=row_sets[1],
                    val_clips=np.asarray(val), test_rows=row_sets[2], test_clips=np.asarray(test))
    return model, n, cached, facts


def _one_pass(model: Any, n: int, feats: Any, shape: tuple[int, ...], path: Path, cuda: bool, precision: str,
              stages: Stages) -> np.ndarray:
    """The frozen part's output for every row: read from `path` when an earlier search (or a frozen
    cross-validation, which names it the same way) already computed it, else computed once now."""
    from astapp.training.fastmodes import compute_cache, frozen_part
    from astapp.training.trainer_utils import ArrayDataset

    if path.is_file():
        try:
            arr = np.load(path, mmap_mode="r")
            if arr.shape == (len(feats), *shape):
                stages.stage("features", "Reusing the frozen layers' cached pass", cached=True)
                return arr
        except (OSError, ValueError):
            pass
    device = torch.device("cuda" if cuda else "cpu")
    report = stages.progress("features")
    model.to(device)
    try:
        return compute_cache(frozen_part(model, n), ArrayDataset(feats, [0] * len(feats)), shape, path, device,
                             progress=lambda d, t: report(d / t, f"Running the frozen layers once: {d}/{t} clips"),
                             cpu_bf16=precision == "bf16" and not cuda)
    finally:
        model.to("cpu")
