"""Run one training into its run folder and keep the run's record.

`RunRecord` is the only writer of a run's status.json, config.json, meta.json and log.txt (see
`astapp.core.runfolder` for every file and its writer). `run_job(cfg, events, stop)` is what the CLI, the job
worker and the tests call: it validates, records "running", runs the engine, and records the outcome
the engine returned, or the plain sentence for the exception it raised (`astapp.core.errors.explain`).
The engine itself never writes or reads these files.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from astapp.core import runfolder
from astapp.core.config import TrainConfig, launch_rank
from astapp.core.errors import explain, user_error
from astapp.core.events import EventSink, describe, describe_outcome, fanout
from astapp.core.fsutil import atomic_write_text

log = logging.getLogger(__name__)

TrainFn = Callable[[TrainConfig, "EventSink | None", "threading.Event | None"], runfolder.RunResult]
LOG_EVERY_S = 10.0  # progress lines (steps, preparation fractions) reach log.txt at most this often
_log_lock = threading.Lock()


class RunRecord:
    """Writes a run folder's status, config, meta and log; does nothing on non-main ranks (DDP)."""

    def __init__(self, folder: str | Path, enabled: bool | None = None):
        self.folder = Path(folder)
        self.enabled = launch_rank() == 0 if enabled is None else enabled

    # --- the files ---------------------------------------------------------------------------
    def status(self, state: str, error: str | None = None, pid: int | None = None, **extra: Any) -> None:
        """Atomically replace status.json."""
        if not self.enabled:
            return
        status = {"state": state, "error": error, "pid": os.getpid() if pid is None else pid,
                  "updated": time.time(), **extra}
        atomic_write_text(self.folder / runfolder.STATUS, json.dumps(status, indent=2))

    def config(self, cfg: TrainConfig) -> None:
        if self.enabled:
            cfg.save(self.folder / runfolder.CONFIG)

    def log(self, line: str) -> None:
        """Append timestamped lines to log.txt."""
        if not self.enabled:
            return
        stamp = time.strftime("%H:%M:%S")
        with _log_lock, open(self.folder / runfolder.LOG, "a", encoding="utf-8") as f:
            for part in str(line).splitlines() or [""]:
                f.write(f"{stamp} {part}\n")

    # --- the lifecycle -----------------------------------------------------------------------
    def create(self, cfg: TrainConfig, name: str, owner: str) -> None:
        """A new run: its settings, its name and owner, and "queued"."""
        if not self.enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config(cfg)
        meta = {"id": self.folder.name, "name": name, "owner": owner, "created": time.time()}
        atomic_write_text(self.folder / runfolder.META, json.dumps(meta, indent=2, ensure_ascii=False))
        self.status("queued")

    def rename(self, name: str) -> None:
        """Give the run a new display name (meta.json keeps its id, owner and creation time)."""
        if not self.enabled:
            return
        meta = {**runfolder.read_json(self.folder / runfolder.META), "name": name}
        atomic_write_text(self.folder / runfolder.META, json.dumps(meta, indent=2, ensure_ascii=False))

    def queued(self, cfg: TrainConfig, message: str) -> None:
        self.config(cfg)
        self.status("queued")
        self.log(message)

    def cancelled(self, message: str, error: str | None = None) -> None:
        self.status("stopped", error=error, message=message)
        self.log(message)

    def interrupted(self, message: str, pid: int, checkpoint: Path | None) -> None:
        self.status("interrupted", error=message, pid=pid, last_checkpoint=str(checkpoint) if checkpoint else None,
                    resumable=True)
        self.log(f"Interrupted: {message}")

    def started(self, cfg: TrainConfig) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config(cfg)
        self.status("running")
        self.log("Training started.")

    def finished(self, result: runfolder.RunResult) -> None:
        if result.config is not None:
            self.config(result.config)
        self.status(result.state)
        summary = describe_outcome(result.metrics)
        self.log(f"Training {result.state}." + (f" {summary}." if summary else ""))

    def failed(self, message: str, state: str = "failed") -> None:
        self.status(state, error=message)
        self.log(f"Training {state}: {message}")

    # --- live input ----------------------------------------------------------------------------
    def event_log(self) -> EventSink:
        """An event sink that writes each event's line to log.txt (progress lines every 10 s)."""
        last = [0.0]

        def sink(ev: dict[str, Any]) -> None:
            line = describe(ev)
            if line is None:
                return
            progress = ev.get("type") == "log" or ev.get("fraction") not in (None, 1.0)
            now = time.time()
            if progress and now - last[0] < LOG_EVERY_S and ev.get("progress") != 1.0:
                return
            if progress:
                last[0] = now
            self.log(line)

        return sink

    @contextlib.contextmanager
    def capture_logs(self) -> Iterator[None]:
        """Copy warnings and errors logged by this thread (astapp, transformers, ...) into log.txt."""
        handler = _ThreadLogHandler(self, threading.get_ident())
        # transformers' loggers do not propagate to the root logger, so listen there too
        loggers = [logging.getLogger(), logging.getLogger("transformers")]
        for lg in loggers:
            lg.addHandler(handler)
        try:
            yield
        finally:
            for lg in loggers:
                lg.removeHandler(handler)


