"""The run folder: every file name and format of a run, the readers, and who writes each file.

    <run>/status.json     {state, error, pid, updated, ...}    written by astapp.jobs.record.RunRecord only
    <run>/config.json     TrainConfig.to_dict()                 RunRecord (submitted, then resolved)
    <run>/meta.json       {id, name, owner, created}            RunRecord (once, when the run is created)
    <run>/log.txt         "HH:MM:SS line" per line              RunRecord (event lines, captured logs)
    <run>/history.jsonl   one event per line                    the engine (astapp.training.pipeline, JsonlSink);
                                                                a slice's end: astapp.jobs.slicing (between slices)
    <run>/metrics.json    final validation metrics              the engine
    <run>/report.json     the dataset's ValidationReport        the engine
    <run>/model/          the exported model (complete only)    the engine (export_model, atomic)
    <run>/checkpoints/    checkpoint-N/ for resume              the engine (Trainer, atomic)
    <run>/best/           best weights while resumable          the engine (BestKeeper)
    <run>/tb/             TensorBoard                           the engine
    <run>/adapter/        mode lora: the LoRA adapter alone     the engine (peft save_pretrained)
    <run>/cv.json         task cv: folds, mean, std, clips      the CV engine (astapp.crossval.task)
    <run>/embeddings.npy  task cv: one embedding per clip       the CV engine
    <run>/map.json        task cv: the 2-D map of them          the CV engine
    <run>/label_issues.json  task cv: ranked suspects           the CV engine
    <run>/folds/<name>/   task cv (not frozen): each fold's run the engine
    <run>/distill.json    task distill: teacher vs student      the distillation engine (astapp.distill.run)
    <run>/tune.json       task tune: trials, best, default, test  the search (astapp.tuning.search)
    <run>/trials/trial-NNNN/trial.json  task tune: one trial    the search

The engine never reads back what the App layer wrote: it reports its outcome as a `RunResult` (or an
exception), and `RunRecord` turns that into the status.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.errors import TrainingError

STATUS, CONFIG, META, LOG = "status.json", "config.json", "meta.json", "log.txt"
HISTORY, METRICS, REPORT = "history.jsonl", "metrics.json", "report.json"
MODEL, CHECKPOINTS, BEST, TENSORBOARD, FASTCACHE = "model", "checkpoints", "best", "tb", ".fastcache"
ADAPTER = "adapter"  # mode lora: the adapter alone, in peft's format
CV, EMBEDDINGS, MAP, LABEL_ISSUES = "cv.json", "embeddings.npy", "map.json", "label_issues.json"
DISTILL, POOLCACHE = "distill.json", ".poolcache"  # task distill: teacher vs student; the decoded unlabeled audio
TUNE, TRIALS, TRIAL = "tune.json", "trials", "trial.json"  # task tune: the result, the child trial folders

STATES = ("queued", "running", "finished", "stopped", "failed", "interrupted")
ACTIVE = ("queued", "running")
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


@dataclass
class RunResult:
    """What a finished (or stopped) run produced: the engine's answer to the App layer."""

    output: Path
    state: str  # "finished" | "stopped"
    metrics: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    best_epoch: float | None = None
    resumed_from: str | None = None
    model: Any = field(default=None, repr=False)  # the trained ASTForAudioClassification (best weights)
    config: Any = None  # the TrainConfig with what "auto" resolved to (input length), for config.json
    time_limit_reached: bool = False  # stopped at the CLI's --time-limit (astapp.jobs.slicing), resumable


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when missing, unreadable or half-written."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def number(value: object) -> float | None:
    """A timestamp or metric as written (a JSON number), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_tail(path: Path, n: int = 50, max_bytes: int = 256_000) -> list[str]:
    """The last `n` lines of a text file (reads at most `max_bytes` from the end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-n:] if n > 0 else []


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """Events recorded in history.jsonl (a torn last line from a crash is skipped)."""
    out: list[dict[str, Any]] = []
    try:
        text = (Path(run_dir) / HISTORY).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


def metrics_summary(run_dir: Path) -> dict[str, float]:
    """accuracy, f1_macro and best_epoch from metrics.json, when the run has evaluated; a cross-validation
    run without a final model gives its mean scores (and "cv": 1)."""
    m = read_json(Path(run_dir) / METRICS)
    if not m:
        mean = read_json(Path(run_dir) / CV).get("mean") or {}
        out = {k: float(mean[k]) for k in ("accuracy", "f1_macro") if number(mean.get(k)) is not None}
        return {**out, "cv": 1.0} if out else {}
    return {k: float(m[k]) for k in ("accuracy", "f1_macro", "best_epoch") if number(m.get(k)) is not None}


def last_checkpoint(run_dir: Path) -> Path | None:
    """The highest complete `checkpoints/checkpoint-N` (has trainer_state.json and weights)."""
    ck_root = Path(run_dir) / CHECKPOINTS
    best: tuple[int, Path] | None = None
    if not ck_root.is_dir():
        return None
    for d in ck_root.iterdir():
        m = CHECKPOINT.match(d.name)
        if not m or not d.is_dir() or not (d / "trainer_state.json").is_file():
            continue
        if not any((d / w).is_file() for w in WEIGHT_FILES):
            continue
        step = int(m.group(1))
        if best is None or step > best[0]:
            best = (step, d)
    return best[1] if best else None


def resume_checkpoint(run_dir: Path, resume: str) -> Path | None:
    """The checkpoint a run resumes from: `resume` names one, or "latest" (the newest complete one)."""
    if not resume:
        return None
    if resume == "latest":
        ckpt = last_checkpoint(run_dir)
        if ckpt is None:
            raise TrainingError(f"There is no checkpoint to resume from in {Path(run_dir) / CHECKPOINTS}; "
                                "start a new run instead.")
        return ckpt
    ckpt = Path(resume)
    if not (ckpt / "trainer_state.json").is_file():
        raise TrainingError(f"{resume!r} is not a training checkpoint (no trainer_state.json); give a "
                            "checkpoints/checkpoint-N folder of an earlier run, or 'latest'.")
    return ckpt


def has_model(run_dir: Path) -> bool:
    """True only for a complete `model/` export (config plus weights)."""
    model = Path(run_dir) / MODEL
    return (model / "config.json").is_file() and any((model / w).is_file() for w in WEIGHT_FILES)


def is_run(folder: Path) -> bool:
    """A run folder (not a hidden cache folder, not a link) that has a status."""
    return folder.is_dir() and not folder.is_symlink() and not folder.name.startswith(".") and \
        (folder / STATUS).exists()
