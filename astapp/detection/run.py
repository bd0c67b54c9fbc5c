"""Many recordings -> per-file records, merged events and a summary: resumable, one bad file never stops it.

Each finished file leaves `records/<key>.json` (its events, duration, notes or its error; which model and
settings made it) and `records/<key>.npz` (its window times and scores, for the threshold sweep), written
atomically once the file is done: a rerun skips files whose record matches (same content, model and
settings), and a file interrupted midway simply starts again. The merged outputs are rebuilt from the
records every time, in file order, so a resumed job writes exactly what an uninterrupted one would:
`events.csv` (always), the chosen format (`events.jsonl`, or one Audacity label track / Raven selection
table per recording under `audacity/` or `raven/`) and `summary.json` (counts and events per hour per
class, bad files). `shard=(i, n)` (0 <= i < n) takes every n-th file of the sorted list from the i-th, so
n jobs on a cluster cover every file exactly once; their merged outputs carry a `-shard-i-of-n` suffix
and a final run without a shard (all records present) writes the whole job's.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AstappError, explain
from astapp.core.events import EventSink, make_event
from astapp.core.fsutil import atomic_write_bytes, atomic_write_text
from astapp.detection.detect import (
    Detections,
    DetectionStopped,
    DetectSettings,
    DetectSettingsError,
    detect_recording,
)
from astapp.detection.events import Event
from astapp.detection.formats import EXTENSIONS, FORMATS, write_events
from astapp.detection.scores import Scorer

RECORDS = "records"
SUMMARY = "summary.json"
MODEL_FILE = "model.json"  # which model made the records (path, backend, id)
RECORD_VERSION = 1


@dataclass
class DetectSummary:
    """What a detection job did: files done, skipped (already done) and failed, the events and their rates."""

    files: int
    done: list[str]
    skipped: list[str]
    failed: list[tuple[str, str]]  # (file, one-sentence reason)
    hours: float  # audio analysed (all finished files, skipped ones included)
    events: int
    counts: dict[str, int]
    per_hour: dict[str, float]
    seconds: float  # wall time of this call
    speed: float  # hours of audio analysed in this call per hour of wall time (x real time)
    outputs: list[str] = field(default_factory=list)
    stopped: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' (0 <= I < N) -> (I, N); one sentence when it is not one."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not int(m[1]) < int(m[2]):
        raise DetectSettingsError(f"--shard takes I/N with 0 <= I < N (e.g. 0/4 .. 3/4), not {text!r}.")
    return int(m[1]), int(m[2])


def shard_items(items: list[tuple[str, Path | None]], shard: tuple[int, int] | None) -> list[tuple[str, Path | None]]:
    """Every n-th item of the list sorted by name, from the i-th (all of them without a shard)."""
    items = sorted(items, key=lambda t: t[0])
    return items if shard is None else items[shard[0]::shard[1]]


def distinct_items(items: list[tuple[str, Path | None]], tmp: Path) -> tuple[list[tuple[str, Path | None]], list[str]]:
    """One item per file, each with a name of its own: records and outputs are keyed by the name.

    The same file given twice (two paths, or a file and its folder) is analysed once, and said. Two different
    files with one name (`rec.wav` in two folders given side by side, two uploads called `rec.wav`) would
    share a record (one overwriting the other, the other listed twice), so each later one is named by as
    many of its folders as tell it apart (`dayB/rec.wav`); files extracted from a zip get `#2`, `#3` instead.
    Depends only on the list, so every shard of a job names every file alike.
    """
    seen: dict[Path, str] = {}
    kept: list[tuple[str, Path | None]] = []
    notes: list[str] = []
    for name, path in items:
        real = path.resolve() if path is not None else None
        if real is not None and real in seen:
            notes.append(f"{name} is the same file as {seen[real]}; it was analysed once.")
            continue
        if real is not None:
            seen[real] = name
        kept.append((name, path))
    taken = {name for name, _ in kept}
    out: list[tuple[str, Path | None]] = []
    used: set[str] = set()
    for name, path in kept:
        if name in used:
            name = _other_name(name, path, tmp, taken)
            taken.add(name)
        used.add(name)
        out.append((name, path))
    return out, notes


def _other_name(name: str, path: Path | None, tmp: Path, taken: set[str]) -> str:
    parts = Path(path).parts if path is not None and Path(tmp) not in Path(path).parents else ()
    depth = len(Path(name).parts)
    for k in range(depth + 1, len(parts) + 1):
        candidate = "/".join(parts[-k:]).lstrip("/")
        if candidate not in taken:
            return candidate
    n = 2
    while f"{name}#{n}" in taken:
        n += 1
    return f"{name}#{n}"


def content_id(path: Path) -> str:
    """The file's size and a hash of its first and last 64 KiB: cheap, survives copies and zip extraction."""
    size = path.stat().st_size
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 16))
        if size > 1 << 17:
            f.seek(-(1 << 16), 2)
            h.update(f.read(1 << 16))
    return h.hexdigest()[:16]


