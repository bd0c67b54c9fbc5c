"""Cross-validation for the app: start it from the Train form, show folds, the map and label issues,
and turn the user's corrections into a new dataset (or a manifest to download)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AccessError, DatasetError
from astapp.core.runfolder import CONFIG, CV, LABEL_ISSUES, MAP, read_json
from astapp.jobs.manager import JobManager
from astapp.jobs.registry import RunInfo
from astapp.jobs.sessions import Session
from astapp.service.datasets import Datasets, DatasetView, play_audio
from astapp.service.evaluation import clip_path
from astapp.service.state import StateStore
from astapp.service.training import Training

DROP = "drop"


@dataclass
class CVView:
    """What the Evaluate tab shows of a cross-validation run."""

    run: RunInfo
    folds: list[dict[str, Any]]
    mean: dict[str, float]
    std: dict[str, float]
    grouping: str
    method: str  # how the map was reduced to 2-D
    xy: np.ndarray
    clips: list[dict[str, Any]]  # path, label, fold, probs (out of fold)
    labels: list[str]
    issues: list[dict[str, Any]] = field(default_factory=list)  # ranked, with "action" from the corrections
    embedding_source: str = ""

    def marks(self) -> list[str]:
        suspects = {d["path"] for d in self.issues}
        return ["suspect" if c["path"] in suspects else
                "mistake" if self.labels[int(np.argmax(c["probs"]))] != c["label"] else "" for c in self.clips]


class CrossValidating:
    """Cross-validation runs: starting one, its folds and map, and the user's corrections of its labels."""

    def __init__(self, manager: JobManager, store: StateStore, datasets: Datasets, training: Training):
        self.manager = manager
        self.store = store
        self.datasets = datasets  # what is cross-validated; a corrected dataset becomes the session's
        self.training = training  # the Train form's settings

    def start(self, session: Session, values: dict[str, Any], folds: str = "auto", final: bool = False) -> str:
        """Queue a cross-validation of the session's dataset with the Train form's settings."""
        folds = str(folds or "auto").strip().lower()
        if folds != "auto" and not (folds.isdigit() and int(folds) >= 2):
            raise DatasetError(f"Folds must be 'auto' or a whole number of 2 or more (got {folds!r}).")
        cfg = self.training.config_from_form(session, values)
        cfg.task, cfg.cv_folds, cfg.cv_final = "cv", folds, bool(final)
        self.training.save_form(session, values)
        self.store.update(session, cv={"folds": folds, "final": bool(final)})
        name = f"CV · {self.datasets.current(session).name} · {cfg.model.rstrip('/').split('/')[-1]}"
        return self.manager.submit(session.owner, cfg, name=name)

    def estimate(self, session: Session, values: dict[str, Any], folds: str = "auto") -> str:
        """How long the cross-validation will take, said before it starts (from this session's runs)."""
        view = self.datasets.current(session)
        n = len(view.report.get("durations") or []) if isinstance(view.report, dict) else 0
        k = len(view.folds) if str(folds).lower() == "auto" and len(view.folds) >= 2 else \
            (int(folds) if str(folds).isdigit() else 5)
        mode = str(values.get("mode") or "full")
        if mode == "frozen":
            return (f"Frozen mode: the backbone runs once over the {n} clips, then each of the {k} folds fits only "
                    "the head (seconds): about the time of one frozen training.")
        measured = [r for r in self.manager.list_runs(session.owner)
                    if r.state == "finished" and (r.path / "metrics.json").is_file()]
        for r in measured:
            m = read_json(r.path / "metrics.json")
            if m.get("mode") == mode and m.get("train_samples_per_second"):
                per_fold = float(values.get("epochs") or 1) * n * (k - 1) / k / float(m["train_samples_per_second"])
                return (f"Mode {mode}: {k} real trainings. At the {float(m['train_samples_per_second']):.1f} "
                        f"samples/s measured in your run {r.name!r}, about {k * per_fold / 60:.0f} min in all.")
        return (f"Mode {mode}: {k} real trainings, each about as long as one training run on "
                f"{(k - 1) * 100 // k}% of the data. Frozen mode cross-validates in about one run's time.")

    def view(self, session: Session, run_id: str) -> CVView | None:
        """The CV results of a run, or None when the run is no cross-validation (or has not finished)."""
        info = self.manager.get_run(session.owner, run_id)
        doc = read_json(info.path / CV)
        if not doc.get("folds"):
            return None
        xy = np.asarray(read_json(info.path / MAP).get("xy") or [[0.5, 0.5]] * len(doc["clips"]), dtype=float)
        try:
            issues = json.loads((info.path / LABEL_ISSUES).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            issues = []
        done = self.store.load(session).corrections.get(run_id, {})
        for d in issues:
            d["action"] = "dropped" if done.get(d["path"]) == DROP else \
                (f"relabelled {done[d['path']]}" if d["path"] in done else "")
        return CVView(info, doc["folds"], doc.get("mean", {}), doc.get("std", {}), str(doc.get("grouping", "")),
                      str(read_json(info.path / MAP).get("method", "")), xy, doc["clips"], list(doc.get("labels", [])),
                      issues, str(doc.get("embedding_source", "")))

    def clip(self, session: Session, run_id: str, index: int) -> tuple[tuple[int, Any] | None, str]:
        """A clip of a CV run: (playable audio, its label, out-of-fold prediction and top probabilities)."""
        view = self._cv_or_fail(session, run_id)
        if not 0 <= index < len(view.clips):
            raise AccessError(f"There is no clip {index} in this run.")
        c = view.clips[index]
        probs = np.asarray(c["probs"])
        top = np.argsort(-probs)[:3]
        lines = [f"**{c['path']}** · fold {c['fold']}", f"Labelled **{c['label']}**, heard as "
                 f"**{view.labels[int(top[0])]}** (out of fold)",
                 " · ".join(f"{view.labels[int(i)]} {probs[int(i)]:.2f}" for i in top)]
        issue = next((d for d in view.issues if d["path"] == c["path"]), None)
        if issue:
            lines.append(f"Suspect ({issue['kind']}): suggested label **{issue['suggested']}**")
        path = clip_path(str(read_json(view.run.path / CONFIG).get("data", "")), c["path"])
        return (play_audio(path) if path else None), "\n\n".join(lines)

    def correct(self, session: Session, run_id: str, path: str, action: str) -> None:
        """Record the user's decision on a suspect clip: "drop", "accept" (its suggested label), "undo"."""
        view = self._cv_or_fail(session, run_id)
        issue = next((d for d in view.issues if d["path"] == path), None)
        if issue is None:
            raise AccessError(f"{path!r} is not in this run's list of suspects.")
        with self.store.edit(session) as state:
            mine = dict(state.corrections.get(run_id, {}))
            if action == "undo":
                mine.pop(path, None)
            elif action in (DROP, "accept"):
                mine[path] = DROP if action == DROP else issue["suggested"]
            else:
                raise AccessError(f"Unknown action {action!r}: drop, accept or undo.")
            state.corrections = {**state.corrections, run_id: mine}

    def corrected_rows(self, session: Session, run_id: str) -> list[dict[str, str]]:
        """Every clip of the run's dataset with its label after the corrections (dropped clips left out)."""
        view = self._cv_or_fail(session, run_id)
        done = self.store.load(session).corrections.get(run_id, {})
        rows = []
        for c in view.clips:
            act = done.get(c["path"])
            if act != DROP:
                rows.append({"file": c["path"], "label": act or c["label"], "fold": str(c["fold"])})
        return rows

    def corrected_manifest(self, session: Session, run_id: str) -> Path:
        """The corrected dataset as a CSV manifest (file, label, fold) in the session's workspace."""
        rows = self.corrected_rows(session, run_id)
        buf = io.StringIO()
        folds = self._manifest_folds(self.manager.get_run(session.owner, run_id))
        writer = csv.DictWriter(buf, fieldnames=["file", "label", "fold"] if folds else ["file", "label"],
                                lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        out = session.workspace / "corrected" / f"{run_id}-manifest.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(buf.getvalue(), encoding="utf-8")
        return out

    def use_corrected(self, session: Session, run_id: str) -> DatasetView:
        """Make the corrected dataset the session's dataset: the clips linked (not copied) into a folder
        with a manifest, inspected through the same pipeline as an upload. Returns its DatasetView."""
        info = self.manager.get_run(session.owner, run_id)
        data_root = str(read_json(info.path / CONFIG).get("data", ""))
        rows = self.corrected_rows(session, run_id)
        digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:12]
        folder = session.workspace / "corrected" / f"{run_id}-{digest}"
        if not (folder / "manifest.csv").is_file():
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            kept = []
            for r in rows:
                src = clip_path(data_root, r["file"])
                if src is None:
                    continue
                dest = tmp / "clips" / r["file"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dest)
                except OSError:
                    shutil.copy2(src, dest)
                kept.append({**r, "file": f"clips/{r['file']}"})
            if not kept:
                shutil.rmtree(tmp, ignore_errors=True)
                raise DatasetError("None of the run's clips are on disk any more; upload the dataset again.")
            folds = self._manifest_folds(info)  # k-fold numbers are no dataset folds: not written
            with (tmp / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=["file", "label", "fold"] if folds else ["file", "label"],
                                        extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        current = self.datasets.current(session).name.removeprefix("Corrected: ")
        view = self.datasets.inspect(f"Corrected: {current}", "corrected", folder, session.workspace)
        view.source = f"corrected labels of run {run_id}"
        return self.datasets.choose(session, view)

    def _manifest_folds(self, info: RunInfo) -> bool:
        return str(read_json(info.path / CV).get("grouping", "")).startswith("leave-one-fold-out")

    def _cv_or_fail(self, session: Session, run_id: str) -> CVView:
        view = self.view(session, run_id)
        if view is None:
            raise AccessError(f"Run {run_id} is not a finished cross-validation.")
        return view
