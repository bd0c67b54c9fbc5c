"""Runs side by side: one row per run (dataset, model, mode, key settings, scores, time, size, state), the
settings that differ between chosen runs, whether their validation splits are the same, and their curves.

Everything is read from the run folders (config.json, metrics.json, cv.json, history.jsonl, model/unknown.json,
tune.json), so the table is right after a restart and for a folder of CLI runs alike::

    rows = [row_of(info.path, info.name, info.state) for info in list_runs(root, owner)]
    changed = differing_settings({r.id: r.config for r in rows[:2]})   # only the settings that differ
    same = comparable(rows[:2])                                         # one validation split?
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.runfolder import (
    CONFIG,
    CV,
    HISTORY,
    META,
    METRICS,
    MODEL,
    STATUS,
    TUNE,
    is_run,
    number,
    read_history,
    read_json,
)

UNKNOWN = "unknown.json"  # in model/: the unknown score (astapp.evaluation.unknown)
# Settings that say where a run lives or how it was restarted, not how it trained: never a "difference".
NOT_SETTINGS = frozenset({"output", "resume"})
# What decides which clips validate: runs that agree on all of these (and the dataset) share one split.
SPLIT_KEYS = ("val_split", "val_fold", "seed", "task", "cv_folds", "multi_label", "audio.long_clips",
              "audio.max_seconds", "audio.min_seconds")
KEY_SETTINGS = ("epochs", "lr", "batch_size", "weight_decay", "max_length", "augment.preset", "augment.mixup")
CURVE_METRICS = ("f1_macro", "accuracy", "map", "loss")


@dataclass
class RunRow:
    """One run as the Runs table shows it."""

    id: str
    name: str
    state: str
    created: float
    dataset: str  # the dataset folder's name
    dataset_path: str
    dataset_version: str | None  # when the run recorded one (a content hash, a Hub revision)
    model: str
    mode: str
    task: str  # train | cv | tune
    settings: dict[str, Any]  # KEY_SETTINGS
    accuracy: float | None = None
    f1_macro: float | None = None
    map: float | None = None
    accuracy_std: float | None = None  # cross-validation: the spread over folds
    f1_std: float | None = None
    unknown_auroc: float | None = None  # where the unknown score was calibrated and its AUROC recorded
    unknown_method: str | None = None  # without an AUROC: the method and its threshold's keep share
    train_seconds: float | None = None
    size_mb: float = 0.0
    config: dict[str, Any] = field(default_factory=dict, repr=False)  # flattened config.json

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"augment": {"mixup": 0.5}} -> {"augment.mixup": 0.5} (the setting paths of `core.config.SETTINGS`)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k in ("audio", "augment"):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def folder_mb(path: Path) -> float:
    """The size of a folder on disk in MB (links not followed; files vanishing meanwhile are skipped)."""
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return round(total / 1e6, 2)


def _scores(run: Path) -> dict[str, float | None]:
    """Accuracy, macro F1, mAP (metrics.json), else the cross-validation mean and std, else a tune's best."""
    m = read_json(run / METRICS)
    if m:
        return {k: number(m.get(k)) for k in ("accuracy", "f1_macro", "map")} | \
            {"train_seconds": number(m.get("total_seconds")) or number(m.get("train_seconds"))}
    cv = read_json(run / CV)
    if cv.get("mean"):
        mean, std = cv.get("mean") or {}, cv.get("std") or {}
        return {"accuracy": number(mean.get("accuracy")), "f1_macro": number(mean.get("f1_macro")),
                "accuracy_std": number(std.get("accuracy")), "f1_std": number(std.get("f1_macro")),
                "train_seconds": number(cv.get("total_seconds"))}
    tune = read_json(run / TUNE)
    if tune:
        best = tune.get("best") or {}
        return {tune.get("metric") if tune.get("metric") in ("accuracy", "f1_macro") else "f1_macro":
                number(best.get("value")), "train_seconds": number(tune.get("seconds"))}
    return {}


def _unknown(run: Path) -> tuple[float | None, str | None]:
    """(AUROC known vs other sounds, what the table shows without one). The AUROC exists only where
    `calibrate --other` scored the user's other sounds (unknown.json's calibration.auroc); without them the
    table shows what there is: the method and the share of known clips its threshold keeps."""
    u = read_json(run / MODEL / UNKNOWN)
    if not u:
        return None, None
    cal = u.get("calibration") or {}
    auroc = number(cal.get("auroc"))
    if auroc is None:
        auroc = number(u.get("auroc"))
    method = str(u.get("method") or "") or None
    keep = number(u.get("keep"))
    if method and u.get("threshold") is not None and keep is not None:
        return auroc, f"{method}, keeps {100 * keep:.0f}% (no AUROC: calibrate --other)"
    return auroc, method and f"{method}, no threshold"


