"""The training queue: one job at a time per device, FIFO, bounded, run by a background thread (the
engine's own runs in a child process of it, `astapp.jobs.child`).

A job id is the id of its run folder, so a page reloaded after an app restart can still read the
run's history and log. Every per-job method takes `owner=`, which makes a job of another session
invisible (AccessError). A job runs through `astapp.jobs.record.run_job`, so its run folder is recorded
exactly as a CLI run's is (`RunRecord` writes status, config, meta and log; the engine answers by
return value). A job that raises (bad settings, out of memory, a full disk, any bug) is recorded as
failed with the sentence `astapp.core.errors.explain` gives, and the worker keeps serving the queue.
Limits: `ASTAPP_MAX_QUEUE` waiting jobs (default 8), `ASTAPP_MAX_JOBS_PER_USER` queued-or-running per
owner (default 1). The UI reaches all of this through `astapp.service`.
"""

from __future__ import annotations

import collections
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from astapp.core import runfolder
from astapp.core.config import TrainConfig, env_int
from astapp.core.errors import AccessError, QueueFullError, TrainingError, explain
from astapp.core.paths import check_id, data_root, runs_dir
from astapp.jobs import child, priority, record, registry, slicing
from astapp.jobs.job import Job, default_name
from astapp.jobs.record import TrainFn
from astapp.jobs.sessions import cleanup_idle as _cleanup_idle
from astapp.jobs.sessions import every

log = logging.getLogger(__name__)

STOPPING = "Stopping: finishing the current step, then saving the best weights so far."


