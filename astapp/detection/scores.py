"""A recording's blocks -> windows of the model's length at a hop -> per-class probabilities over time.

The model runs through whatever answers `Scorer` (an `astapp.predict.Predictor`: the torch, ONNX fp32 or
ONNX int8 backend, the same numbers `predict` gives, never a second inference path; tests pass a fake).
Windows are cut from a rolling buffer as the blocks arrive and scored `batch_size` at a time, so memory
is one block plus one batch whatever the recording's length. Window k starts at k*hop; when the last
regular window stops short of the end, one more is aligned to the end (as the predictor does for a long
clip), so the recording's tail is always heard. A recording shorter than one window is one window,
padded by the filterbank, and said so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from astapp.core.config import SAMPLE_RATE


class Scorer(Protocol):
    """What detection needs of a model: `astapp.predict.Predictor` is one."""

    labels: list[str]
    multi_label: bool
    thresholds: dict[str, float]
    window_samples: int
    batch_size: int

    @property
    def unknown_threshold(self) -> float | None: ...

    def outputs(self, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (windows, labels), unknown scores (windows,) or None)."""
        ...


@dataclass
class WindowScores:
    """Per-window results of one recording: spans in samples, probabilities and unknown scores."""

    starts: np.ndarray  # int64, window start samples (16 kHz)
    ends: np.ndarray  # int64, window end samples (the last may be short when the recording is)
    probs: np.ndarray  # float32 (windows, labels)
    unknown: np.ndarray | None  # float32 (windows,) or None: the model has no unknown statistics
    samples: int  # the recording's length at 16 kHz
    padded: bool  # shorter than one window: its one window was padded

    @property
    def duration(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def times(self) -> np.ndarray:
        """Window centres in seconds (float64): the timeline the events are cut from."""
        return (self.starts + self.ends) / (2.0 * SAMPLE_RATE)


def hop_samples(scorer: Scorer, hop_seconds: float | None) -> int:
    """The hop in samples: `hop_seconds`, or half a window by default (at least one sample)."""
    if hop_seconds is None or hop_seconds <= 0:
        return max(1, scorer.window_samples // 2)
    return max(1, int(round(hop_seconds * SAMPLE_RATE)))


class _Batcher:
    """Collects windows and scores them `batch_size` at a time."""

    def __init__(self, scorer: Scorer):
        self.scorer = scorer
        self.pending: list[np.ndarray] = []
        self.probs: list[np.ndarray] = []
        self.unknown: list[np.ndarray] = []
        self.has_unknown = True

    def add(self, window: np.ndarray) -> None:
        self.pending.append(window)
        if len(self.pending) >= max(1, int(self.scorer.batch_size)):
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        probs, unk = self.scorer.outputs(self.pending)
        self.pending = []
        self.probs.append(np.asarray(probs, dtype=np.float32))
        if unk is None:
            self.has_unknown = False
        else:
            self.unknown.append(np.asarray(unk, dtype=np.float32))


def score_blocks(scorer: Scorer, blocks: Iterable[np.ndarray], hop: int) -> WindowScores:
    """Score a recording given as 16 kHz mono blocks, window by window (see the module doc)."""
    win = int(scorer.window_samples)
    batcher = _Batcher(scorer)
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # the sample index of buf[0]
    next_start = 0
    total = 0
    starts: list[int] = []
    for block in blocks:
        total += len(block)
        buf = np.concatenate([buf, block]) if buf.size else np.asarray(block, dtype=np.float32)
        while next_start + win <= total:
            lo = next_start - buf_start
            batcher.add(buf[lo:lo + win].copy())
            starts.append(next_start)
            next_start += hop
        keep_from = min(next_start, max(0, total - win)) - buf_start  # enough for the next and the tail window
        if keep_from > 0:
            buf, buf_start = buf[keep_from:], buf_start + keep_from
    padded = total < win
    last_end = starts[-1] + win if starts else 0
    if not starts or last_end < total:  # the tail (or the whole short recording) in one more window
        tail_start = max(0, total - win)
        batcher.add(buf[tail_start - buf_start:total - buf_start].copy())
        starts.append(tail_start)
    batcher.flush()
    s = np.asarray(starts, dtype=np.int64)
    probs = np.concatenate(batcher.probs) if batcher.probs else np.zeros((0, len(scorer.labels)), np.float32)
    unknown = np.concatenate(batcher.unknown) if batcher.has_unknown and batcher.unknown else None
    return WindowScores(s, np.minimum(s + win, total), probs, unknown, total, padded)
