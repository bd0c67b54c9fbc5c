"""The training queue: one job at a time per device, FIFO, bounded, run by a background thread.

No gradio here; the UI and tests drive it through `JobManager` (or the process-wide `get_manager()`).
A job id is the id of its run folder, so a page reloaded after an app restart can still read the
run's history and log::

    from astapp.jobs import get_manager
    from astapp.sessions import Session

    jm = get_manager()                                 # data root from ASTAPP_DATA_DIR; recover() done
    s = Session.open(request.session_hash, jm.root)
    job = jm.active_job(s.owner) or jm.submit(s.owner, cfg, name="dogs vs cats")
    evs, cursor = jm.events(job, since=cursor, owner=s.owner)    # poll from a gr.Timer
    snap = jm.snapshot(job, owner=s.owner)    # state, position, progress, elapsed, eta, log, error
    jm.stop(job, owner=s.owner)                                   # graceful; cancels a queued job
    jm.list_runs(s.owner); jm.resume(s.owner, run_id)

Always pass `owner=` from the UI: it makes a job of another session invisible (AccessError).
A job that raises (bad settings, out of memory, any bug) is recorded as failed with a readable
message; the worker keeps serving the queue. Limits: `ASTAPP_MAX_QUEUE` waiting jobs (default 8),
`ASTAPP_MAX_JOBS_PER_USER` queued-or-running per owner (default 1).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp import runs
from astapp.config import TrainConfig, env_int
from astapp.errors import AccessError, AstappError, QueueFullError, TrainingError
from astapp.paths import check_id, data_root, runs_dir
from astapp.sessions import cleanup_idle as _cleanup_idle

log = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]
TrainFn = Callable[[TrainConfig, "EventSink | None", "threading.Event | None"], Any]

OOM_HINT = ("Training ran out of memory. Try a smaller batch size, a shorter input length, or the "
            "frozen / last-N mode, which are lighter and faster.")
PROGRESS_LOG_EVERY_S = 10.0


def _default_train(cfg: TrainConfig, events: EventSink | None, stop: threading.Event | None) -> Any:
    from astapp.train import train  # lazy: heavy imports only when a job actually runs

    return train(cfg, events, stop)


def explain(exc: BaseException) -> str:
    """A user-facing sentence for an exception raised by a training job."""
    if isinstance(exc, AstappError):
        return str(exc)
    text = str(exc)
    oom = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
    if oom or "out of memory" in text.lower():
        return OOM_HINT
    return (f"Training failed with an unexpected error ({type(exc).__name__}: {text[:300]}). "
            "See the log for details.")


@dataclass
class Job:
    """In-memory state of one queued, running or recently finished job."""

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
    last_progress_log: float = 0.0


class _ThreadLogHandler(logging.Handler):
    """Copies log records emitted by the worker thread into the running job's log.txt."""

    def __init__(self, run_dir: Path, thread_id: int):
        super().__init__(logging.INFO)
        self.run_dir, self.thread_id = run_dir, thread_id

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id:
            return
        with contextlib.suppress(Exception):  # logging must never break training
            runs.append_log(self.run_dir, f"{record.levelname.lower()}: {record.getMessage()}")


