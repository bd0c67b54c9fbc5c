"""Per-window probabilities -> events (label, start, end, score): smoothing, hysteresis, min length, gaps.

Why each step: a single loud window should not make an event and a single quiet one inside a bark train
should not split it (smoothing: a running median or mean over a few windows); a score hovering at the
threshold should not flicker on and off (hysteresis: an event starts at the class's `on` threshold and
lasts while the score stays at or above `off`); tiny events are usually noise (`min_length`), and two
events of a class a hair apart are usually one (`merge_gap`).

Thresholds default to the model's own: a multi-label model's per-label thresholds tuned on validation,
else 0.5. A single-label model names at most one class at a time (the most probable one that is on; the
current class holds while it stays above its `off` and no other class is both more probable and on);
a multi-label model's classes are independent, so their events may overlap. When the model has an
unknown score, windows scoring above its threshold that would have been an event become an "unknown"
event instead of a forced guess. Times: window i stands for the span around its centre `times[i]`,
half a hop either side, clipped to the recording, so a boundary is found to within a hop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_THRESHOLD = 0.5
UNKNOWN = "unknown"
SMOOTHING = ("median", "mean", "none")
# Classes that mean "nothing of interest here": they take part (a single-label model's background class keeps
# the others off) but make no events, unless `ignore` is set otherwise.
BACKGROUND = ("background", "_background_noise_", "_silence_", "silence", "none", "none of these", "noise_floor")


@dataclass(frozen=True)
class Event:
    """One detected (or annotated) sound: label, start and end in seconds, score (peak smoothed probability)."""

    label: str
    start: float
    end: float
    score: float = 1.0
    file: str = ""


@dataclass
class EventSettings:
    """How probabilities become events; None thresholds mean the model's (see the module doc)."""

    threshold: float | None = None  # the `on` threshold of every class (overrides the model's)
    thresholds: dict[str, float] = field(default_factory=dict)  # per class, over `threshold`
    off_ratio: float = 0.75  # off threshold = on * off_ratio (hysteresis); 1.0: none
    smoothing: str = "median"
    smooth_windows: int = 3  # windows the smoothing spans (odd; 1: none)
    min_length: float = 0.0  # seconds
    merge_gap: float = 0.0  # seconds
    ignore: list[str] = field(default_factory=lambda: list(BACKGROUND))  # labels that make no events
    # The share of a window a sound must fill before the model fires on it: where event bounds are put inside
    # the windows that fired (`sound_bounds`). A clear sound fires with little of it in the window (measured
    # with a tiny trained AST: 1 s windows fired 0.4-0.8 s before the onset), so 0.1; 0.5 is a window
    # centre's own span.
    fill: float = 0.1


def class_thresholds(labels: list[str], model_thresholds: dict[str, float], s: EventSettings) -> np.ndarray:
    """Each class's `on` threshold: the settings' own, else the model's tuned one, else 0.5."""
    base = {lab: model_thresholds.get(lab, DEFAULT_THRESHOLD) for lab in labels}
    if s.threshold is not None:
        base = dict.fromkeys(labels, float(s.threshold))
    base.update({k: float(v) for k, v in s.thresholds.items() if k in base})
    return np.asarray([base[lab] for lab in labels], dtype=np.float64)


def smooth(probs: np.ndarray, method: str = "median", windows: int = 3) -> np.ndarray:
    """Running median or mean along time (edges repeat the first/last value); float32 like the input."""
    if method == "none" or windows <= 1 or probs.shape[0] < 2:
        return np.asarray(probs, dtype=np.float32)
    k = int(windows) | 1  # odd, so it is centred
    half = k // 2
    padded = np.pad(np.asarray(probs, dtype=np.float64), ((half, half), (0, 0)), mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, k, axis=0)  # (frames, classes, k)
    out = np.median(view, axis=-1) if method == "median" else view.mean(axis=-1)
    return out.astype(np.float32)


def _hysteresis(p: np.ndarray, on: float, off: float) -> np.ndarray:
    """Active frames of one class: on when p >= on, held while p >= off."""
    active = np.zeros(p.shape[0], dtype=bool)
    state = False
    for i, v in enumerate(p):
        state = v >= (off if state else on)
        active[i] = state
    return active