def row_of(run: Path, name: str | None = None, state: str | None = None) -> RunRow:
    """One run folder as a `RunRow` (what is missing stays None: a run that never evaluated has no scores)."""
    run = Path(run)
    cfg = flatten(read_json(run / CONFIG))
    meta, status = read_json(run / META), read_json(run / STATUS)
    data = str(cfg.get("data") or "")
    auroc, method = _unknown(run)
    task = "tune" if (run / TUNE).is_file() else str(cfg.get("task") or "train")
    row = RunRow(id=run.name, name=name or str(meta.get("name") or run.name),
                 state=state or str(status.get("state") or "unknown"),
                 created=number(meta.get("created")) or 0.0, dataset=Path(data).name if data else "",
                 dataset_path=data, dataset_version=_version(cfg), model=str(cfg.get("model") or ""),
                 mode=str(cfg.get("mode") or ""), task=task,
                 settings={k: cfg.get(k) for k in KEY_SETTINGS if k in cfg}, unknown_auroc=auroc,
                 unknown_method=method, size_mb=folder_mb(run), config=cfg)
    for key, value in _scores(run).items():
        setattr(row, key, value)
    return row


def _version(cfg: dict[str, Any]) -> str | None:
    v = cfg.get("dataset_version") or cfg.get("data_version")
    return str(v) if v else None


def rows_in(folder: Path) -> list[RunRow]:
    """Every run folder directly inside `folder` (a folder of CLI runs), newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    rows = [row_of(d) for d in folder.iterdir() if is_run(d)]
    return sort_rows(rows, "created")


SORT_KEYS = ("created", "name", "accuracy", "f1_macro", "map", "train_seconds", "size_mb", "state", "mode")


TEXT_KEYS = ("name", "state", "mode")  # sorted A to Z; the other columns best / newest / biggest first


def sort_rows(rows: list[RunRow], key: str = "created", descending: bool | None = None) -> list[RunRow]:
    """Rows sorted by one column; runs without that value (no score yet) always come last."""
    if key not in SORT_KEYS:
        key = "created"
    if descending is None:
        descending = key not in TEXT_KEYS
    known = [r for r in rows if getattr(r, key) is not None]
    unknown = [r for r in rows if getattr(r, key) is None]
    known.sort(key=lambda r: (getattr(r, key), r.id), reverse=descending)
    return known + unknown


def differing_settings(configs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{setting: {run id: value}} for exactly the settings whose values are not the same in every run
    (a setting one run lacks counts as None there); where a run lives is not a setting."""
    keys = sorted({k for cfg in configs.values() for k in cfg} - NOT_SETTINGS)
    out: dict[str, dict[str, Any]] = {}
    for k in keys:
        values = {rid: cfg.get(k) for rid, cfg in configs.items()}
        if len({repr(v) for v in values.values()}) > 1:
            out[k] = values
    return out


def split_key(row: RunRow) -> tuple[Any, ...]:
    """What decides a run's validation clips: the dataset (and its version) and the split settings."""
    return (row.dataset_path, row.dataset_version, *(repr(row.config.get(k)) for k in SPLIT_KEYS))


def comparable(rows: list[RunRow]) -> bool:
    """Whether the runs validated on the same clips (same dataset version and split settings)."""
    return len({split_key(r) for r in rows}) <= 1


def split_groups(rows: list[RunRow]) -> dict[str, int]:
    """Run id -> a small number per distinct validation split (1, 2, ...), in row order: equal numbers compare."""
    seen: dict[tuple[Any, ...], int] = {}
    return {r.id: seen.setdefault(split_key(r), len(seen) + 1) for r in rows}


def curve(run: Path, metric: str = "f1_macro") -> tuple[list[float], list[float]]:
    """(epochs, values) of one validation metric from the run's history.jsonl (resumed runs: the last value
    per epoch); empty when the run never evaluated."""
    points: dict[float, float] = {}
    if not (Path(run) / HISTORY).is_file():
        return [], []
    for ev in read_history(run):
        epoch, value = number(ev.get("epoch")), number(ev.get(metric))
        if ev.get("type") == "eval" and epoch is not None and value is not None:
            points[epoch] = value
    xs = sorted(points)
    return xs, [points[x] for x in xs]