class JobManager:
    """FIFO training queue with one background worker thread (one job at a time on this device)."""

    def __init__(self, root: Path | str | None = None, train_fn: TrainFn | None = None,
                 max_queue: int | None = None, max_per_user: int | None = None, start: bool = True,
                 max_events: int = 20_000, cleanup_interval_s: float = 0.0):
        self.root = Path(root).resolve() if root is not None else data_root()
        runs_dir(self.root).mkdir(parents=True, exist_ok=True)
        self.train_fn: TrainFn = train_fn or _default_train
        self.max_queue = env_int("ASTAPP_MAX_QUEUE", 8) if max_queue is None else max_queue
        self.max_per_user = env_int("ASTAPP_MAX_JOBS_PER_USER", 1) if max_per_user is None else max_per_user
        self.max_events = max_events
        self.cleanup_interval_s = cleanup_interval_s
        self._cond = threading.Condition(threading.RLock())
        self._queue: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._jobs: dict[str, Job] = {}
        self._closing = False
        self._closed = threading.Event()  # wakes the janitor on shutdown
        self._worker: threading.Thread | None = None
        self._janitor: threading.Thread | None = None
        if start:
            self.start()

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker (and the idle-cleanup thread when `cleanup_interval_s` > 0)."""
        with self._cond:
            if self._worker is None or not self._worker.is_alive():
                self._closing = False
                self._closed.clear()
                self._worker = threading.Thread(target=self._work, name="astapp-train-worker", daemon=True)
                self._worker.start()
            if self.cleanup_interval_s > 0 and (self._janitor is None or not self._janitor.is_alive()):
                self._janitor = threading.Thread(target=self._janitor_loop, name="astapp-janitor",
                                                 daemon=True)
                self._janitor.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the running job gracefully, cancel queued ones, and join the worker."""
        with self._cond:
            self._closing = True
            self._closed.set()
            for job in list(self._queue):
                self._cancel_queued(job, "Cancelled because the app is shutting down.")
            if self._running is not None:
                self._running.stop_event.set()
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)

    # --- submitting ------------------------------------------------------------------------------
    def submit(self, owner: str, cfg: TrainConfig, name: str = "") -> str:
        """Queue a training run for `owner`; returns its job id (= run id).

        Creates `runs/<owner>/<run_id>/` with config.json (cfg.output pointing there), meta.json
        and status "queued". Raises TrainingError for invalid settings, QueueFullError when the
        owner already has a job or the queue is full.
        """
        check_id(owner, "session")
        problems = cfg.validate()
        if problems:
            raise TrainingError(" ".join(problems))
        cfg = TrainConfig.from_dict(cfg.to_dict())  # private copy: the caller's form state is untouched
        with self._cond:
            self._check_limits(owner)
            run_id = runs.new_run_id()
            while (runs_dir(self.root) / owner / run_id).exists():
                run_id = runs.new_run_id()
            rd = runs_dir(self.root) / owner / run_id
            rd.mkdir(parents=True)
            cfg.output = str(rd)
            clean_name = " ".join(str(name).split())[:80] or _default_name(cfg)
            cfg.save(rd / "config.json")
            runs.write_meta(rd, name=clean_name, owner=owner)
            job = Job(run_id, owner, clean_name, rd, cfg)
            self._enqueue(job, f"Queued run {clean_name!r} ({run_id}).")
            return run_id

    def resume(self, owner: str, run_id: str) -> str:
        """Queue an interrupted (or stopped) run again in its own folder, from its last checkpoint."""
        rd = runs.run_dir(self.root, owner, run_id, write=True)
        info = runs.RunInfo.from_dir(rd, owner)
        if not info.resumable:
            raise AccessError(f"Run {run_id!r} is {info.state} and cannot be resumed; "
                              "start a new run instead.")
        try:
            cfg = TrainConfig.load(rd / "config.json")
        except (OSError, ValueError, TypeError) as e:
            raise TrainingError(f"Run {run_id!r} cannot be resumed: its config.json is unreadable "
                                f"({e}).") from e
        cfg.output = str(rd)
        cfg.resume = info.last_checkpoint or ""
        with self._cond:
            if run_id in self._jobs and self._jobs[run_id].state in runs.ACTIVE:
                raise QueueFullError(f"Run {run_id!r} is already queued or running.")
            self._check_limits(owner)
            job = Job(run_id, owner, info.name, rd, cfg)
            job.events = runs.read_history(rd)  # keep the earlier curves on the live plot
            cfg.save(rd / "config.json")
            where = f"from {Path(cfg.resume).name}" if cfg.resume else "from the start (no checkpoint)"
            self._enqueue(job, f"Resuming {where}.")
            return run_id

    def _check_limits(self, owner: str) -> None:
        mine = sum(1 for j in self._active() if j.owner == owner)
        if mine >= self.max_per_user:
            raise QueueFullError("You already have a training job queued or running. Wait for it to "
                                 "finish or stop it before starting another.")
        if len(self._queue) >= self.max_queue:
            raise QueueFullError(f"The training queue is full ({self.max_queue} jobs waiting). "
                                 "Please try again in a while.")

    def _enqueue(self, job: Job, message: str) -> None:
        runs.write_status(job.run_dir, "queued")
        runs.append_log(job.run_dir, message)
        self._jobs[job.id] = job
        self._queue.append(job)
        self._prune()
        self._cond.notify_all()

    # --- queries ---------------------------------------------------------------------------------
    def _active(self) -> list[Job]:
        return ([self._running] if self._running else []) + list(self._queue)

    def _job(self, job_id: str, owner: str | None) -> Job | None:
        check_id(job_id, "job id")
        job = self._jobs.get(job_id)
        if job is not None and owner is not None and job.owner != owner:
            raise AccessError(f"There is no job {job_id!r} in this session.")
        return job

    def position(self, job_id: str, owner: str | None = None) -> int | None:
        """0 while running, n when n-th in line, None when not queued or running."""
        with self._cond:
            job = self._job(job_id, owner)
            if job is None:
                return None
            if job is self._running:
                return 0
            for i, q in enumerate(self._queue, start=1):
                if q is job:
                    return i
            return None

    def queue_length(self) -> int:
        with self._cond:
            return len(self._queue)

    def active_job(self, owner: str) -> str | None:
        """The owner's running job, else their first queued one (so a reloaded page re-attaches)."""
        with self._cond:
            for job in self._active():
                if job.owner == owner:
                    return job.id
            return None

    def events(self, job_id: str, since: int = 0,
               owner: str | None = None) -> tuple[list[dict[str, Any]], int]:
        """Events after cursor `since` and the next cursor.

        Live jobs read the in-memory buffer; runs from before a restart read history.jsonl. A cursor
        past the end (e.g. after a restart) starts again from 0.
        """
        since = max(0, int(since))
        with self._cond:
            job = self._job(job_id, owner)
            if job is not None:
                end = job.events_base + len(job.events)
                if since > end:
                    since = 0
                start = max(since, job.events_base) - job.events_base
                return [dict(e) for e in job.events[start:]], end
        hist = runs.read_history(self._run_dir(job_id, owner))
        if since > len(hist):
            since = 0
        return hist[since:], len(hist)

    def tail(self, job_id: str, n: int = 50, owner: str | None = None) -> list[str]:
        """Last `n` lines of the run's log.txt."""
        with self._cond:
            job = self._job(job_id, owner)
        rd = job.run_dir if job else self._run_dir(job_id, owner)
        return runs.read_tail(rd / "log.txt", n)

    def snapshot(self, job_id: str, owner: str | None = None, log_lines: int = 20) -> dict[str, Any]:
        """Everything a progress panel shows: state, position, progress (0..1), elapsed and eta
        (seconds), message, log tail, error, queue length."""
        with self._cond:
            job = self._job(job_id, owner)
            if job is not None:
                now = time.time()
                elapsed = 0.0 if job.started is None else (job.finished or now) - job.started
                snap = {"job_id": job.id, "run_id": job.id, "name": job.name, "state": job.state,
                        "position": self.position(job.id), "progress": job.progress, "elapsed": elapsed,
                        "eta": job.eta if job.state == "running" else None, "message": job.message,
                        "error": job.error, "queue_length": len(self._queue)}
                rd = job.run_dir
            else:
                rd = self._run_dir(job_id, owner)
                info = runs.RunInfo.from_dir(rd, rd.parent.name)
                snap = {"job_id": job_id, "run_id": job_id, "name": info.name, "state": info.state,
                        "position": None, "progress": 1.0 if info.state == "finished" else 0.0,
                        "elapsed": max(0.0, info.updated - info.created), "eta": None,
                        "message": info.error or f"Run {info.state}.", "error": info.error,
                        "queue_length": len(self._queue)}
        snap["log"] = runs.read_tail(rd / "log.txt", log_lines)
        return snap

    def wait(self, job_id: str, timeout: float | None = None) -> str:
        """Block until the job ends (or `timeout`); returns its state. For tests and the CLI."""
        with self._cond:
            job = self._job(job_id, None)
        if job is None:
            raise AccessError(f"There is no job {job_id!r}.")
        job.done.wait(timeout)
        return job.state

    def _run_dir(self, job_id: str, owner: str | None) -> Path:
        """Folder of a job that is no longer in memory (owner-checked when `owner` is given)."""
        if owner is not None:
            return runs.run_dir(self.root, owner, job_id)
        for od in runs_dir(self.root).iterdir():
            cand = od / job_id
            if cand.is_dir() and (cand / "status.json").exists():
                return cand
        raise AccessError(f"There is no job or run {job_id!r}.")

    # --- control ---------------------------------------------------------------------------------
    def stop(self, job_id: str, owner: str | None = None) -> bool:
        """Stop gracefully (a queued job is cancelled). False when the job is not active."""
        with self._cond:
            job = self._job(job_id, owner)
            if job is None or job.state not in runs.ACTIVE:
                return False
            if job.state == "queued":
                self._cancel_queued(job, "Cancelled before it started.")
                return True
            job.stop_event.set()
            job.message = "Stopping after the current step..."
            runs.append_log(job.run_dir, "Stop requested; finishing the current step.")
            return True

    def _cancel_queued(self, job: Job, message: str) -> None:
        self._queue.remove(job)
        job.state, job.message, job.finished = "stopped", message, time.time()
        runs.write_status(job.run_dir, "stopped", error=None, message=message)
        runs.append_log(job.run_dir, message)
        job.done.set()
        self._cond.notify_all()

    # --- registry and housekeeping (delegates, so the UI needs only this object) ----------------
    def list_runs(self, owner: str) -> list[runs.RunInfo]:
        return runs.list_runs(self.root, owner)

    def get_run(self, owner: str, run_id: str) -> runs.RunInfo:
        return runs.get_run(self.root, owner, run_id)

    def delete_run(self, owner: str, run_id: str) -> None:
        """Delete one of the owner's own runs; refused while it is queued or running."""
        rd = runs.run_dir(self.root, owner, run_id, write=True)
        with self._cond:
            if any(j.id == run_id for j in self._active()):
                raise AccessError("This run is still queued or running; stop it first.")
            shutil.rmtree(rd)
            self._jobs.pop(run_id, None)

    def recover(self) -> list[runs.RunInfo]:
        """At startup: mark runs left queued/running by a dead process as interrupted (resumable)."""
        with self._cond:
            live = {j.id for j in self._active()}
        return runs.recover(self.root, live_runs=live)

    def cleanup_idle(self, now: float | None = None) -> list[Path]:
        """Delete idle workspaces (and expired runs if a run TTL is set), sparing active jobs."""
        with self._cond:  # only the snapshot of active jobs needs the lock, not the deleting
            active = self._active()
        owners = {j.owner for j in active}
        return _cleanup_idle(self.root, now=now, busy_owners=owners, busy_runs={j.id for j in active})

    def _janitor_loop(self) -> None:
        while not self._closed.wait(self.cleanup_interval_s):
            try:
                self.cleanup_idle()
            except Exception:  # noqa: BLE001 - housekeeping must never stop the app
                log.exception("Idle cleanup failed")

    def _prune(self, keep: int = 200) -> None:
        """Forget the oldest finished jobs (their runs stay on disk)."""
        done = [j for j in self._jobs.values() if j.state not in runs.ACTIVE]
        for j in done[: max(0, len(done) - keep)]:
            del self._jobs[j.id]

    # --- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                job = self._queue.popleft()
                self._running = job
                job.state, job.started, job.message = "running", time.time(), "Starting..."
            try:
                self._run(job)
            except BaseException as e:  # noqa: BLE001 - the worker must survive anything
                log.exception("Worker error on job %s", job.id)
                self._finish(job, "failed", explain(e))
            finally:
                _release_memory()
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _run(self, job: Job) -> None:
        runs.write_status(job.run_dir, "running")
        runs.append_log(job.run_dir, "Training started.")
        handler = _ThreadLogHandler(job.run_dir, threading.get_ident())
        # transformers' loggers do not propagate to the root logger, so listen there too
        loggers = [logging.getLogger(), logging.getLogger("transformers")]
        for lg in loggers:
            lg.addHandler(handler)
        try:
            self.train_fn(job.cfg, lambda ev: self._on_event(job, ev), job.stop_event)
        except BaseException as e:  # noqa: BLE001 - recorded as a failed run, never re-raised
            msg = explain(e)
            if not isinstance(e, AstappError):
                runs.append_log(job.run_dir, "".join(traceback.format_exception(e)).rstrip())
            self._finish(job, "failed", msg)
            return
        finally:
            for lg in loggers:
                lg.removeHandler(handler)
        status = runs.read_json(job.run_dir / "status.json")
        state = status.get("state")
        if state not in ("finished", "stopped", "failed"):
            state = "stopped" if job.stop_event.is_set() else "finished"
        self._finish(job, state, status.get("error") if state == "failed" else None)

    def _finish(self, job: Job, state: str, error: str | None) -> None:
        status = runs.read_json(job.run_dir / "status.json")
        if status.get("state") != state or (error and status.get("error") != error):
            runs.write_status(job.run_dir, state, error=error)
        messages = {"finished": "Training finished.", "stopped": "Training stopped.",
                    "failed": f"Training failed: {error}"}
        with self._cond:
            job.state, job.error, job.finished = state, error, time.time()
            if self._running is job:  # free the slot before waiters wake, so limits and positions agree
                self._running = None
            job.message = messages.get(state, state)
            if state == "finished":
                job.progress = 1.0
            if state == "failed" and not (job.events and job.events[-1].get("type") == "error"):
                self._append_event(job, {"type": "error", "message": error, "time": time.time()})
        runs.append_log(job.run_dir, job.message)
        job.done.set()

    def _append_event(self, job: Job, ev: dict[str, Any]) -> None:
        job.events.append(ev)
        overflow = len(job.events) - self.max_events
        if overflow > 0:
            del job.events[:overflow]
            job.events_base += overflow

    def _on_event(self, job: Job, event: dict[str, Any]) -> None:
        """Event sink handed to train: buffer for live plots, update progress, write log lines."""
        try:
            ev = dict(event)
            ev.setdefault("time", time.time())
            kind = ev.get("type")
            line = None
            with self._cond:
                self._append_event(job, ev)
                if isinstance(ev.get("progress"), (int, float)):
                    job.progress = min(1.0, max(0.0, float(ev["progress"])))
                if isinstance(ev.get("eta"), (int, float)):
                    job.eta = float(ev["eta"])
                if kind == "stage":
                    job.message = str(ev.get("message") or ev.get("stage") or "")
                    line = job.message
                elif kind == "log":
                    job.message = _progress_text(ev)
                    now = time.time()
                    if now - job.last_progress_log >= PROGRESS_LOG_EVERY_S or job.progress >= 1.0:
                        job.last_progress_log, line = now, job.message
                elif kind == "eval":
                    line = "Evaluation: " + ", ".join(
                        f"{k} {v:.4g}" for k, v in ev.items()
                        if k not in ("type", "time") and isinstance(v, (int, float)))
                elif kind == "error":
                    line = f"Error: {ev.get('message')}"
                elif kind == "done":
                    line = "Done."
                elif kind == "warning":
                    line = f"Warning: {ev.get('message')}"
            if line:
                runs.append_log(job.run_dir, line)
        except Exception:  # noqa: BLE001 - a display problem must never break training
            log.exception("Could not record an event for job %s", job.id)