class JobManager:
    """FIFO training queue with one background worker thread (one job at a time on this device)."""

    def __init__(self, root: Path | str | None = None, train_fn: TrainFn | None = None,
                 max_queue: int | None = None, max_per_user: int | None = None, start: bool = True,
                 max_events: int = 20_000, cleanup_interval_s: float = 0.0, slice_seconds: float | None = None):
        self.root = Path(root).resolve() if root is not None else data_root()
        runs_dir(self.root).mkdir(parents=True, exist_ok=True)
        self.train_fn: TrainFn = train_fn or record.run_engine
        self.max_queue = env_int("ASTAPP_MAX_QUEUE", 8) if max_queue is None else max_queue
        self.max_per_user = env_int("ASTAPP_MAX_JOBS_PER_USER", 1) if max_per_user is None else max_per_user
        self.max_events = max_events
        self.slice_seconds = slicing.slice_seconds() if slice_seconds is None else float(slice_seconds)
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
                self._janitor = every(self.cleanup_interval_s, self.cleanup_idle, self._closed, "astapp-janitor")

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
        cfg.require_valid()
        cfg = TrainConfig.from_dict(cfg.to_dict())  # private copy: the caller's form state is untouched
        with self._cond:
            self._check_limits(owner)
            run_id = registry.new_run_id()
            while (runs_dir(self.root) / owner / run_id).exists():
                run_id = registry.new_run_id()
            rd = runs_dir(self.root) / owner / run_id
            rd.mkdir(parents=True)
            cfg.output = str(rd)
            clean_name = " ".join(str(name).split())[:80] or default_name(cfg)
            job = Job(run_id, owner, clean_name, rd, cfg)
            job.record.create(cfg, clean_name, owner)
            job.record.log(f"Queued run {clean_name!r} ({run_id}).")
            self._enqueue(job)
            return run_id

    def resume(self, owner: str, run_id: str) -> str:
        """Queue an interrupted (or stopped) run again in its own folder, from its last checkpoint."""
        rd = registry.run_dir(self.root, owner, run_id, write=True)
        info = registry.RunInfo.from_dir(rd, owner)
        if not info.resumable:
            raise AccessError(f"Run {run_id!r} is {info.state} and cannot be resumed; "
                              "start a new run instead.")
        try:
            cfg = TrainConfig.load(rd / runfolder.CONFIG)
        except (OSError, ValueError, TypeError) as e:
            raise TrainingError(f"Run {run_id!r} cannot be resumed: its config.json is unreadable "
                                f"({e}).") from e
        cfg.output = str(rd)
        cfg.resume = info.last_checkpoint or ""
        with self._cond:
            if run_id in self._jobs and self._jobs[run_id].state in runfolder.ACTIVE:
                raise QueueFullError(f"Run {run_id!r} is already queued or running.")
            self._check_limits(owner)
            job = Job(run_id, owner, info.name, rd, cfg)
            job.events = runfolder.read_history(rd)  # keep the earlier curves on the live plot
            where = f"from {Path(cfg.resume).name}" if cfg.resume else "from the start (no checkpoint)"
            job.record.queued(cfg, f"Resuming {where}.")
            self._enqueue(job)
            return run_id

    def _check_limits(self, owner: str) -> None:
        mine = sum(1 for j in self._active() if j.owner == owner)
        if mine >= self.max_per_user:
            raise QueueFullError("You already have a training job queued or running. Wait for it to "
                                 "finish or stop it before starting another.")
        if len(self._queue) >= self.max_queue:
            raise QueueFullError(f"The training queue is full ({self.max_queue} jobs waiting). "
                                 "Please try again in a while.")

    def _enqueue(self, job: Job) -> None:
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
            return next((i for i, q in enumerate(self._queue, start=1) if q is job), None)

    def queue_length(self) -> int:
        with self._cond:
            return len(self._queue)

    def active_job(self, owner: str) -> str | None:
        """The owner's running job, else their first queued one (so a reloaded page re-attaches)."""
        with self._cond:
            return next((job.id for job in self._active() if job.owner == owner), None)

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
                return job.events_since(since)
        hist = runfolder.read_history(self._run_dir(job_id, owner))
        if since > len(hist):
            since = 0
        return hist[since:], len(hist)

    def tail(self, job_id: str, n: int = 50, owner: str | None = None) -> list[str]:
        """Last `n` lines of the run's log.txt."""
        with self._cond:
            job = self._job(job_id, owner)
        rd = job.run_dir if job else self._run_dir(job_id, owner)
        return runfolder.read_tail(rd / runfolder.LOG, n)

    def snapshot(self, job_id: str, owner: str | None = None, log_lines: int = 20) -> dict[str, Any]:
        """Everything a progress panel shows: state, position, jobs ahead (the running one counts), progress
        (0..1), elapsed and eta (seconds), message, log tail, error, queue length, and the epochs the run is
        set to (so a curve over epochs can fix its axis from its first point)."""
        with self._cond:
            job = self._job(job_id, owner)
            if job is not None:
                position = self.position(job.id)
                ahead = None if not position else position - 1 + (self._running is not None)
                snap = {**job.snapshot(), "position": position, "ahead": ahead, "queue_length": len(self._queue)}
                rd = job.run_dir
            else:
                rd = self._run_dir(job_id, owner)
                snap = {**registry.RunInfo.from_dir(rd, rd.parent.name).snapshot(), "queue_length": len(self._queue)}
        snap["log"] = runfolder.read_tail(rd / runfolder.LOG, log_lines)
        snap["epochs"] = runfolder.number(runfolder.read_json(rd / runfolder.CONFIG).get("epochs"))
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
            return registry.run_dir(self.root, owner, job_id)
        for od in runs_dir(self.root).iterdir():
            cand = od / job_id
            if runfolder.is_run(cand):
                return cand
        raise AccessError(f"There is no job or run {job_id!r}.")

    # --- control ---------------------------------------------------------------------------------
    def stop(self, job_id: str, owner: str | None = None) -> bool:
        """Stop gracefully (a queued job is cancelled). False when the job is not active."""
        with self._cond:
            job = self._job(job_id, owner)
            if job is None or job.state not in runfolder.ACTIVE:
                return False
            if job.state == "queued":
                self._cancel_queued(job, "Cancelled before it started.")
                return True
            job.stop_event.set()
            job.message = STOPPING
            job.record.log("Stop requested; finishing the current step.")
            return True

    def _cancel_queued(self, job: Job, message: str) -> None:
        self._queue.remove(job)
        job.state, job.message, job.finished = "stopped", message, time.time()
        job.record.cancelled(message)
        job.done.set()
        self._cond.notify_all()

    # --- registry and housekeeping that must know the active jobs -------------------------------
    def list_runs(self, owner: str) -> list[registry.RunInfo]:
        return registry.list_runs(self.root, owner)

    def get_run(self, owner: str, run_id: str) -> registry.RunInfo:
        return registry.get_run(self.root, owner, run_id)

    def delete_run(self, owner: str, run_id: str) -> None:
        """Delete one of the owner's own runs; refused while it is queued or running."""
        rd = registry.run_dir(self.root, owner, run_id, write=True)
        with self._cond:
            if any(j.id == run_id for j in self._active()):
                raise AccessError("This run is still queued or running; stop it first.")
            shutil.rmtree(rd)
            self._jobs.pop(run_id, None)

    def recover(self) -> list[registry.RunInfo]:
        """At startup: mark runs left queued/running by a dead process as interrupted (resumable)."""
        with self._cond:
            live = {j.id for j in self._active()}
        return registry.recover(self.root, live_runs=live)

    def cleanup_idle(self, now: float | None = None) -> list[Path]:
        """Delete idle workspaces (and expired runs if a run TTL is set), sparing active jobs."""
        with self._cond:  # only the snapshot of active jobs needs the lock, not the deleting
            active = self._active()
        owners = {j.owner for j in active}
        return _cleanup_idle(self.root, now=now, busy_owners=owners, busy_runs={j.id for j in active})

    def _prune(self, keep: int = 200) -> None:
        """Forget the oldest finished jobs (their runs stay on disk)."""
        done = [j for j in self._jobs.values() if j.state not in runfolder.ACTIVE]
        for j in done[: max(0, len(done) - keep)]:
            del self._jobs[j.id]

    # --- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        if not child.uses(self.train_fn):  # a child process lowers itself; this thread stays (the GIL)
            priority.lower_this_thread()  # ASTAPP_TRAIN_NICE, for runs on this thread (see priority.py)
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                job = self._queue.popleft()
                self._running = job
                job.state, job.started, job.message = "running", job.started or time.time(), "Starting..."
                # with the state, under the lock: a running sliced job always shows its slice
                job.clock = slicing.SliceClock(job.stop_event, self.slice_seconds) if self.slice_seconds > 0 else None
            try:
                self._run(job)
            except BaseException as e:  # noqa: BLE001 - the worker must survive anything
                log.exception("Worker error on job %s", job.id)
                self._finish(job, "failed", explain(e))
            finally:
                record.release_memory()
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _run(self, job: Job) -> None:
        """Train through the runner (which records the run folder); keep the in-memory job in step. With
        slices on, a slice whose time ran out queues the next one instead of ending the run."""
        budget, sink = self.slice_seconds, (lambda ev: self._on_event(job, ev))
        try:
            if job.clock is None and child.uses(self.train_fn):
                result, ended = child.run_job(job.cfg, sink, job.stop_event, job.run_dir), False
            elif job.clock is None:
                result, ended = record.run_job(job.cfg, sink, job.stop_event, train_fn=self.train_fn,
                                               record=job.record, record_result=False), False
            else:
                result, ended = slicing.run_slice(job.clock, job.cfg, sink, job.record, self.train_fn)
        except BaseException as e:  # noqa: BLE001 - recorded as a failed run, never re-raised
            if budget > 0 and slicing.is_quota_error(e):
                msg = (f"ZeroGPU's GPU quota is used up ({str(e)[:200]}). The run is kept: continue it later "
                       "with 'Continue stopped run', when the quota has refilled.")
                job.record.cancelled(msg, error=msg)
                self._finish(job, "stopped", msg)
                return
            self._finish(job, "failed", explain(e, job.run_dir))
            return
        if ended:
            self._next_slice(job)
            return
        job.record.finished(result)
        self._finish(job, result.state, None)

    def _next_slice(self, job: Job) -> None:
        """Queue the run again (last in line) to resume from the checkpoint its slice just saved."""
        job.slices += 1
        ev = slicing.end_slice(job.record, job.cfg, job.slices, self.slice_seconds, lambda e: self._on_event(job, e))
        job.record.queued(job.cfg, f"Slice {job.slices} used its {self.slice_seconds:g} s; slice {job.slices + 1} "
                                   f"queued, resuming from {ev['checkpoint'] or 'the start'}.")
        with self._cond:
            job.state, job.clock = "queued", None
            job.message = f"Slice {job.slices} done; slice {job.slices + 1} is waiting for its turn."
            self._queue.append(job)
            self._cond.notify_all()

    def _finish(self, job: Job, state: str, error: str | None) -> None:
        with self._cond:
            if self._running is job:  # free the slot before waiters wake, so limits and positions agree
                self._running = None
            job.finish(state, error)
        job.done.set()

    def _on_event(self, job: Job, event: dict[str, Any]) -> None:
        """Event sink handed to the run: buffer for live plots, and the progress a snapshot shows."""
        try:
            with self._cond:
                job.add_event(event, self.max_events)
        except Exception:  # noqa: BLE001 - a display problem must never break training
            log.exception("Could not record an event for job %s", job.id)


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
