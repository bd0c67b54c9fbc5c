"""The in-memory state of one training job: what a progress panel and the live plots read.

`JobManager` owns the lock; these methods are called with it held. The durable record of the same
run is its folder (`astapp.core.runfolder`), written by `astapp.jobs.record.RunRecord`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.config import TrainConfig
from astapp.core.events import describe
from astapp.jobs.record import RunRecord

FINISHED_MESSAGES = {"finished": "Training finished.", "stopped": "Training stopped."}


@dataclass
class Job:
    """One queued, running or recently finished job."""

    id: str
    owner: str
    name: str
    run_dir: Path
    cfg: TrainConfig
    submitted: float = field(default_factory=time.time)
    state: str = "queued"
    started: float | None = None
    finished: float | None = None
    progress: float = 0.0
    eta: float | None = None
    message: str = "Waiting in the queue."
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    events_base: int = 0  # absolute index of events[0] (old events are dropped past the cap)
    stop_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    slices: int = 0  # slices finished so far (training in slices: ZeroGPU, ASTAPP_SLICE_SECONDS)
    clock: Any = None  # the running slice's astapp.jobs.slicing.SliceClock

    @property
    def record(self) -> RunRecord:
        return RunRecord(self.run_dir, enabled=True)

    def add_event(self, event: dict[str, Any], cap: int) -> None:
        """Buffer an event (keeping the newest `cap`) and update progress, ETA and the status line."""
        ev = dict(event)
        ev.setdefault("time", time.time())
        self.events.append(ev)
        overflow = len(self.events) - cap
        if overflow > 0:
            del self.events[:overflow]
            self.events_base += overflow
        if isinstance(ev.get("progress"), (int, float)):
            self.progress = min(1.0, max(0.0, float(ev["progress"])))
        if isinstance(ev.get("eta"), (int, float)):
            self.eta = float(ev["eta"])
        line = describe(ev)
        if line and ev.get("type") in ("stage", "log") and not self.stop_event.is_set():
            self.message = line  # once a stop is asked for, the status keeps saying so

    def events_since(self, since: int) -> tuple[list[dict[str, Any]], int]:
        """Events after cursor `since` and the next cursor (a cursor past the end starts again)."""
        end = self.events_base + len(self.events)
        if since > end:
            since = 0
        start = max(since, self.events_base) - self.events_base
        return [dict(e) for e in self.events[start:]], end

    def finish(self, state: str, error: str | None) -> None:
        self.state, self.error, self.finished = state, error, time.time()
        self.message = FINISHED_MESSAGES.get(state, f"Training failed: {error}")
        if state == "finished":
            self.progress = 1.0
        if state == "failed" and not (self.events and self.events[-1].get("type") == "error"):
            self.events.append({"type": "error", "message": error, "time": time.time()})

    def snapshot(self) -> dict[str, Any]:
        """State, progress (0..1), elapsed and ETA (seconds), message and error."""
        elapsed = 0.0 if self.started is None else (self.finished or time.time()) - self.started
        return {"job_id": self.id, "run_id": self.id, "name": self.name, "state": self.state,
                "progress": self.progress, "elapsed": elapsed,
                "eta": self.eta if self.state == "running" else None, "message": self.message,
                "error": self.error, "stopping": self.state == "running" and self.stop_event.is_set(),
                **({"slice": self.slices + 1, "slice_seconds": self.clock.budget, "slice_left": self.clock.left()}
                   if self.clock is not None and self.state == "running" else {})}


def default_name(cfg: TrainConfig) -> str:
    data = Path(cfg.data.rstrip("/")).name or "data"
    model = cfg.model.rstrip("/").split("/")[-1] or "model"
    return f"{data} · {model}"
