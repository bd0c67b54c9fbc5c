"""`detect --ray`: the detection job of `astapp.detection.run` spread over Ray workers, with the same records.

The single-machine run (`detect_files`) and this one share everything but the loop: the file list and its
shard, the per-file unit (`detect_one`, called inside a worker that loaded the model once), the records
(`write_record`, written here by the driver alone, as each file comes back) and the merged outputs
(`merge_outputs`, rebuilt from the records in file order). So a job can be started on one machine, resumed
on a cluster and finished on a laptop, and its `events.csv` is byte for byte the single-machine one.

One difference a user sees: zips are extracted inside the output folder (workers on other machines must
read them; the output folder belongs on shared storage). An output folder holding records of another model
is refused on both paths (`check_model`), so a job never mixes models.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.events import EventSink, make_event
from astapp.core.fsutil import atomic_write_text
from astapp.detection.detect import DetectSettings, DetectSettingsError
from astapp.detection.formats import FORMATS
from astapp.detection.run import (
    RECORD_VERSION,
    SUMMARY,
    DetectSummary,
    check_model,
    content_id,
    describe_model,
    detect_one,
    load_record,
    merge_outputs,
    model_id,
    open_scorer,
    shard_items,
    write_record,
)
from astapp.scale.cluster import preflight
from astapp.scale.runner import FileFn, run_files


@dataclass(frozen=True)
class DetectJob:
    """What each worker needs: the model, the backend, the settings, and where each file is."""

    model: str
    backend: str
    int8: bool
    threads: int
    settings: DetectSettings
    paths: dict[str, str | None]

    def open(self) -> FileFn:
        scorer = open_scorer(self.model, self.backend, self.int8, self.threads if self.backend == "onnx" else 0)
        ident = {"model": model_id(scorer), "settings": self.settings.to_dict()}

        def one(name: str) -> Any:
            raw = self.paths.get(name)
            path = Path(raw) if raw else None
            identity = {**ident, "content": content_id(path) if path is not None and path.is_file() else None}
            return detect_one(scorer, name, path, self.settings, identity)

        return one


@dataclass
class DetectStore:
    """The driver's side: which files are finished, and their records written as they come back."""

    output: Path
    paths: dict[str, Path | None]
    ident: dict[str, Any]
    events: EventSink | None = None
    done: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    audio_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def identity(self, name: str) -> dict[str, Any]:
        path = self.paths.get(name)
        return {**self.ident, "content": content_id(path) if path is not None and path.is_file() else None}

    def pending(self, files: list[str]) -> list[str]:
        self.todo = [n for n in files if not finished(load_record(self.output, n), self.identity(n))]
        return self.todo

    def save(self, name: str, result: Any) -> None:
        record, det = result
        if record.get("model") != self.ident["model"]:  # a worker machine with another copy of the model
            self.fail(name, f"The worker that analysed {name} has another model (id {record.get('model')}, "
                            f"not {self.ident['model']}); give every machine the same model folder (shared storage).")
            return
        write_record(self.output, name, record, det)
        self._progress(name, float(record.get("duration") or 0.0))

    def fail(self, name: str, sentence: str) -> None:
        record = {"version": RECORD_VERSION, "file": name, **self.identity(name), "status": "failed", "events": [],
                  "duration": 0.0, "notes": [], "error": sentence}
        write_record(self.output, name, record)
        self._progress(name, 0.0)

    def _progress(self, name: str, duration: float) -> None:
        self.done.append(name)
        self.audio_s += duration
        if self.events is not None:
            wall = time.perf_counter() - self.started
            speed = self.audio_s / wall if wall > 0 else 0.0
            self.events(make_event("stage", stage="detect", files_done=len(self.done), files=len(self.paths),
                                   hours_done=self.audio_s / 3600, speed=speed, file=name,
                                   message=f"{len(self.done)}/{len(self.paths)} files, {self.audio_s / 3600:.2f} h "
                                           f"of audio, {speed:.1f}x real time (Ray)"))


def finished(record: dict[str, Any] | None, identity: dict[str, Any]) -> bool:
    """The record is done by this version, model, settings and file content (as `detect_files` decides)."""
    return bool(record) and record.get("status") == "done" and record.get("version") == RECORD_VERSION \
        and all(record.get(k) == v for k, v in identity.items())


def detect_on_ray(model: str | Path, paths: Sequence[str | Path] | str | Path, output: str | Path,
                  settings: DetectSettings | None = None, backend: str = "torch", int8: bool = False,
                  events: EventSink | None = None, stop: threading.Event | None = None,
                  shard: tuple[int, int] | None = None, fmt: str = "csv", threads: int = 0, ray: str = "",
                  workers: int = 0, on_workers: Callable[[list[Any]], None] | None = None) -> DetectSummary:
    """`detect_files` with the files analysed by `workers` Ray actors of `threads` CPUs each (0: 1), on a
    local Ray (`ray` '') or a cluster ('auto', HOST:PORT, ray://HOST:PORT)."""
    from astapp.predict.sources import expand_sources

    preflight(ray)
    settings = (settings or DetectSettings()).validate()
    if fmt not in FORMATS:
        raise DetectSettingsError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r}).")
    output = Path(output)
    scorer = open_scorer(str(model), backend, int8, threads)  # named here exactly as detect_files names it
    ident = {"model": model_id(scorer), "settings": settings.to_dict()}
    del scorer
    output.mkdir(parents=True, exist_ok=True)
    check_model(output, ident["model"], describe_model(model, backend, int8))  # as detect_files: one model a folder
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".sources-", dir=output) as tmp:  # zips: where every worker sees them
        items = shard_items(expand_sources(paths, Path(tmp)), shard)
        names = [name for name, _ in items]
        store = DetectStore(output, dict(items), ident, events)
        job = DetectJob(str(model), backend, int8, max(1, threads), settings,
                        {name: str(p) if p is not None else None for name, p in items})
        ran = run_files(job, names, store, ray=ray, workers=workers, stop=stop, on_workers=on_workers)
        summary = merge_outputs(output, names, fmt, shard)
    wall = time.perf_counter() - started
    done, todo = set(store.done), set(store.todo)
    summary.done = [n for n in names if n in done]
    summary.skipped = [n for n in names if n not in todo]
    summary.stopped, summary.seconds = ran.stopped, round(wall, 3)
    summary.speed = round(store.audio_s / wall, 3) if wall > 0 else 0.0
    name = SUMMARY if shard is None else SUMMARY.replace(".json", f"-shard-{shard[0]}-of-{shard[1]}.json")
    atomic_write_text(output / name, json.dumps(summary.to_dict(), ensure_ascii=False, indent=1))
    return summary