class _ThreadLogHandler(logging.Handler):
    def __init__(self, record: RunRecord, thread_id: int):
        super().__init__(logging.INFO)
        self.record, self.thread_id = record, thread_id

    def emit(self, rec: logging.LogRecord) -> None:
        if rec.thread != self.thread_id:
            return
        with contextlib.suppress(Exception):  # logging must never break training
            self.record.log(f"{rec.levelname.lower()}: {rec.getMessage()}")


def run_engine(cfg: TrainConfig, events: EventSink | None = None,
               stop: threading.Event | None = None) -> runfolder.RunResult:
    """The engine for `cfg.task`: `astapp.training.pipeline.train`, `astapp.crossval.task.run_cv` for task
    "cv", `astapp.distill.run.distill_run` for task "distill", `astapp.tuning.search.run_tune` for task "tune";
    imported only when a run really starts (torch is heavy). The default `TrainFn` of `run_job`."""
    if cfg.task == "distill":
        from astapp.distill.run import distill_run

        return distill_run(cfg, events, stop)
    if cfg.task == "cv":
        from astapp.crossval.task import run_cv

        return run_cv(cfg, events, stop)
    if cfg.task == "tune":
        from astapp.tuning.search import run_tune

        return run_tune(cfg, events, stop)
    from astapp.training.pipeline import train as run_engine

    return run_engine(cfg, events, stop)


def run_job(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None,
            train_fn: TrainFn | None = None, record: RunRecord | None = None,
            record_result: bool = True) -> runfolder.RunResult:
    """Run the engine per `cfg` into `cfg.output`, recording status, config and log; returns its result.

    Raises the plain-English `AstappError` for anything we can explain (bad settings, bad data, out of
    memory, a full disk) after recording it as the run's error; anything else is recorded with its
    traceback in log.txt and re-raised. `record_result=False` leaves recording the result to the caller
    (the job manager, when a slice ends and the run goes on).
    """
    cfg.require_valid()
    record = record or RunRecord(cfg.output)
    record.started(cfg)
    sink = fanout(record.event_log(), events)
    try:
        with record.capture_logs():
            result = (train_fn or run_engine)(cfg, sink, stop)
    except KeyboardInterrupt:
        record.failed("Interrupted; resume from the last checkpoint.", state="interrupted")
        raise
    except BaseException as exc:
        known = user_error(exc, record.folder)
        if known is None:
            record.log("".join(traceback.format_exception(exc)).rstrip())
        record.failed(explain(exc, record.folder))
        if known is not None and known is not exc:
            raise known from exc
        raise
    if record_result:
        record.finished(result)
    return result


def release_memory() -> None:
    """Free what a finished (or out-of-memory) job left behind before the next one starts."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
