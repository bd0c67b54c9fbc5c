"""Listen live: microphone chunks -> a ring buffer of the model's window -> a prediction every `hop` seconds,
smoothed over time, thresholded per class, with a rolling timeline of what was heard.

No Gradio here: the Predict tab feeds `Listener.feed` with whatever chunks the browser streams (any
sample rate, int16 or float) and shows `Listener.view()`. Times are stream time (seconds of audio
received), so a recorded file fed in chunks gives the same timeline as the live microphone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import UploadError

NOTHING = "nothing"  # what the timeline shows when no class passes its threshold (or the background wins)
UNKNOWN = "unknown"  # the window is unlike every class (its unknown score is above the model's threshold)
UNKNOWN_COLOR = "#1f2937"  # its own colour in the timeline (dark, white text): not a class, not "nothing"
BACKGROUND_NAMES = ("background", "_background_", "_background_noise_", "nothing", "silence", "none", "other")


@dataclass
class ListenSettings:
    """How often to predict, how much to smooth, what counts as heard."""

    hop: float = 0.5  # seconds between predictions
    smoothing: float = 0.5  # EMA weight of the past: p = s * p_prev + (1 - s) * p_new (0 = no smoothing)
    thresholds: dict[str, float] = field(default_factory=dict)  # per class; missing classes use `threshold`
    threshold: float = 0.5
    background: str | None = None  # the class that means "nothing"; None: found by name, if any
    history: float = 30.0  # seconds of timeline kept
    unknown_threshold: float | None = None  # above it (smoothed) a window is "unknown"; None: never

    def check(self) -> ListenSettings:
        if not 0.1 <= self.hop <= 5.0:
            raise UploadError(f"The prediction interval must be between 0.1 and 5 s, not {self.hop:g}.")
        if not 0.0 <= self.smoothing < 1.0:
            raise UploadError(f"Smoothing must be at least 0 and below 1, not {self.smoothing:g}.")
        return self


def thresholds_from_validation(predictions: list[dict[str, Any]], labels: list[str],
                               floor: float | None = None, cap: float = 0.6) -> dict[str, float]:
    """Per class: the lowest probability the model gave a correctly classified validation clip of that
    class (so every such clip would have been heard), within [floor, cap]; floor defaults to 1/classes.
    The cap is low on purpose: a confident model gives its validation clips 0.95 and more, but live the
    window straddles sounds and the smoothing mixes the past in, so a clearly winning class (0.8 on a
    real microphone) would stay "nothing" under a 0.9 threshold."""
    low = 1.0 / max(1, len(labels)) if floor is None else floor
    out: dict[str, float] = {}
    for label in labels:
        probs = [float(p.get("prob") or 0) for p in predictions
                 if isinstance(p, dict) and p.get("true") == label and p.get("pred") == label]
        out[label] = round(min(cap, max(low, min(probs))), 3) if probs else 0.5
    return out


def to_mono_16k(chunk: Any) -> tuple[int, np.ndarray]:
    """(rate, float32 mono) of a Gradio audio chunk: (rate, samples) with int16 or float samples."""
    rate, data = chunk
    x = np.asarray(data)
    if x.dtype.kind in "iu":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1 if x.shape[0] > x.shape[1] else 0)
    return int(rate), x.reshape(-1)


class Listener:
    """One listening session over a model: `feed` audio, read `view()`."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], labels: list[str], window: int,
                 settings: ListenSettings | None = None):
        self.predict = predict  # one window (16 kHz float32) -> class probabilities, or (them, unknown score)
        self.labels = list(labels)
        self.window = int(window)
        self.settings = (settings or ListenSettings()).check()
        bg = self.settings.background
        if bg is None:
            bg = next((name for name in self.labels if name.lower() in BACKGROUND_NAMES), None)
        self.background = bg if bg in self.labels else None
        self.ring = np.zeros(self.window, dtype=np.float32)
        self.received = 0  # 16 kHz samples received so far
        self.next_at = int(self.settings.hop * SAMPLE_RATE)
        self.smoothed: np.ndarray | None = None
        self.unknown: float | None = None  # the smoothed unknown score (None: the model has none)
        self.timeline: deque[tuple[float, str, float]] = deque()  # (stream time s, label, smoothed prob)
        self.compute_seconds: list[float] = []  # model time per prediction (the delay it adds)
        self._resampler: Any = None
        self._rate: int | None = None

    def _to_16k(self, rate: int, x: np.ndarray) -> np.ndarray:
        if rate == SAMPLE_RATE:
            return x
        if self._resampler is None or self._rate != rate:
            import soxr

            self._resampler, self._rate = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32"), rate
        return self._resampler.resample_chunk(x)

    def feed(self, chunk: Any, rate: int = SAMPLE_RATE) -> list[tuple[float, str, float]]:
        """Add audio ((rate, samples) from Gradio, or samples at `rate`); returns the new timeline points."""
        if isinstance(chunk, tuple):
            rate, x = to_mono_16k(chunk)
        else:
            x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        x = self._to_16k(rate, np.nan_to_num(x))
        hop = max(1, int(self.settings.hop * SAMPLE_RATE))
        new: list[tuple[float, str, float]] = []
        pos = 0
        while pos < len(x):  # predict exactly at every hop boundary the chunk crosses
            take = min(len(x) - pos, self.next_at - self.received)
            self._push(x[pos:pos + take])
            pos += take
            if self.received >= self.next_at:
                new.append(self._predict_now())
                self.next_at += hop
        return new

    def _push(self, x: np.ndarray) -> None:
        n = len(x)
        if n >= self.window:
            self.ring[:] = x[-self.window:]
        elif n:
            self.ring[:-n] = self.ring[n:]
            self.ring[-n:] = x
        self.received += n

    def _predict_now(self) -> tuple[float, str, float]:
        t0 = time.perf_counter()
        out = self.predict(self.ring.copy())
        probs, score = out if isinstance(out, tuple) else (out, None)
        probs = np.asarray(probs, dtype=np.float64)
        self.compute_seconds.append(time.perf_counter() - t0)
        s = self.settings.smoothing
        self.smoothed = probs if self.smoothed is None else s * self.smoothed + (1 - s) * probs
        if score is not None:  # smoothed like the probabilities: one odd window does not flip the timeline
            self.unknown = float(score) if self.unknown is None else s * self.unknown + (1 - s) * float(score)
        i = int(np.argmax(self.smoothed))
        label, p = self.labels[i], float(self.smoothed[i])
        limit = self.settings.thresholds.get(label, self.settings.threshold)
        heard = NOTHING if label == self.background or p < limit else label
        cut = self.settings.unknown_threshold
        if heard != NOTHING and self.unknown is not None and cut is not None and self.unknown > cut:
            heard = UNKNOWN  # a class would have been forced: say it is unlike all of them
        point = (round(self.received / SAMPLE_RATE, 3), heard, round(p, 4))
        self.timeline.append(point)
        while self.timeline and self.timeline[0][0] < point[0] - self.settings.history:
            self.timeline.popleft()
        return point

    def segments(self) -> list[dict[str, Any]]:
        """The timeline as runs of one label: {label, start, end} (end = the last prediction's time)."""
        out: list[dict[str, Any]] = []
        prev_t = None
        for t, label, _p in self.timeline:
            if out and out[-1]["label"] == label:
                out[-1]["end"] = t
            else:
                out.append({"label": label, "start": t if prev_t is None else prev_t, "end": t})
            prev_t = t
        return out

    def view(self) -> dict[str, Any]:
        """What the tab shows: the smoothed probabilities, what is heard now, the timeline, the delay."""
        probs = {} if self.smoothed is None else {name: float(p) for name, p in zip(self.labels, self.smoothed,
                                                                                     strict=True)}
        delay = float(np.median(self.compute_seconds[-10:])) if self.compute_seconds else None
        return {"probs": probs, "heard": self.timeline[-1][1] if self.timeline else None,
                "segments": self.segments(), "seconds": self.received / SAMPLE_RATE,
                "compute_seconds": delay, "window_seconds": self.window / SAMPLE_RATE,
                "unknown": self.unknown, "unknown_threshold": self.settings.unknown_threshold}


