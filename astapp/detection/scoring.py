"""Event-based precision, recall and F1 against reference annotations (the DCASE convention), false alarms/hour.

Why our own matching: the maintained DCASE packages do not import with this stack (`sed_eval` and
`sed_scores_eval` need `dcase_util`, which needs `pkg_resources`, gone from setuptools 84; `psds_eval` is not
installed and pins old pandas), so this module implements sed_eval's event-based rule and is tested on
worked examples: an estimated event matches a reference event of the same label and recording when the
onsets differ by at most `collar` seconds and the offsets by at most max(`collar`, `offset_ratio` x the
reference's length) (sed_eval's `t_collar` and `percentage_of_length`, 0.2 there and here). Each event
matches at most one other, and the pairing maximises the matches (a bipartite matching, as sed_eval does
since 0.2; a greedy pairing can undercount). Precision, recall and F1 are counted over all events (micro,
"overall" in sed_eval) and per class, whose mean is the macro ("class-wise average") F1. False alarms per
hour: unmatched estimates over the hours of audio scored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from astapp.detection.events import Event

COLLAR = 0.5
OFFSET_RATIO = 0.2


def matches(ref: Event, est: Event, collar: float = COLLAR, offset_ratio: float = OFFSET_RATIO,
            offsets: bool = True) -> bool:
    """Whether `est` may match `ref` (same label; onset, and offset unless `offsets` is False, in the collar)."""
    if ref.label != est.label or abs(ref.start - est.start) > collar + 1e-9:
        return False
    return not offsets or abs(ref.end - est.end) <= max(collar, offset_ratio * (ref.end - ref.start)) + 1e-9


def max_matching(refs: list[Event], ests: list[Event], collar: float = COLLAR, offset_ratio: float = OFFSET_RATIO,
                 offsets: bool = True) -> list[tuple[int, int]]:
    """The largest set of (ref index, est index) pairs that match, each event used once (Kuhn's algorithm)."""
    adj = [[j for j, e in enumerate(ests) if matches(r, e, collar, offset_ratio, offsets)] for r in refs]
    owner: dict[int, int] = {}  # est index -> ref index

    def augment(i: int, seen: set[int]) -> bool:
        for j in adj[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in sorted(range(len(refs)), key=lambda k: len(adj[k])):  # fewest options first: fewer re-routes
        if adj[i]:
            augment(i, set())
    return sorted((i, j) for j, i in owner.items())


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    def metrics(self, hours: float) -> dict[str, Any]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else 0.0
        return {"precision": round(p, 6), "recall": round(r, 6), "f1": round(f1, 6), "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "references": self.tp + self.fn, "fa_per_hour": round(self.fp / hours, 6) if hours else None}


@dataclass
class EventScores:
    """Event-based scores over the scored recordings: overall (micro), per class, and the macro F1."""

    overall: dict[str, Any]
    per_class: dict[str, dict[str, Any]]
    f1_macro: float
    hours: float
    collar: float
    files: int
    unmatched_files: list[str] = field(default_factory=list)  # references with no detections at all

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _by(events: Iterable[Event], key: str) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for e in events:
        out.setdefault(getattr(e, key), []).append(e)
    return out


def class_counts(refs: list[Event], ests: list[Event], collar: float = COLLAR, offset_ratio: float = OFFSET_RATIO,
                 offsets: bool = True) -> dict[str, Counts]:
    """Per-label counts of one recording's events (labels of either side)."""
    r_by, e_by = _by(refs, "label"), _by(ests, "label")
    out: dict[str, Counts] = {}
    for label in sorted(set(r_by) | set(e_by)):
        r, e = r_by.get(label, []), e_by.get(label, [])
        tp = len(max_matching(r, e, collar, offset_ratio, offsets))
        out[label] = Counts(tp, len(e) - tp, len(r) - tp)
    return out


def score_events(refs: dict[str, list[Event]], ests: dict[str, list[Event]], hours: float,
                 collar: float = COLLAR, offset_ratio: float = OFFSET_RATIO, offsets: bool = True) -> EventScores:
    """Scores of the recordings in `refs` (file -> reference events) against `ests` (file -> estimates)."""
    per: dict[str, Counts] = {}
    for file, r in refs.items():
        for label, c in class_counts(r, ests.get(file, []), collar, offset_ratio, offsets).items():
            per.setdefault(label, Counts()).add(c)
    total = Counts()
    for c in per.values():
        total.add(c)
    per_class = {label: c.metrics(hours) for label, c in sorted(per.items())}
    with_refs = [m["f1"] for m in per_class.values() if m["references"]]
    return EventScores(total.metrics(hours), per_class, round(sum(with_refs) / len(with_refs), 6) if with_refs else 0.0,
                       round(hours, 6), collar, len(refs), sorted(f for f in refs if f not in ests))