def _release_memory() -> None:
    """Free what a finished (or out-of-memory) job left behind before the next one starts."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _progress_text(ev: dict[str, Any]) -> str:
    parts = []
    if "epoch" in ev:
        parts.append(f"epoch {float(ev['epoch']):.2f}")
    if "step" in ev:
        parts.append(f"step {ev['step']}")
    if isinstance(ev.get("loss"), (int, float)):
        parts.append(f"loss {ev['loss']:.4f}")
    if isinstance(ev.get("lr"), (int, float)):
        parts.append(f"lr {ev['lr']:.2e}")
    if isinstance(ev.get("progress"), (int, float)):
        parts.append(f"{100 * float(ev['progress']):.0f}%")
    return "Training: " + ", ".join(parts) if parts else "Training..."


def _default_name(cfg: TrainConfig) -> str:
    data = Path(cfg.data.rstrip("/")).name or "data"
    model = cfg.model.rstrip("/").split("/")[-1] or "model"
    return f"{data} · {model}"


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide manager (data root from the environment), created and recovered once."""
    global _manager
    with _manager_lock:
        if _manager is None:
            m = JobManager(cleanup_interval_s=env_int("ASTAPP_CLEANUP_INTERVAL_S", 900))
            for info in m.recover():
                log.warning("Run %s was interrupted by a restart; it can be resumed.", info.id)
            _manager = m
        return _manager
