"""The trials of modes full and LoRA for `astapp.tuning.search`: every trial a real training through the engine
(`training.pipeline.train`), in its own child run folder `<search>/trials/trial-NNNN/` (history, metrics, model).

The search's clips (its training and validation shares, never the held-back test share) are laid out once as a
small dataset of their own, `<search>/search-data/` (the audio hard-linked where the disk allows, else copied,
plus manifest.csv whose fold column says which clips validate). Every trial trains on exactly that dataset, and
so does "train the best": a trial's recorded config is a normal run's config, so training it again gives the
same validation score. Pruning rides on the engine's own per-epoch evaluation: its `eval` event reports the
validation macro F1 to Optuna, and a trial the median rule prunes is asked to stop through the engine's stop
event (`trainer_utils.StopCallback`), exactly as a user's stop would.

The held-back test clips are scored once, at the end, through the exported models (`predict.Predictor`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.config import TrainConfig
from astapp.core.errors import DatasetError
from astapp.core.fsutil import atomic_dir, atomic_write_text
from astapp.core.runfolder import CHECKPOINTS, MODEL, TRIAL, TRIALS, read_json
from astapp.training.stages import Stages, Stopped
from astapp.tuning.space import trial_config

SEARCH_DATA = "search-data"
MANIFEST = "manifest.csv"
VAL_FOLD = "val"
METRIC = "f1_macro"


class EngineTrials:
    """Trials as real trainings of the run's mode (full or LoRA) on the search's own dataset."""

    exact = True  # a trial is a normal run: its recorded config trains to the same validation score

    def __init__(self, cfg: TrainConfig, stages: Stages, run: Path, setup: str):
        self.cfg, self.stages, self.run, self.setup = cfg, stages, run, setup
        self.facts: dict[str, Any] = {"pass_seconds": 0.0}

    def prepare(self) -> None:
        """The three-way split and the search's dataset (train + validation clips); the test rows kept apart."""
        from astapp.crossval.clips import load_clips
        from astapp.tuning.prepare import split_three

        self.stages.stage("dataset", "Reading and checking the dataset")
        clips, report = load_clips(self.cfg, self.stages.progress("dataset"))
        if getattr(report, "label_mode", "single") == "multi":
            raise DatasetError("The settings search takes single-label datasets; this one gives clips several labels.")
        names = [clips.label_names[y] for y in clips.labels]
        train, val, test = split_three(names, clips.paths, self.cfg.tune_test_share, self.cfg.val_split, self.cfg.seed)
        self.stages.stage("split", f"{len(train)} clips train each trial, {len(val)} validate it, {len(test)} are "
                          "held back for one test at the end.", train=len(train), validation=len(val), test=len(test))
        manifest = write_search_data(self.run / SEARCH_DATA, clips.root, clips.paths, names,
                                     {i: "train" for i in train} | {i: VAL_FOLD for i in val})
        self.base = TrainConfig.from_dict({**self.cfg.to_dict(), "task": "train", "resume": "", "data": str(manifest),
                                           "val_fold": VAL_FOLD, "metric": METRIC})
        rows = np.flatnonzero(np.isin(clips.clip_of_row, np.asarray(test)))
        self.test = (clips.rows.select(rows.tolist()), clips.clip_of_row[rows], np.asarray(test),
                     np.asarray(clips.labels), list(clips.label_names))
        self.facts["clips"] = {"train": len(train), "validation": len(val), "test": len(test)}

    def config(self, params: dict[str, Any], folder: Path) -> TrainConfig:
        """The normal run a trial is: the search's dataset, its validation fold, the trial's settings."""
        out = trial_config(self.base, params)
        out.output = str(folder)
        return out

    def default(self, params: dict[str, Any]) -> float:
        """The default settings trained the same way (`trials/default/`), reused when a stopped search of the
        same setup already trained them."""
        folder = self.run / TRIALS / "default"
        old = read_json(folder / TRIAL)
        if old.get("setup") == self.setup and old.get("params") == params and old.get("state") == "complete" \
                and (folder / MODEL).is_dir():
            return float(old["value"])
        value, curve = self.trial(-1, params, folder, lambda epoch, score: None, threading.Event())
        atomic_write_text(folder / TRIAL, json.dumps({"number": None, "params": params, "value": value,
                                                      "state": "complete", "curve": curve, "setup": self.setup,
                                                      "config": self.config(params, folder).to_dict(),
                                                      "exact": True}, indent=2))
        return value

    def trial(self, number: int, params: dict[str, Any], folder: Path, report: Callable[[int, float], None],
              stop: threading.Event) -> tuple[float, list[float]]:
        """Train `params` into `folder`; (validation macro F1 of the restored best epoch, score per epoch).
        Raises optuna.TrialPruned when `report` prunes it, `Stopped` when the search is stopped meanwhile."""
        from optuna import TrialPruned

        from astapp.training.pipeline import train

        halt, curve, pruned = threading.Event(), [], []

        def sink(event: dict[str, Any]) -> None:
            if stop.is_set():
                halt.set()
            if event.get("type") != "eval" or event.get(METRIC) is None or pruned:
                return
            curve.append(float(event[METRIC]))
            try:
                report(len(curve), curve[-1])
            except TrialPruned:
                pruned.append(len(curve))
                halt.set()  # the engine stops after the current step, as for a user's stop

        result = train(self.config(params, folder), sink, halt)
        shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)  # a trial is not resumed on its own
        if pruned:
            shutil.rmtree(folder / MODEL, ignore_errors=True)
            raise TrialPruned()
        if result.state != "finished":
            raise Stopped()
        return float(result.metrics[METRIC]), curve

    def finish(self, best: dict[str, Any] | None, kept: bool) -> dict[str, Any]:
        """The held-back test clips scored once through the exported models (the default's and the best's);
        the winner's model/ copied as the search's model/."""
        trials = self.run / TRIALS
        test = {"default": self._test(trials / "default" / MODEL)}
        winner = trials / "default"
        if best is not None:
            folder = trials / f"trial-{best['number']:04d}"
            test["best"] = self._test(folder / MODEL)
            winner = winner if kept else folder
        self.stages.stage("exporting", "Saving the winning settings' model")
        with atomic_dir(self.run / MODEL) as tmp:
            shutil.copytree(winner / MODEL, tmp, dirs_exist_ok=True)
        test["clips"] = int(len(self.test[2]))
        return test

    def _test(self, model_dir: Path) -> dict[str, float]:
        from astapp.crossval.clips import per_clip
        from astapp.predict.predictor import Predictor
        from astapp.tuning.trials import clip_scores

        rows, clip_of_row, clips, labels, names = self.test
        pred = Predictor(model_dir)
        probs = pred.probabilities([np.asarray(a, dtype=np.float32) for a in rows["audio"]])
        ours = np.zeros((len(probs), len(names)))
        for j, name in enumerate(pred.labels):  # the model's label order to the dataset's
            if name in names:
                ours[:, names.index(name)] = probs[:, j]
        p = per_clip(ours, clip_of_row, len(labels))[clips]
        return clip_scores(labels[clips], p)


def write_search_data(folder: Path, root: Path | None, paths: list[str], labels: list[str],
                      folds: dict[int, str]) -> Path:
    """The clips `folds` names (index -> fold) as a dataset of their own: `folder/audio/<path>` and
    `folder/manifest.csv` (file, label, fold). Hard links where the disk allows (no copy of the audio)."""
    if root is None:
        raise DatasetError("The dataset's folder is unknown, so the search cannot lay out its clips.")
    shutil.rmtree(folder, ignore_errors=True)
    lines = []
    for i in sorted(folds):
        rel = Path("audio") / paths[i]
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(Path(root) / paths[i], dest)
        except OSError:
            shutil.copy2(Path(root) / paths[i], dest)
        lines.append([rel.as_posix(), labels[i], folds[i]])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "label", "fold"])
    writer.writerows(lines)
    atomic_write_text(folder / MANIFEST, text.getvalue())
    return folder / MANIFEST