def _single_label(p: np.ndarray, on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(frames, classes) activity with at most one class on per frame (see the module doc)."""
    active = np.zeros(p.shape, dtype=bool)
    current = -1
    for i, row in enumerate(p):
        best = int(np.argmax(row))
        best_on = row[best] >= on[best]
        if current >= 0 and row[current] >= off[current] and (best == current or not best_on):
            pass  # the current class holds
        else:
            current = best if best_on else -1
        if current >= 0:
            active[i, current] = True
    return active


def activity(probs: np.ndarray, on: np.ndarray, off_ratio: float, multi_label: bool) -> np.ndarray:
    """(frames, classes) bool: which classes are on in each frame after hysteresis."""
    off = on * min(1.0, max(0.0, off_ratio))
    if not multi_label:
        return _single_label(probs, on, off)
    cols = [_hysteresis(probs[:, c], on[c], off[c]) for c in range(probs.shape[1])]
    return np.stack(cols, axis=1) if cols else np.zeros(probs.shape, dtype=bool)


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each run of True."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def frame_bounds(times: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's span: from halfway to the previous centre to halfway to the next; the first frame starts
    at 0 and the last ends at the recording's end (the first and last windows reach there)."""
    if times.size == 0:
        return times, times
    mids = (times[1:] + times[:-1]) / 2
    return np.concatenate([[0.0], mids]), np.concatenate([mids, [float(duration)]])


def _merge(spans: list[list[float]], gap: float) -> list[list[float]]:
    out: list[list[float]] = []
    for s in spans:
        if out and s[0] - out[-1][1] <= gap:
            out[-1][1], out[-1][2] = max(out[-1][1], s[1]), max(out[-1][2], s[2])
        else:
            out.append(list(s))
    return out


def sound_bounds(times: np.ndarray, duration: float, window: float,
                 fill: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Where a sound starts if a run of windows starts at frame a, and ends if the run ends at frame b.

    A window fires once the sound fills `fill` of it, so the run's first window holds the onset at
    window × (1 - fill) from its start, give or take half a hop (the window one hop earlier did not fire):
    the frame's span moved window × (0.5 - fill) inwards, and the same at the end. With fill 0.5 that is the
    window centres' own spans; smaller fills keep events from coming out about a window wider than the sound.
    The first and last frames keep the recording's edges (no window before or after)."""
    lo, hi = frame_bounds(times, duration)
    trim = window * (0.5 - min(max(fill, 0.0), 0.5))
    if trim <= 0 or times.size == 0:
        return lo, hi
    start, end = lo + trim, hi - trim
    start[0], end[-1] = lo[0], hi[-1]
    return start, end


def to_events(times: np.ndarray, smoothed: np.ndarray, active: np.ndarray, labels: list[str], duration: float,
              s: EventSettings, file: str = "", window: float = 0.0) -> list[Event]:
    """Runs of activity per column -> events (gaps merged, short ones dropped), sorted by start."""
    times = np.asarray(times, dtype=np.float64)
    lo, hi = sound_bounds(times, duration, window, s.fill)
    flo, fhi = frame_bounds(times, duration)
    peak = smoothed.max(axis=1) if smoothed.ndim == 2 and smoothed.shape[1] else np.zeros(len(times))
    events: list[Event] = []
    skip = {x.lower() for x in s.ignore}
    for c, label in enumerate(labels):
        if label.lower() in skip:
            continue
        col = smoothed[:, c] if c < smoothed.shape[1] else peak
        spans = [[*_span(lo[a], hi[b], flo[a], fhi[b]), float(col[a:b + 1].max())] for a, b in _runs(active[:, c])]
        for start, end, score in _merge(spans, s.merge_gap):
            if end - start + 1e-9 >= s.min_length:
                events.append(Event(label, round(start, 4), round(end, 4), round(score, 6), file))
    return sorted(events, key=lambda e: (e.start, e.end, e.label))


def _span(start: float, end: float, frame_start: float, frame_end: float) -> tuple[float, float]:
    """(start, end) of one run; a run shorter than a window (bounds crossed) keeps the middle of its frames."""
    if end > start:
        return float(start), float(end)
    mid, half = (frame_start + frame_end) / 2, min(0.05, (frame_end - frame_start) / 2)
    return float(mid - half), float(mid + half)


def _unknown_runs(act: np.ndarray, unknown: np.ndarray, threshold: float) -> np.ndarray:
    """Activity with one more column, "unknown": each run of a class whose mean unknown score is above the
    threshold moves there whole (an event is the model's guess or unknown, never half of each)."""
    out = np.concatenate([act, np.zeros((act.shape[0], 1), dtype=bool)], axis=1)
    for c in range(act.shape[1]):
        for a, b in _runs(act[:, c]):
            if float(unknown[a:b + 1].mean()) > threshold:
                out[a:b + 1, c] = False
                out[a:b + 1, -1] = True
    return out


def detect_events(times: np.ndarray, probs: np.ndarray, labels: list[str], duration: float, multi_label: bool,
                  model_thresholds: dict[str, float], s: EventSettings, unknown: np.ndarray | None = None,
                  unknown_threshold: float | None = None, file: str = "",
                  window: float = 0.0) -> tuple[list[Event], np.ndarray]:
    """(events, smoothed probabilities) of one recording's window probabilities (see the module doc)."""
    if s.smoothing not in SMOOTHING:
        raise ValueError(f"smoothing must be one of {SMOOTHING}")
    smoothed = smooth(probs, s.smoothing, s.smooth_windows)
    on = class_thresholds(labels, model_thresholds, s)
    act = activity(smoothed, on, s.off_ratio, multi_label)
    names = list(labels)
    if unknown is not None and unknown_threshold is not None and len(unknown) == len(act):
        act = _unknown_runs(act, smooth(np.asarray(unknown, np.float32)[:, None], s.smoothing, s.smooth_windows)[:, 0],
                            unknown_threshold)
        names.append(UNKNOWN)
    return to_events(times, smoothed, act, names, duration, s, file, window), smoothed
