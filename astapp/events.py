"""Live training events: one small dict per happening, sent to any number of sinks.

Every event has `type` ("stage" | "log" | "eval" | "done" | "error" | "warning") and `time` (epoch
seconds). The run folder's `history.jsonl` (JsonlSink) is the durable record the UI re-reads after a
restart; QueueSink feeds a live UI thread; the CLI prints them. A broken sink never stops training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

EventSink = Callable[[dict], None]


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, numpy/torch scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def make_event(kind: str, **fields: Any) -> dict[str, Any]:
    return _clean({"type": kind, "time": time.time(), **fields})


class JsonlSink:
    """Appends one JSON object per line to `path` (flushed per line, so a crash loses at most one)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def __call__(self, event: dict) -> None:
        line = json.dumps(_clean(event), ensure_ascii=False, default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class QueueSink:
    """Thread-safe buffer a UI thread drains with `drain()`; bounded so a stalled reader can't grow memory."""

    def __init__(self, maxsize: int = 10_000):
        self.queue: queue.Queue[dict] = queue.Queue(maxsize=maxsize)

    def __call__(self, event: dict) -> None:
        try:
            self.queue.put_nowait(dict(event))
        except queue.Full:  # drop the oldest, keep the newest
            with contextlib.suppress(queue.Empty):
                self.queue.get_nowait()
            self.queue.put_nowait(dict(event))

    def drain(self) -> list[dict]:
        out: list[dict] = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out


def fanout(*sinks: EventSink | None) -> EventSink:
    """One sink that forwards to each given sink; a failing sink is logged and skipped."""
    active = [s for s in sinks if s is not None]

    def send(event: dict) -> None:
        for sink in active:
            try:
                sink(event)
            except Exception:  # noqa: BLE001 - display problems must never break training
                log.exception("An event sink failed")

    return send


class EventCallback(TrainerCallback):
    """Turns Trainer logs and evaluations into `log` and `eval` events.

    `batch_size` is the global batch (per-device x processes x accumulation), for samples/s.
    """

    def __init__(self, sink: EventSink, batch_size: int):
        self.sink = sink
        self.batch_size = batch_size
        self.start = time.time()
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()
        self.start_step = state.global_step

    def _timing(self, state) -> dict[str, float]:
        elapsed = time.time() - self.start
        done = state.global_step - self.start_step
        left = max(state.max_steps - state.global_step, 0)
        eta = elapsed / done * left if done > 0 else None
        return {"elapsed": elapsed, "eta": eta,
                "progress": state.global_step / state.max_steps if state.max_steps else 0.0,
                "samples_per_second": done * self.batch_size / elapsed if elapsed > 0 and done else None}

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        self.sink(make_event("log", step=state.global_step, max_steps=state.max_steps, epoch=state.epoch,
                             loss=logs.get("loss"), lr=logs.get("learning_rate"),
                             grad_norm=logs.get("grad_norm"), **self._timing(state)))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        fields = {k[len("eval_"):]: v for k, v in metrics.items()
                  if k.startswith("eval_") and isinstance(v, (int, float))
                  and k not in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")}
        self.sink(make_event("eval", epoch=state.epoch, step=state.global_step, **fields))
