"""One recording -> its detections: the per-file unit every runner calls (this process, a shard, a Ray task).

`detect_recording(scorer, path, settings)` checks the file, streams it (`stream`), scores its windows
(`scores`) and cuts events (`events`); it holds no state between files and writes nothing, so a runner can
call it anywhere and record the result however it likes (`run` writes one record per file).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import AstappError
from astapp.detection.events import SMOOTHING, Event, EventSettings, detect_events
from astapp.detection.scores import Scorer, WindowScores, hop_samples, score_blocks
from astapp.detection.stream import BLOCK_SECONDS, check_recording, stream_blocks


class DetectSettingsError(AstappError):
    """A detection setting is out of range."""


class DetectionStopped(AstappError):
    """The user stopped detection; files already finished keep their records."""


@dataclass
class DetectSettings(EventSettings):
    """Event settings plus where the windows go: `hop` seconds (None: half a window)."""

    hop: float | None = None
    block_seconds: float = BLOCK_SECONDS

    def validate(self) -> DetectSettings:
        """Self, or one sentence naming the bad setting and its range."""
        checks = [
            (self.hop is None or self.hop > 0, f"--hop must be a positive number of seconds (got {self.hop})."),
            (self.threshold is None or 0 < self.threshold <= 1,
             f"--threshold must be between 0 (exclusive) and 1 (got {self.threshold})."),
            (all(0 < v <= 1 for v in self.thresholds.values()), "Per-class thresholds must be between 0 and 1."),
            (0 < self.off_ratio <= 1, f"The off ratio must be in (0, 1] (got {self.off_ratio})."),
            (self.smoothing in SMOOTHING, f"Smoothing must be one of {', '.join(SMOOTHING)} (got {self.smoothing!r})."),
            (1 <= self.smooth_windows <= 101, f"Smoothing windows must be 1-101 (got {self.smooth_windows})."),
            (self.min_length >= 0, f"--min-length must be 0 or more seconds (got {self.min_length})."),
            (self.merge_gap >= 0, f"--merge-gap must be 0 or more seconds (got {self.merge_gap})."),
            (0 <= self.fill <= 0.5, f"--fill must be between 0 and 0.5 of a window (got {self.fill})."),
        ]
        for ok, sentence in checks:
            if not ok:
                raise DetectSettingsError(sentence)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectSettings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Detections:
    """One recording's detections: events plus the timeline they came from."""

    file: str
    duration: float  # seconds of audio decoded
    labels: list[str]
    events: list[Event]
    times: np.ndarray  # window centres, seconds (float64)
    scores: np.ndarray  # (frames, classes) float32 probabilities, before smoothing
    smoothed: np.ndarray  # (frames, classes) float32, what the thresholds saw
    unknown: np.ndarray | None = None  # (frames,) float32 unknown scores, None without statistics
    multi_label: bool = False
    window: float = 0.0  # seconds
    hop: float = 0.0  # seconds
    notes: list[str] = field(default_factory=list)  # what the user should know (padded, truncated)
    model_thresholds: dict[str, float] = field(default_factory=dict)  # the model's own (the sweep starts there)
    unknown_threshold: float | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.events:
            out[e.label] = out.get(e.label, 0) + 1
        return out


def events_from_scores(ws: WindowScores, scorer: Scorer, settings: DetectSettings, name: str) -> Detections:
    """Detections of already scored windows (the threshold sweep recomputes events this way)."""
    events, smoothed = detect_events(ws.times, ws.probs, list(scorer.labels), ws.duration, scorer.multi_label,
                                     dict(scorer.thresholds), settings, ws.unknown, scorer.unknown_threshold, name,
                                     scorer.window_samples / SAMPLE_RATE)
    return Detections(name, ws.duration, list(scorer.labels), events, ws.times, ws.probs, smoothed, ws.unknown,
                      scorer.multi_label, scorer.window_samples / SAMPLE_RATE,
                      hop_samples(scorer, settings.hop) / SAMPLE_RATE, [], dict(scorer.thresholds),
                      scorer.unknown_threshold)


def _stoppable(blocks: Iterator[np.ndarray], stop: threading.Event | None) -> Iterator[np.ndarray]:
    for block in blocks:
        if stop is not None and stop.is_set():
            raise DetectionStopped("Detection was stopped; run it again to continue where it stopped.")
        yield block


def detect_recording(scorer: Scorer, path: str | Path, settings: DetectSettings | None = None,
                     name: str | None = None, max_bytes: int | None = None,
                     stop: threading.Event | None = None) -> Detections:
    """Events of one recording (any length, streamed); bad input raises one AudioDecodeError sentence."""
    settings = (settings or DetectSettings()).validate()
    path = Path(path)
    info = check_recording(path, max_bytes)
    hop = hop_samples(scorer, settings.hop)
    ws = score_blocks(scorer, _stoppable(stream_blocks(info, settings.block_seconds), stop), hop)
    det = events_from_scores(ws, scorer, settings, name or path.name)
    if ws.padded:
        det.notes.append(f"{path.name} is {ws.duration:.2f} s, shorter than the model's {det.window:.2f} s window: "
                         "it was padded with silence and scored as one window.")
    if scorer.multi_label and not scorer.thresholds and settings.threshold is None and not settings.thresholds:
        det.notes.append("The model has no tuned per-class thresholds (exported before they were tuned), so 0.5 was "
                         "used for every class; pass --threshold, or tune them in the Evaluate tab.")
    claimed = info.duration
    if claimed > 0 and ws.duration < claimed - 0.5:
        det.notes.append(f"{path.name} is truncated: its header says {claimed:.1f} s but only {ws.duration:.1f} s "
                         "could be decoded; the decoded part was analysed.")
    return det
