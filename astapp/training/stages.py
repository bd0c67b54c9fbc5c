"""A run's stages and progress as events, with the stop request honoured between them.

Training and cross-validation both announce "dataset", "features", "training"… stages, report the
progress of long preparations at most twice a second, and end early (as "stopped") when the user
asks. One implementation, so both behave alike and a fix reaches both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from astapp.core.events import EventSink, make_event


def within(span: tuple[float, float] | None, fraction: float) -> float:
    """`fraction` of a step mapped into its `span` of the whole run (unchanged without a span)."""
    return fraction if span is None else span[0] + fraction * (span[1] - span[0])


class Stopped(Exception):
    """A stop was requested: the run ends as "stopped" (its checkpoint, if any, kept for resuming)."""


class Stages:
    """Announces stages (timing each one) and progress; raises `Stopped` when a stop is pending.

    `emit` may be replaced once the run knows where its events go (the training's main process sets it up
    after the process group). Stages named in `runs_to_the_end` do not stop at their announcement: the
    Trainer honours the stop itself at a step boundary, and exporting the best model must finish.
    `stop_in_progress` is off where another process must reach the same step (distributed training)."""

    def __init__(self, emit: EventSink, stop: threading.Event, runs_to_the_end: Collection[str] = (),
                 stop_in_progress: bool = True):
        self.emit, self.stop = emit, stop
        self.runs_to_the_end = set(runs_to_the_end)
        self.stop_in_progress = stop_in_progress
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def stage(self, name: str, message: str, **fields: Any) -> None:
        """Announce a stage (and time the previous one); honours a pending stop."""
        now = time.time()
        if self._current:
            prev, since = self._current
            self.seconds[prev] = self.seconds.get(prev, 0.0) + now - since
        self._current = (name, now)
        self.emit(make_event("stage", stage=name, message=message, **fields))
        if self.stop.is_set() and name not in self.runs_to_the_end:
            raise Stopped()

    def progress(self, stage: str, span: tuple[float, float] | None = None) -> Callable[[float, str], None]:
        """A `report(fraction, message)` for a long step of `stage`: an event at most every 0.5 s (and at
        the end), and a prompt stop. With `span` (a, b) the step is that share of the whole run, and its
        events carry the run's `progress` too (a job's bar moves through a long pass, not only in training)."""
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            if self.stop_in_progress and self.stop.is_set():
                raise Stopped()
            now = time.time()
            if now - last[0] >= 0.5 or fraction >= 1.0:
                last[0] = now
                overall = {"progress": within(span, float(fraction))} if span else {}
                self.emit(make_event("stage", stage=stage, message=message, fraction=float(fraction), **overall))

        return report
