"""A detection output scored against the user's reference annotations, and thresholds for a false-alarm target.

References come as one CSV/JSONL with a `file` column, or as a folder (or single file) of per-recording
Audacity label tracks / Raven selection tables named after the recordings (`night1.txt`,
`night1.Table.1.selections.txt` for `night1.wav`). Only recordings that have a reference are scored; the
hours of audio come from the detection records. The threshold sweep re-cuts events from the scores each
record kept (no model run): per class, the lowest `on` threshold whose false alarms per hour stay at or
under the target (the most recall the target allows), the others held at their current thresholds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AstappError
from astapp.detection.events import Event, EventSettings, detect_events
from astapp.detection.formats import parse_events, recording_stem
from astapp.detection.run import SUMMARY, load_record, load_scores, per_recording_name, record_events
from astapp.detection.scoring import COLLAR, EventScores, score_events

SWEEP = [round(x, 2) for x in np.arange(0.05, 1.0, 0.05)]
ANNOTATION_SUFFIXES = (".txt", ".csv", ".jsonl", ".tsv")


class ReferenceMismatchError(AstappError):
    """References that cannot be paired with the detection output."""


def _stem(name: str) -> str:
    return Path(name).name.rsplit(".", 1)[0] if "." in Path(name).name else Path(name).name


def load_references(reference: str | Path, names: list[str]) -> dict[str, list[Event]]:
    """file name (as the detection output names it) -> its reference events."""
    ref = Path(reference)
    if not ref.exists():
        raise ReferenceMismatchError(f"The reference {ref} does not exist; give an annotation file or a folder of them.")
    by_key = {}
    for n in names:
        by_key.setdefault(n, n)
        by_key.setdefault(per_recording_name(n), n)
        by_key.setdefault(_stem(n), n)
    files = sorted(p for p in ref.rglob("*") if p.is_file() and p.suffix.lower() in ANNOTATION_SUFFIXES) \
        if ref.is_dir() else [ref]
    out: dict[str, list[Event]] = {}
    for path in files:
        stem = recording_stem(path)
        for e in parse_events(path, default_file=stem):
            name = by_key.get(e.file) or by_key.get(_stem(e.file))
            if name is not None:
                out.setdefault(name, []).append(Event(e.label, e.start, e.end, e.score, name))
    if not out:
        raise ReferenceMismatchError(f"No reference in {ref.name} names a recording of this detection output (e.g. "
                              f"{names[0] if names else 'night1.wav'}); name each annotation file after its "
                              "recording, or give a CSV with a file column.")
    return out


def output_names(output: Path) -> list[str]:
    """The recordings a detection output holds records for (from its summary, else its records)."""
    records = sorted((output / "records").glob("*.json"))
    names = []
    for p in records:
        try:
            names.append(json.loads(p.read_text(encoding="utf-8"))["file"])
        except (OSError, ValueError, KeyError):
            continue
    if not names:
        raise ReferenceMismatchError(f"{output} holds no detection records; run `detect --output {output}` first.")
    return names


def score_output(output: str | Path, reference: str | Path, collar: float = COLLAR,
                 target_fa_per_hour: float | None = None, settings: EventSettings | None = None) -> dict[str, Any]:
    """Scores of a detection output folder against references; with a target, the sweep's thresholds too."""
    output = Path(output)
    if not output.is_dir() or not ((output / SUMMARY).is_file() or (output / "records").is_dir()):
        raise ReferenceMismatchError(f"{output} is not a detection output folder; pass the --output folder of detect.")
    names = output_names(output)
    refs = load_references(reference, names)
    records = {n: load_record(output, n) for n in refs}
    done = {n: r for n, r in records.items() if r and r.get("status") == "done"}
    hours = sum(float(r.get("duration") or 0) for r in done.values()) / 3600
    ests = {n: record_events(r) for n, r in done.items()}
    scores = score_events({n: refs[n] for n in done}, ests, hours, collar)
    result: dict[str, Any] = {"scores": scores.to_dict(), "failed": sorted(set(refs) - set(done))}
    if target_fa_per_hour is not None:
        result["sweep"] = sweep(output, {n: refs[n] for n in done}, done, hours, collar, float(target_fa_per_hour),
                                settings)
    return result


def _events_at(arrays: dict[str, Any], records: dict[str, dict[str, Any]], s: EventSettings) -> dict[str, list[Event]]:
    """Each recording's events re-cut from its kept scores under settings `s` (no model run)."""
    out = {}
    for name, rec in records.items():
        arr = arrays[name]
        events, _ = detect_events(arr["times"], arr["scores"], list(rec["labels"]), float(rec["duration"]),
                                  bool(rec.get("multi_label")), dict(rec.get("model_thresholds") or {}), s,
                                  arr.get("unknown"), rec.get("unknown_threshold"), name, float(rec.get("window") or 0))
        out[name] = events
    return out


def sweep(output: Path, refs: dict[str, list[Event]], records: dict[str, dict[str, Any]], hours: float,
          collar: float, target: float, settings: EventSettings | None = None) -> dict[str, Any]:
    """Per class: the lowest threshold with false alarms/hour <= target, and its scores (see the module doc)."""
    base = settings if settings is not None else _settings_of(records)
    arrays = {}
    for name in records:
        arrays[name] = load_scores(output, name)
        if arrays[name] is None:
            raise ReferenceMismatchError(f"The record of {name} has no scores to sweep; run detect again.")
    labels = sorted({lab for r in records.values() for lab in r.get("labels", [])})
    chosen: dict[str, dict[str, Any]] = {}
    for label in labels:
        best = None
        for t in SWEEP:
            s = _with_threshold(base, label, t)
            m: EventScores = score_events(refs, _events_at(arrays, records, s), hours, collar)
            cls = m.per_class.get(label, {"fa_per_hour": 0.0, "recall": 0.0, "precision": 0.0, "f1": 0.0, "fp": 0})
            if (cls.get("fa_per_hour") or 0.0) <= target:
                best = {"threshold": t, **{k: cls.get(k) for k in ("precision", "recall", "f1", "fa_per_hour", "fp")}}
                break
        chosen[label] = best or {"threshold": None, "note": f"no threshold keeps {label} under {target:g} false "
                                                             "alarms per hour"}
    thresholds = {k: v["threshold"] for k, v in chosen.items() if v.get("threshold") is not None}
    final = score_events(refs, _events_at(arrays, records, _with_thresholds(base, thresholds)), hours, collar)
    return {"target_fa_per_hour": target, "per_class": chosen, "thresholds": thresholds, "scores": final.to_dict()}


def _settings_of(records: dict[str, dict[str, Any]]) -> EventSettings:
    first = next(iter(records.values()))
    known = {k: v for k, v in (first.get("settings") or {}).items() if k in EventSettings.__dataclass_fields__}
    return EventSettings(**known)


def _with_threshold(s: EventSettings, label: str, t: float) -> EventSettings:
    return _with_thresholds(s, {label: t})


def _with_thresholds(s: EventSettings, thresholds: dict[str, float]) -> EventSettings:
    fields = {k: getattr(s, k) for k in EventSettings.__dataclass_fields__}
    fields["thresholds"] = {**s.thresholds, **thresholds}
    return EventSettings(**fields)
