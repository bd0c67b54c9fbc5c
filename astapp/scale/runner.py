"""Run a per-file job over many files: in this process, or on Ray actors that each hold one model.

Why Ray actors and not Ray Data's `map_batches`: the unit that must finish, be recorded and be skipped on a
rerun is a *file*, while `map_batches` cuts its stream into blocks of rows regardless of which file they came
from. Reassembling a file's windows would need a group-by (a shuffle that waits for every block) or writes
from inside the batch function, which Ray repeats when it retries a block (written twice). One actor call
per file keeps what the single-machine run does: the file is decoded in blocks inside the worker (the job's
own streaming decoder), its windows go through the model in batches, and the result comes back to this
process, the one writer of the records. Ray does the placement, the restarts and the retries: each actor is
created with `max_restarts=-1` (a killed worker comes back and loads its model again) and
`max_task_retries`, so the file it was working on runs again; a file that kills its worker every time is
recorded as failed once its retries are used up, and the others finish.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from astapp.core.errors import explain
from astapp.core.events import EventSink, make_event
from astapp.scale.cluster import connected, preflight

FileFn = Callable[[str], dict[str, Any]]


class FileJob(Protocol):
    """What a per-file job gives the runner. It is pickled to every worker, so it holds settings only."""

    threads: int

    def open(self) -> FileFn:
        """Load the model (once per worker) and return the function that turns one file into its result."""
        ...


class Store(Protocol):
    """Where a job's per-file results go, written by the driver alone (`astapp.scale.detect.DetectStore`)."""

    def pending(self, files: list[str]) -> list[str]:
        """The files without a finished record."""
        ...

    def save(self, file: str, result: Any) -> None: ...

    def fail(self, file: str, sentence: str) -> None: ...


@dataclass
class Summary:
    total: int
    skipped: int  # finished by an earlier run
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # file -> sentence
    seconds: float = 0.0
    workers: int = 1
    stopped: bool = False


def run_one(fn: FileFn, file: str) -> tuple[str, dict[str, Any] | str]:
    """('ok', result) or ('error', sentence): a file that cannot be read never stops the others."""
    try:
        return "ok", fn(file)
    except Exception as e:  # noqa: BLE001 - one bad file is listed as failed, the job goes on
        return "error", explain(e)


class FileWorker:
    """A Ray actor's body: one model, loaded once, with its own thread count."""

    def __init__(self, job: FileJob):
        set_threads(job.threads)  # before the model's libraries load (OpenMP reads it once) ...
        self.fn = job.open()
        set_threads(job.threads)  # ... and torch's own setting, now that it is loaded

    def pid(self) -> int:
        return os.getpid()

    def run(self, file: str) -> tuple[str, dict[str, Any] | str]:
        return run_one(self.fn, file)


def set_threads(threads: int) -> None:
    """Threads for torch (when it is loaded) and for numpy's BLAS in workers started after this."""
    if threads > 0:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


def run_files(job: FileJob, files: list[str], store: Store, *, ray: str | None = None, workers: int = 0,
              events: EventSink | None = None, stop: threading.Event | None = None,
              on_workers: Callable[[list[Any]], None] | None = None) -> Summary:
    """Every pending file's result saved in `store`. `ray` None: in this process; otherwise on Ray ('': a
    local Ray on this machine; 'auto' or an address: a cluster) with `workers` actors of `job.threads` CPUs
    each (0: as many as the cluster's CPUs allow). `on_workers` gets the actor handles once they exist."""
    if ray is not None:
        preflight(ray)  # a missing Ray or an unreachable cluster: one sentence, nothing written or started
    unique = list(dict.fromkeys(str(f) for f in files))
    todo = store.pending(unique)
    summary = Summary(total=len(unique), skipped=len(unique) - len(todo))
    start = time.perf_counter()
    if todo and ray is None:
        set_threads(job.threads)
        _in_process(job.open(), todo, store, summary, events, stop)
    elif todo:
        with connected(ray, num_cpus=(workers * job.threads) or None) as rt:
            _on_ray(rt, job, todo, store, summary, workers, events, stop, on_workers)
    summary.seconds = time.perf_counter() - start
    return summary


def _record(store: Store, summary: Summary, file: str, outcome: tuple[str, Any],
            events: EventSink | None, worker: int = 0) -> None:
    status, value = outcome
    if status == "ok":
        store.save(file, value)
        summary.done += 1
    else:
        store.fail(file, value)
        summary.failed[file] = value
    if events:
        events(make_event("progress", file=file, status=status, error=None if status == "ok" else value, worker=worker,
                          done=summary.done + summary.skipped, failed=len(summary.failed), total=summary.total))


def _in_process(fn: FileFn, todo: list[str], store: Store, summary: Summary,
                events: EventSink | None, stop: threading.Event | None) -> None:
    for file in todo:
        if stop is not None and stop.is_set():
            summary.stopped = True
            return
        _record(store, summary, file, run_one(fn, file), events)


def _on_ray(rt: Any, job: FileJob, todo: list[str], store: Store, summary: Summary, workers: int,
            events: EventSink | None, stop: threading.Event | None,
            on_workers: Callable[[list[Any]], None] | None) -> None:
    threads = max(1, job.threads)
    count = workers or max(1, int(rt.cluster_resources().get("CPU", 1)) // threads)
    count = max(1, min(count, len(todo)))
    actor = rt.remote(num_cpus=threads, max_restarts=-1, max_task_retries=2)(FileWorker)
    pool = [actor.remote(job) for _ in range(count)]
    summary.workers = count
    if on_workers:
        on_workers(pool)
    queue, running = list(reversed(todo)), {}
    try:
        while queue or running:
            while queue and len(running) < count and not (stop is not None and stop.is_set()):
                busy = {i for i, _ in running.values()}
                free = next(i for i in range(count) if i not in busy)
                file = queue.pop()
                running[pool[free].run.remote(file)] = (free, file)
            if not running:
                break
            ready, _ = rt.wait(list(running), num_returns=1)
            worker, file = running.pop(ready[0])
            _record(store, summary, file, _outcome(rt, ready[0]), events, worker)
    finally:
        for a in pool:  # on a cluster that stays up, the models' memory is given back now
            rt.kill(a)
    summary.stopped = bool(queue)


def _outcome(rt: Any, ref: Any) -> tuple[str, Any]:
    try:
        return rt.get(ref)
    except rt.exceptions.RayActorError as e:  # its retries are used up: this file keeps killing its worker
        return "error", ("The worker processing this file died every time it tried (out of memory, or a crash in "
                         f"a native library: {type(e).__name__}); process it alone to see why.")
