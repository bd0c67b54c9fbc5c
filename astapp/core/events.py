"""Live training events: one small dict per happening, sent to any number of sinks, and their words.

Every event has `type` ("stage" | "log" | "eval" | "done" | "error" | "warning" | "slice") and `time`
(epoch seconds); a "slice" event marks where training in slices (or a time limit) cut the run, to be
resumed. The run folder's `history.jsonl` (JsonlSink) is the durable record the UI re-reads after a
restart; the job manager keeps a job's recent ones for the live Train tab
(`astapp.jobs.job.Job.add_event`); the CLI prints them. A broken sink never stops training.
`describe(event)` is the one line an event becomes in log.txt, on the terminal and in the Train tab.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _num(ev: dict[str, Any], key: str) -> float | None:
    v = ev.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def describe(ev: dict[str, Any]) -> str | None:
    """The line for one event, or None for events that only feed plots or the final summary."""
    kind = ev.get("type")
    if kind == "stage":
        return None if ev.get("stage") == "done" else f"[{ev.get('stage')}] {ev.get('message')}"
    if kind == "warning":
        return f"Warning: {ev.get('message')}"
    if kind == "error":
        return f"Error: {ev.get('message')}"
    if kind == "log":
        parts = [f"step {int(ev.get('step') or 0)}/{int(ev.get('max_steps') or 0)}",
                 f"epoch {_num(ev, 'epoch') or 0:.2f}"]
        for key, fmt in (("loss", "loss {:.4f}"), ("lr", "lr {:.2e}"), ("eta", "eta {:.0f}s")):
            if _num(ev, key) is not None:
                parts.append(fmt.format(_num(ev, key)))
        return ", ".join(parts)
    if kind == "slice":
        where = ev.get("checkpoint") or "the start"
        if ev.get("reason") == "time limit":
            return f"Time limit ({_num(ev, 'seconds') or 0:g} s) reached: stopped, resumable from {where}."
        return f"Slice {ev.get('slice')} used its {_num(ev, 'seconds') or 0:g} s; the next resumes from {where}."
    if kind == "eval":
        shown = ", ".join(f"{k} {_num(ev, k):.4f}" for k in ("map", "accuracy", "f1_macro", "loss")
                          if _num(ev, k) is not None)
        return f"epoch {_num(ev, 'epoch') or 0:.2f}: {shown}"
    return None


def fmt_score(x: float | None) -> str:
    """A score (accuracy, F1) as the app shows it everywhere: three decimals, "–" when unknown."""
    return "–" if x is None else f"{float(x):.3f}"


def describe_outcome(metrics: dict[str, Any]) -> str:
    """The result of a run in a few words: "accuracy 0.8500, macro F1 0.8400 (best epoch 3: highest accuracy)",
    or "". The reason matters when scores tie: the user sees that the later, lower-loss epoch was kept."""
    acc, f1 = _num(metrics, "accuracy"), _num(metrics, "f1_macro")
    if acc is None:
        return ""
    text = f"accuracy {acc:.4f}" + (f", macro F1 {f1:.4f}" if f1 is not None else "")
    if _num(metrics, "map") is not None:  # multi-label: mAP first (accuracy is then exact-match)
        text = f"mAP {_num(metrics, 'map'):.4f}, exact-match {text}"
    best = _num(metrics, "best_epoch")
    why = metrics.get("best_why")
    return text + (f" (best epoch {best:g}{': ' + why if why else ''})" if best is not None else "")
