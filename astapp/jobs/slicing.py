"""Training in slices of bounded time: ZeroGPU's `@spaces.GPU` calls, or hosts with job time limits.

A slice trains until its budget minus a safety margin (time to save a checkpoint), then stops the way a
user's Stop does; the next slice resumes exactly from that checkpoint (resume is exact, so a run trained
in slices ends with the same weights and metrics as one trained in one go). Each slice end is a `slice`
event in history.jsonl. The job manager queues the next slice behind the other jobs (`run_slice`,
`end_slice`); the CLI runs them in its own process one after another (`train_in_slices`), and its
`--time-limit` is the same clock with a hard end: the run stops there, resumable, like a slice.
`ASTAPP_SLICE_SECONDS=N` slices anywhere; on a ZeroGPU Space (`SPACES_ZERO_GPU` set, the `spaces`
package installed) slices default to 120 s and each runs inside `spaces.GPU(duration=...)`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from astapp.core import runfolder
from astapp.core.config import TrainConfig, env_flag, env_float
from astapp.core.events import EventSink, JsonlSink, describe, make_event
from astapp.jobs import record
from astapp.jobs.record import RunRecord, TrainFn

ZERO_GPU_SLICE_S = 120.0
QUOTA_WORDS = ("quota",)


def on_zero_gpu() -> bool:
    """A ZeroGPU Space: the Hub sets SPACES_ZERO_GPU there, and the `spaces` package is what asks for GPU time."""
    return env_flag("SPACES_ZERO_GPU") and importlib.util.find_spec("spaces") is not None


def slice_seconds() -> float:
    """The slice budget in seconds, 0 when training runs in one go."""
    return env_float("ASTAPP_SLICE_SECONDS", ZERO_GPU_SLICE_S if on_zero_gpu() else 0.0)


def margin(budget: float) -> float:
    """What a slice leaves for finishing its step and saving the checkpoint (15 %, at most 30 s)."""
    return min(30.0, 0.15 * budget)


def limit_deadline(limit: float, started: float) -> float:
    """When a run with a time limit of `limit` seconds from `started` must stop: the limit less a slice's margin."""
    return started + limit - margin(limit)


def gpu_slices(train_fn: Callable[..., Any], budget: float) -> Callable[..., Any]:
    """On ZeroGPU, each call of `train_fn` (one slice) runs inside a GPU allocation of `budget` seconds."""
    if not on_zero_gpu() or not math.isfinite(budget):
        return train_fn
    import spaces

    return spaces.GPU(duration=int(budget))(train_fn)


def is_quota_error(exc: BaseException) -> bool:
    """ZeroGPU refused more GPU time (the user's quota is used up)."""
    text = str(exc).lower()
    return any(w in text for w in QUOTA_WORDS) and ("gpu" in text or "zerogpu" in text)


class SliceClock:
    """The stop the engine sees during one slice: the user's Stop at once, the end of the slice once
    training has begun (so every slice trains at least one step, however long preparing took)."""

    def __init__(self, user_stop: threading.Event, budget: float, until: float | None = None):
        """`budget` seconds from now (inf: no slices), ending no later than `until` (a time limit's
        `limit_deadline`, epoch seconds)."""
        self.user_stop, self.budget, self.until = user_stop, float(budget), until
        self.engine_stop = threading.Event()
        self.started = time.time()
        self.training = threading.Event()
        self.ended = False  # the slice's time ran out (not the user's Stop)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="astapp-slice-clock", daemon=True)
        self._thread.start()

    @property
    def deadline(self) -> float:
        own = self.started + self.budget - margin(self.budget) if math.isfinite(self.budget) else math.inf
        return own if self.until is None else min(own, self.until)

    @property
    def at_limit(self) -> bool:
        """The slice ended at the time limit (`until`), not at its own budget."""
        return self.ended and self.until is not None and self.deadline == self.until

    def watch(self, events: EventSink | None) -> EventSink:
        """`events`, and the start of training (from then on the slice may end)."""
        def sink(ev: dict[str, Any]) -> None:
            if ev.get("type") == "stage" and ev.get("stage") == "training":
                self.training.set()
            if events is not None:
                events(ev)

        return sink

    def left(self) -> float:
        """Seconds left in this slice."""
        return max(0.0, self.deadline - time.time())

    def _watch(self) -> None:
        while not self._closed.wait(0.05):
            if self.user_stop.is_set():
                self.engine_stop.set()
                return
            if self.training.is_set() and time.time() >= self.deadline:
                self.ended = True
                self.engine_stop.set()
                return

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)


def run_slice(clock: SliceClock, cfg: TrainConfig, events: EventSink | None, rec: RunRecord,
              train_fn: TrainFn | None = None) -> tuple[runfolder.RunResult, bool]:
    """Train one slice under `clock` (recorded as the run's; recording the result is left to the caller).
    True with the result when the slice's time ran out, so the run goes on from the checkpoint it saved."""
    fn = gpu_slices(train_fn or record.run_engine, clock.budget)
    try:
        result = record.run_job(cfg, clock.watch(events), clock.engine_stop, train_fn=fn, record=rec,
                                record_result=False)
    finally:
        clock.close()
    return result, clock.ended and not clock.user_stop.is_set() and result.state == "stopped"


def end_slice(rec: RunRecord, cfg: TrainConfig, number: int, seconds: float, events: EventSink | None = None,
              reason: str = "budget") -> dict[str, Any]:
    """After slice `number` ran out of time: point `cfg.resume` at the checkpoint it saved, and record the
    `slice` event (history.jsonl, and `events`). `reason`: "budget" (its slice time) or "time limit"."""
    ck = runfolder.last_checkpoint(rec.folder)
    cfg.resume = str(ck) if ck else ""
    ev = make_event("slice", slice=number, seconds=seconds, reason=reason, checkpoint=ck.name if ck else None)
    if rec.enabled:  # rank 0 only, as the engine's own sink (closed with its slice)
        history = JsonlSink(rec.folder / runfolder.HISTORY)
        try:
            history(ev)
        finally:
            history.close()
    if events is not None:
        events(ev)
    return ev


def train_in_slices(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None,
                    budget: float = 0.0, time_limit: float | None = None, started: float | None = None,
                    train_fn: TrainFn | None = None) -> runfolder.RunResult:
    """Train in this process in slices of `budget` seconds (0: one slice), each resuming the last, until the
    run ends or `time_limit` seconds from `started` (less a slice's margin) have passed; the run's record is
    kept as `record.run_job` keeps it. A run stopped at the limit returns state "stopped" and
    `time_limit_reached`, its checkpoint kept for `--resume latest`."""
    rec, stop = RunRecord(cfg.output), stop or threading.Event()
    until = None if time_limit is None else limit_deadline(time_limit, time.time() if started is None else started)
    done = 0
    while True:
        clock = SliceClock(stop, budget if budget > 0 else math.inf, until)
        result, ended = run_slice(clock, cfg, events, rec, train_fn)
        # Under DDP another rank's clock may have stopped this one: a stop the user did not ask for is a clock's.
        if not (ended or (result.state == "stopped" and not stop.is_set())):
            rec.finished(result)
            return result
        done += 1
        at_limit = until is not None and (budget <= 0 or clock.at_limit or time.time() >= until)
        ev = end_slice(rec, cfg, done, float(time_limit) if at_limit and time_limit else budget, events,
                       "time limit" if at_limit else "budget")
        rec.log(describe(ev) or "")
        if at_limit:
            rec.finished(result)
            return dataclasses.replace(result, time_limit_reached=True)
        record.release_memory()
