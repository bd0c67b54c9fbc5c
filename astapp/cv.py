"""Cross-validation: scores per fold, out-of-fold probabilities, embeddings and label issues.

`run_cv(cfg, events, stop)` is the engine for a `TrainConfig` with `task="cv"`; the App layer records
it like any run (status, config, log). It writes, in the run folder (see `astapp.rundir`):
cv.json (folds, mean, std, grouping, and per clip its fold, label and out-of-fold probabilities),
embeddings.npy (one row per clip, in cv.json's clip order), map.json (the 2-D map) and
label_issues.json. With `cv_final` the final model is trained too (`model/` and metrics.json).

* frozen: the backbone runs **once** over every clip (its pooled embeddings, cached across reruns),
  and each fold trains only the head on them: k-fold costs one backbone pass plus seconds. The final
  model's head is trained on all clips the same way.
* last-N / full / lora: every fold is a real training (the engine with `val_fold` = that fold) into
  `folds/<name>/`; its model then scores its validation clips. The final model is a normal run with
  the usual validation split (it needs one to pick the best epoch).
Scores are per clip: the windows of a long clip are averaged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp import rundir
from astapp.config import TrainConfig
from astapp.events import EventSink, make_event
from astapp.fsutil import atomic_write_text
from astapp.metrics import scalar_metrics, softmax
from astapp.rundir import RunResult


class _Stopped(Exception):
    pass


@dataclasses.dataclass
class Clips:
    """The dataset as clips (files) and rows (windows): row r belongs to clip `clip_of_row[r]`."""

    paths: list[str]
    labels: list[int]
    folds: list[str | None]
    label_names: list[str]
    rows: Any  # datasets.Dataset of every window, in clip order
    clip_of_row: np.ndarray


def load_clips(cfg: TrainConfig, progress: Callable[[float, str], None] | None = None) -> tuple[Clips, Any]:
    """Every decoded clip of the dataset (one build, the engine's cache) and the dataset's report."""
    from datasets import Dataset

    from astapp.dataset import build_dataset
    from astapp.train import cache_root

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
    return Clips(paths, labels, folds, list(bundle.labels), rows, clip_of_row), bundle.report


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


def run_cv(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None) -> RunResult:
    """Cross-validate per `cfg` (see the module doc); returns the result with the CV summary as metrics."""
    cfg.require_valid()
    return _CV(cfg, events or (lambda e: None), stop or threading.Event()).execute()


class _CV:
    def __init__(self, cfg: TrainConfig, emit: EventSink, stop: threading.Event):
        self.cfg, self.emit, self.stop = cfg, emit, stop
        self.run = Path(cfg.output)
        self.t0 = time.time()

    def stage(self, name: str, message: str, **fields: Any) -> None:
        self.emit(make_event("stage", stage=name, message=message, **fields))
        if self.stop.is_set():
            raise _Stopped()

    def progress(self, stage: str) -> Callable[[float, str], None]:
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            if self.stop.is_set():
                raise _Stopped()
            if time.time() - last[0] >= 0.5 or fraction >= 1.0:
                last[0] = time.time()
                self.emit(make_event("stage", stage=stage, message=message, fraction=float(fraction)))

        return report

    def execute(self) -> RunResult:
        from astapp.folds import plan_folds, plan_warnings

        self.run.mkdir(parents=True, exist_ok=True)
        for name in (rundir.CV, rundir.LABEL_ISSUES, rundir.MAP, rundir.EMBEDDINGS):
            (self.run / name).unlink(missing_ok=True)
        try:
            self.stage("dataset", "Reading and checking the dataset")
            clips, report = load_clips(self.cfg, self.progress("dataset"))
            if getattr(report, "label_mode", "single") == "multi":
                from astapp.errors import DatasetError

                raise DatasetError("Cross-validation and label issues take single-label datasets; this one gives "
                                   "clips several labels. Train it with `train` (multi-label is detected).")
            for w in report.warnings:
                self.emit(make_event("warning", message=w))
            plan = plan_folds([clips.label_names[y] for y in clips.labels], clips.folds, clips.paths,
                              self.cfg.cv_folds, self.cfg.seed)
            for w in plan_warnings([clips.label_names[y] for y in clips.labels], plan):
                self.emit(make_event("warning", message=w))
            self.stage("split", f"Cross-validating {len(clips.paths)} clips: {plan.grouping}.", grouping=plan.grouping)
            if self.cfg.mode == "frozen":
                from astapp.cv_frozen import frozen_cv

                out = frozen_cv(self, clips, plan)
            else:
                from astapp.cv_folds import trained_cv

                out = trained_cv(self, clips, plan)
            return self.finish(clips, plan, out)
        except _Stopped:
            self.emit(make_event("done", state="stopped", metrics={}))
            return RunResult(self.run, "stopped")

    def finish(self, clips: Clips, plan, out: dict[str, Any]) -> RunResult:
        """Write cv.json, embeddings, the map and the label issues; the outcome as the run's metrics."""
        from astapp.embedmap import reduce_2d
        from astapp.label_issues import find_issues

        oof, emb = out["oof"], out["embeddings"]
        mean, std = summarise(out["folds"])
        np.save(self.run / rundir.EMBEDDINGS, emb.astype(np.float32))
        names = clips.label_names
        doc = {"folds": out["folds"], "mean": mean, "std": std, "grouping": plan.grouping, "mode": self.cfg.mode,
               "model": self.cfg.model, "labels": names, "embedding_source": out["embedding_source"],
               "seconds": time.time() - self.t0, "backbone_seconds": out.get("backbone_seconds"),
               "clips": [{"path": p, "label": names[y], "fold": plan.names[plan.of_file[i]],
                          "probs": [round(float(v), 6) for v in oof[i]]}
                         for i, (p, y) in enumerate(zip(clips.paths, clips.labels, strict=True))]}
        atomic_write_text(self.run / rundir.CV, json.dumps(doc, ensure_ascii=False))
        self.stage("issues", "Looking for label issues and near-duplicates")
        issues = find_issues(oof, np.asarray(clips.labels), names, emb, clips.paths)
        atomic_write_text(self.run / rundir.LABEL_ISSUES, json.dumps(issues, indent=1, ensure_ascii=False))
        xy, method = reduce_2d(emb, seed=self.cfg.seed)
        atomic_write_text(self.run / rundir.MAP, json.dumps({"method": method, "xy": np.round(xy, 5).tolist()}))
        metrics = {"accuracy": mean["accuracy"], "f1_macro": mean["f1_macro"], "accuracy_std": std["accuracy"],
                   "f1_macro_std": std["f1_macro"], "folds": len(out["folds"]), "label_issues": len(issues),
                   "cv_seconds": doc["seconds"]}
        final = out.get("final")
        if final is not None:
            metrics["final_model"] = str(final)
        self.emit(make_event("done", state="finished", metrics=metrics))
        return RunResult(self.run, "finished", metrics, final, config=self.cfg)

    def subrun(self, name: str, val_fold: str) -> RunResult:
        """One fold as a real training into folds/<name>/ (the engine's files; no status: not a run of its own)."""
        from astapp.train import train

        folder = self.run / "folds" / name
        shutil.rmtree(folder, ignore_errors=True)
        sub = dataclasses.replace(self.cfg, task="train", output=str(folder), val_fold=val_fold, resume="",
                                  cv_final=False)

        def relay(ev: dict[str, Any]) -> None:
            if ev.get("type") in ("log", "eval"):
                self.emit({**ev, "fold": name})
            elif ev.get("type") == "stage" and ev.get("stage") == "training":
                self.emit(make_event("stage", stage="training", message=f"Fold {name}: {ev.get('message')}"))

        result = train(sub, relay, self.stop)
        if result.state != "finished":
            raise _Stopped()
        return result


def embeddings_key(cfg: TrainConfig, feature_key: str, precision: str) -> str:
    """Names cached backbone embeddings: the features, the model (and its files' times) and the precision."""
    src = Path(cfg.model)
    stamp = ""
    if src.exists():
        cfg_file = src / "model" / "config.json" if (src / "model").is_dir() else src / "config.json"
        stamp = str(cfg_file.stat().st_mtime_ns) if cfg_file.is_file() else ""
    text = json.dumps({"f": feature_key, "m": cfg.model, "s": stamp, "p": precision, "v": 1})
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def softmax_np(logits: np.ndarray) -> np.ndarray:
    return softmax(np.asarray(logits, dtype=np.float64))