PALETTE = ("#3b82f6", "#f97316", "#10b981", "#a855f7", "#ef4444", "#eab308", "#06b6d4", "#ec4899")


def timeline_html(view: dict[str, Any], labels: list[str], history: float = 30.0) -> str:
    """The rolling timeline as one HTML strip: a coloured block per run of one label over the last
    `history` seconds ("nothing" grey, "unknown" dark with white text), each block titled with its label and
    times."""
    from html import escape

    now = float(view.get("seconds") or 0.0)
    start = max(0.0, now - history)
    span = max(history, 1e-6)
    blocks = []
    for seg in view.get("segments") or []:
        a, b = max(start, float(seg["start"])), float(seg["end"])
        if b <= a:
            continue
        label = str(seg["label"])
        color = "#d1d5db" if label == NOTHING else PALETTE[labels.index(label) % len(PALETTE)] \
            if label in labels else UNKNOWN_COLOR if label == UNKNOWN else "#9ca3af"
        ink = "#fff" if color == UNKNOWN_COLOR else "#111"
        left, width = 100 * (a - start) / span, 100 * (b - a) / span
        blocks.append(f'<div class="seg" data-label="{escape(label)}" title="{escape(label)} {a:.1f}–{b:.1f} s" '
                      f'style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;top:0;bottom:0;'
                      f'background:{color};overflow:hidden;font-size:12px;color:{ink};white-space:nowrap">'
                      f'{escape(label)}</div>')
    return ('<div id="listen-strip" style="position:relative;height:28px;border:1px solid #ccc;border-radius:4px">'
            + "".join(blocks) + f'</div><div style="font-size:12px;color:#666">last {history:.0f} s, '
            f'{start:.1f}–{now:.1f} s of audio</div>')
