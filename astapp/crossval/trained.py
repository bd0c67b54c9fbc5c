"""Cross-validation in last-N / full / lora modes: each fold is a real training, then scores its clips."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from astapp.core.config import TrainConfig
from astapp.core.runfolder import RunResult
from astapp.core.scores import softmax
from astapp.crossval.clips import Clips, fold_scores, per_clip
from astapp.data.folds import FoldPlan
from astapp.training.embed import embed_rows
from astapp.training.stages import Stages, within

FOLDS_SHARE = 0.8  # of a CV run with a final model: the folds' trainings; the final model takes the rest


def forward_rows(model: Any, rows: Any, max_length: int, mean: float, std: float, feat_dir: Any,
                 batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(pooled embeddings, probabilities) of every row: what the classifier head sees, and what it says."""
    emb, logits = embed_rows(model.float().cpu(), rows, max_length, mean, std, feat_dir, batch_size)
    return emb, softmax(logits) if len(logits) else np.zeros((0, model.config.num_labels))


def trained_cv(cfg: TrainConfig, stages: Stages, clips: Clips, plan: FoldPlan,
               subrun: Callable[[str, str, tuple[float, float]], RunResult]) -> dict[str, Any]:
    import dataclasses

    from astapp.training.pipeline import cache_root, train

    manifest = plan.grouping.startswith("leave-one-fold-out")
    n, c, k = len(clips.paths), len(clips.label_names), len(plan.names)
    y = np.asarray(clips.labels)
    oof = np.zeros((n, c))
    folds = []
    feat_dir = cache_root(cfg) / "features"
    last: Any = None
    for f, name in enumerate(plan.names):
        stages.stage("training", f"Fold {name} of {k}: training ({cfg.mode})")
        share = FOLDS_SHARE if cfg.cv_final else 1.0  # the final model's training takes the rest
        res = subrun(name, name if manifest else f"cv:{f + 1}/{k}", (share * f / k, share * (f + 1) / k))
        _, val = plan.split(f)
        rows = np.flatnonzero(np.isin(clips.clip_of_row, np.asarray(val)))
        m = res.metrics
        _, p = forward_rows(res.model, clips.rows.select(rows.tolist()), int(m["max_length"]), float(m["mean"]),
                            float(m["std"]), feat_dir)
        oof[val] = per_clip(p, clips.clip_of_row[rows], n)[val]
        s = fold_scores(y[val], oof[val], clips.label_names)
        folds.append({"fold": name, **s, "clips": len(val), "train_clips": n - len(val)})
        stages.stage("fold", f"Fold {name}: accuracy {s['accuracy']:.3f}, macro F1 {s['f1_macro']:.3f} "
                         f"on {len(val)} clips", **folds[-1])
        last = res
    out: dict[str, Any] = {"oof": oof, "folds": folds}
    if cfg.cv_final:
        stages.stage("training", "Training the final model (the usual validation split picks its best epoch)")
        def relay(ev: dict[str, Any]) -> None:
            if ev.get("type") in ("log", "eval", "warning"):
                scaled = {"progress": within((FOLDS_SHARE, 1.0), float(ev["progress"]))} if "progress" in ev else {}
                stages.emit({**ev, **scaled})

        final = train(dataclasses.replace(cfg, task="train", cv_final=False, resume=""), relay, stages.stop)
        model, source, m = final.model, "the final model", final.metrics
        out["final"] = final.model_dir
    else:
        from astapp.model.loading import load_model

        m = last.metrics
        model, source = load_model(cfg.model, clips.label_names, int(m["max_length"])), f"the starting model {cfg.model}"
    stages.stage("features", f"Embedding every clip with {source}")
    emb, _ = forward_rows(model, clips.rows, int(m["max_length"]), float(m["mean"]), float(m["std"]), feat_dir)
    out.update(embeddings=per_clip(emb, clips.clip_of_row, n), embedding_source=source)
    return out