def model_id(scorer: Any) -> str:
    """Which model (and backend) scores: a hash of the export's config and weights' sizes, or the scorer's own."""
    if getattr(scorer, "model_id", None):
        return str(scorer.model_id)
    folder = Path(getattr(scorer, "folder", "."))
    h = hashlib.sha1(type(getattr(scorer, "backend", scorer)).__name__.encode())
    for name in ("config.json", "model.safetensors"):
        p = folder / name
        if p.is_file():
            h.update(p.read_bytes() if name == "config.json" else str(p.stat().st_size).encode())
    h.update(str(getattr(getattr(scorer, "backend", None), "quantized", "")).encode())
    return h.hexdigest()[:16]


class ModelMismatchError(AstappError):
    """The output folder holds detections of another model."""


def describe_model(model: Any, backend: str = "torch", int8: bool = False) -> str:
    """How a user named the model (path and backend), for the sentence that refuses another one."""
    if not isinstance(model, (str, Path)):  # a loaded scorer (the app's): its folder when it has one
        return str(getattr(model, "folder", "") or type(model).__name__)
    return f"{model} ({backend}{', int8' if int8 else ''})"


def check_model(output: str | Path, model: str, described: str = "") -> None:
    """Refuse an output folder whose records another model made (its id is in every record; MODEL_FILE says
    which model that is), so one folder never mixes two models' detections; else note this model there."""
    output = Path(output)
    for path in sorted((output / RECORDS).glob("*.json")):
        try:
            other = json.loads(path.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError):
            continue
        if other and other != model:
            raise ModelMismatchError(
                f"{output} holds detections made by another model ({_maker(output, other)}), not by "
                f"{described or 'the model given'} (id {model}); use a new --output folder for this model, or give "
                "the model that made them to finish this job.")
    if described and output.is_dir():
        atomic_write_text(output / MODEL_FILE, json.dumps({"model": model, "source": described}, ensure_ascii=False))


def _maker(output: Path, model: str) -> str:
    try:
        noted = json.loads((output / MODEL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        noted = {}
    return f"{noted['source']}, id {model}" if noted.get("model") == model and noted.get("source") else f"id {model}"


def record_key(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-80:]
    return f"{stem}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def load_record(output: Path, name: str) -> dict[str, Any] | None:
    p = output / RECORDS / f"{record_key(name)}.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_scores(output: Path, name: str) -> dict[str, np.ndarray] | None:
    """The record's window times, scores and unknown scores (None when it has none)."""
    p = output / RECORDS / f"{record_key(name)}.npz"
    if not p.is_file():
        return None
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def write_record(output: Path, name: str, record: dict[str, Any], det: Detections | None = None) -> None:
    """The scores first, then the record that points at them (atomic both: a crash leaves no half record)."""
    folder = output / RECORDS
    folder.mkdir(parents=True, exist_ok=True)
    key = record_key(name)
    if det is not None:
        arrays = {"times": det.times, "scores": det.scores, "labels": np.asarray(det.labels)}
        if det.unknown is not None:
            arrays["unknown"] = det.unknown
        with tempfile.SpooledTemporaryFile() as buf:
            np.savez_compressed(buf, **arrays)
            buf.seek(0)
            atomic_write_bytes(folder / f"{key}.npz", buf.read())
    atomic_write_text(folder / f"{key}.json", json.dumps(record, ensure_ascii=False, indent=1))


def record_events(record: dict[str, Any]) -> list[Event]:
    return [Event(e["label"], e["start"], e["end"], e["score"], record["file"]) for e in record.get("events", [])]


def detect_one(scorer: Scorer, name: str, path: Path | None, settings: DetectSettings, identity: dict[str, Any],
               stop: threading.Event | None = None) -> tuple[dict[str, Any], Detections | None]:
    """The per-file unit (this process, a shard or a Ray task): (its record, its detections or None)."""
    record: dict[str, Any] = {"version": RECORD_VERSION, "file": name, **identity, "status": "failed",
                              "events": [], "duration": 0.0, "notes": []}
    if path is None:
        record["error"] = f"{name}: file not found; check the path."
        return record, None
    started = time.perf_counter()
    try:
        det = detect_recording(scorer, path, settings, name=name, stop=stop)
    except DetectionStopped:
        raise
    except Exception as e:  # noqa: BLE001 - one bad file is listed, the others finish
        record["error"] = explain(e)
        return record, None
    record.update(status="done", duration=det.duration, notes=det.notes, labels=det.labels,
                  seconds=round(time.perf_counter() - started, 3), window=det.window, hop=det.hop,
                  multi_label=det.multi_label, model_thresholds=det.model_thresholds,
                  unknown_threshold=det.unknown_threshold,
                  events=[{"label": e.label, "start": e.start, "end": e.end, "score": e.score} for e in det.events])
    return record, det


def open_scorer(model: str | Path | Scorer, backend: str = "torch", int8: bool = False, threads: int = 0,
                batch_size: int = 8) -> Scorer:
    """A loaded scorer as is; a model folder, zip or run folder as a Predictor on the chosen backend."""
    if not isinstance(model, (str, Path)):
        return model
    from astapp.predict.predictor import Predictor

    return Predictor(model, backend=backend, quantized=int8, threads=threads, batch_size=batch_size)


def _finished(record: dict[str, Any] | None, identity: dict[str, Any]) -> bool:
    return bool(record) and record.get("status") == "done" and record.get("version") == RECORD_VERSION \
        and all(record.get(k) == v for k, v in identity.items())


def _progress(events: EventSink | None, done: int, total: int, audio_s: float, wall_s: float, name: str) -> None:
    if events is None:
        return
    speed = audio_s / wall_s if wall_s > 0 else 0.0
    events(make_event("stage", stage="detect", files_done=done, files=total, hours_done=audio_s / 3600,
                      speed=speed, file=name,
                      message=f"{done}/{total} files, {audio_s / 3600:.2f} h of audio, {speed:.1f}x real time"))


def detect_files(model: str | Path | Scorer, paths: Sequence[str | Path] | str | Path, output: str | Path,
                 settings: DetectSettings | None = None, backend: str = "torch", int8: bool = False,
                 events: EventSink | None = None, stop: threading.Event | None = None,
                 shard: tuple[int, int] | None = None, fmt: str = "csv", threads: int = 0) -> DetectSummary:
    """Detect events in files, folders and zips of recordings into `output` (see the module doc)."""
    from astapp.predict.sources import expand_sources

    settings = (settings or DetectSettings()).validate()
    if fmt not in FORMATS:
        raise DetectSettingsError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r}).")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    scorer = open_scorer(model, backend, int8, threads)
    ident = {"model": model_id(scorer), "settings": settings.to_dict()}
    check_model(output, ident["model"], describe_model(model, backend, int8))  # never two models in one folder
    started, audio_s, stopped = time.perf_counter(), 0.0, False
    done: list[str] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="astapp-detect-") as tmp:
        items, same = distinct_items(expand_sources(paths, Path(tmp)), Path(tmp))
        items = shard_items(items, shard)
        for n, (name, path) in enumerate(items):
            identity = {**ident, "content": content_id(path) if path is not None else None}
            if _finished(load_record(output, name), identity):
                skipped.append(name)
                continue
            try:
                record, det = detect_one(scorer, name, path, settings, identity, stop)
            except DetectionStopped:
                stopped = True
                break
            write_record(output, name, record, det)
            done.append(name)
            audio_s += float(record.get("duration") or 0.0)
            _progress(events, n + 1, len(items), audio_s, time.perf_counter() - started, name)
        summary = merge_outputs(output, [name for name, _ in items], fmt, shard)
        summary.notes = same + summary.notes
    wall = time.perf_counter() - started
    summary.done, summary.skipped, summary.stopped, summary.seconds = done, skipped, stopped, round(wall, 3)
    summary.speed = round(audio_s / wall, 3) if wall > 0 else 0.0
    atomic_write_text(output / _suffixed(SUMMARY, shard), json.dumps(summary.to_dict(), ensure_ascii=False, indent=1))
    return summary


