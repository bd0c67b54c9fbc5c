"""Cross-validation: scores per fold, out-of-fold probabilities, embeddings and label issues.

`run_cv(cfg, events, stop)` is the engine for a `TrainConfig` with `task="cv"`; the App layer records
it like any run (status, config, log). It writes, in the run folder (see `astapp.core.runfolder`):
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
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core import runfolder
from astapp.core.config import TrainConfig
from astapp.core.events import EventSink, make_event
from astapp.core.fsutil import atomic_write_text
from astapp.core.runfolder import RunResult
from astapp.crossval.clips import Clips, load_clips, summarise
from astapp.training.stages import Stages, Stopped, within


def run_cv(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None) -> RunResult:
    """Cross-validate per `cfg` (see the module doc); returns the result with the CV summary as metrics."""
    cfg.require_valid()
    return _CV(cfg, events or (lambda e: None), stop or threading.Event()).execute()


class _CV:
    def __init__(self, cfg: TrainConfig, emit: EventSink, stop: threading.Event):
        self.cfg, self.emit, self.stop = cfg, emit, stop
        self.stages = Stages(emit, stop)
        self.stage = self.stages.stage
        self.run = Path(cfg.output)
        self.t0 = time.time()

    def execute(self) -> RunResult:
        from astapp.data.folds import plan_folds, plan_warnings

        self.run.mkdir(parents=True, exist_ok=True)
        for name in (runfolder.CV, runfolder.LABEL_ISSUES, runfolder.MAP, runfolder.EMBEDDINGS):
            (self.run / name).unlink(missing_ok=True)
        try:
            self.stage("dataset", "Reading and checking the dataset")
            clips, report = load_clips(self.cfg, self.stages.progress("dataset"))
            if getattr(report, "label_mode", "single") == "multi":
                from astapp.core.errors import DatasetError

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
                from astapp.crossval.frozen import frozen_cv

                out = frozen_cv(self.cfg, self.stages, clips, plan)
            else:
                from astapp.crossval.trained import trained_cv

                out = trained_cv(self.cfg, self.stages, clips, plan, self.subrun)
            return self.finish(clips, plan, out)
        except Stopped:
            self.emit(make_event("done", state="stopped", metrics={}))
            return RunResult(self.run, "stopped")

    def finish(self, clips: Clips, plan, out: dict[str, Any]) -> RunResult:
        """Write cv.json, embeddings, the map and the label issues; the outcome as the run's metrics."""
        from astapp.evaluation.embedmap import reduce_2d
        from astapp.evaluation.label_issues import find_issues

        oof, emb = out["oof"], out["embeddings"]
        mean, std = summarise(out["folds"])
        np.save(self.run / runfolder.EMBEDDINGS, emb.astype(np.float32))
        names = clips.label_names
        doc = {"folds": out["folds"], "mean": mean, "std": std, "grouping": plan.grouping, "mode": self.cfg.mode,
               "model": self.cfg.model, "labels": names, "embedding_source": out["embedding_source"],
               "seconds": time.time() - self.t0, "backbone_seconds": out.get("backbone_seconds"),
               "clips": [{"path": p, "label": names[y], "fold": plan.names[plan.of_file[i]],
                          "probs": [round(float(v), 6) for v in oof[i]]}
                         for i, (p, y) in enumerate(zip(clips.paths, clips.labels, strict=True))]}
        atomic_write_text(self.run / runfolder.CV, json.dumps(doc, ensure_ascii=False))
        self.stage("issues", "Looking for label issues and near-duplicates")
        issues = find_issues(oof, np.asarray(clips.labels), names, emb, clips.paths)
        atomic_write_text(self.run / runfolder.LABEL_ISSUES, json.dumps(issues, indent=1, ensure_ascii=False))
        xy, method = reduce_2d(emb, seed=self.cfg.seed)
        atomic_write_text(self.run / runfolder.MAP, json.dumps({"method": method, "xy": np.round(xy, 5).tolist()}))
        metrics = {"accuracy": mean["accuracy"], "f1_macro": mean["f1_macro"], "accuracy_std": std["accuracy"],
                   "f1_macro_std": std["f1_macro"], "folds": len(out["folds"]), "label_issues": len(issues),
                   "cv_seconds": doc["seconds"]}
        final = out.get("final")
        if final is not None:
            metrics["final_model"] = str(final)
        self.emit(make_event("done", state="finished", metrics=metrics))
        return RunResult(self.run, "finished", metrics, final, config=self.cfg)

    def subrun(self, name: str, val_fold: str, span: tuple[float, float] | None = None) -> RunResult:
        """One fold as a real training into folds/<name>/ (the engine's files; no status: not a run of its own).
        Its training progress is `span` of the whole CV run's."""
        from astapp.training.pipeline import train

        folder = self.run / "folds" / name
        shutil.rmtree(folder, ignore_errors=True)
        sub = dataclasses.replace(self.cfg, task="train", output=str(folder), val_fold=val_fold, resume="",
                                  cv_final=False)

        def relay(ev: dict[str, Any]) -> None:
            if ev.get("type") in ("log", "eval"):
                scaled = {"progress": within(span, float(ev["progress"]))} if "progress" in ev else {}
                self.emit({**ev, "fold": name, **scaled})
            elif ev.get("type") == "stage" and ev.get("stage") == "training":
                self.emit(make_event("stage", stage="training", message=f"Fold {name}: {ev.get('message')}"))

        result = train(sub, relay, self.stop)
        if result.state != "finished":
            raise Stopped()
        return result