def _suffixed(name: str, shard: tuple[int, int] | None) -> str:
    if shard is None:
        return name
    stem, dot, ext = name.partition(".")
    return f"{stem}-shard-{shard[0]}-of-{shard[1]}{dot}{ext}"


def per_recording_name(name: str) -> str:
    """A recording's own output file stem: its name without extension, folders joined by '__'."""
    base = name.rsplit(".", 1)[0] if "." in Path(name).name else name
    return re.sub(r"[^\w.-]+", "_", base.replace("/", "__"))


def merge_outputs(output: Path, names: list[str], fmt: str = "csv",
                  shard: tuple[int, int] | None = None) -> DetectSummary:
    """The merged outputs of the records of `names`, in order, and the summary they add up to."""
    merged: list[Event] = []
    failed: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    hours, notes, written = 0.0, [], []
    for name in names:
        record = load_record(output, name)
        if record is None:
            continue
        if record.get("status") != "done":
            failed.append((name, str(record.get("error") or "failed")))
            continue
        evs = record_events(record)
        hours += float(record.get("duration") or 0.0) / 3600
        notes += record.get("notes") or []
        for e in evs:
            counts[e.label] = counts.get(e.label, 0) + 1
        merged += evs
        if fmt in ("audacity", "raven"):
            sub = output / fmt / f"{per_recording_name(name)}{EXTENSIONS[fmt]}"
            sub.parent.mkdir(parents=True, exist_ok=True)
            written.append(str(write_events(evs, sub, fmt)))
    written.insert(0, str(write_events(merged, output / _suffixed("events.csv", shard), "csv")))
    if fmt == "jsonl":
        written.append(str(write_events(merged, output / _suffixed("events.jsonl", shard), "jsonl")))
    per_hour = {k: round(v / hours, 3) if hours > 0 else 0.0 for k, v in sorted(counts.items())}
    return DetectSummary(files=len(names), done=[], skipped=[], failed=failed, hours=round(hours, 6),
                         events=len(merged), counts=dict(sorted(counts.items())), per_hour=per_hour, seconds=0.0,
                         speed=0.0, outputs=written, notes=notes)
