"""Run one job's engine in a process of its own, below the web server's priority (issue 24).

On a thread of the app's process, training shares the server's GIL and CPU: its Python between torch ops
(the Trainer, collation, augmentation) holds the GIL the poll and Stop handlers need, and a training thread
given a lower priority made it worse, since the server then waited for a rarely scheduled thread to hand
the GIL back (once 21.6 s for a Stop). A child process has its own GIL, so it can run at nice
`ASTAPP_TRAIN_NICE` (default 10): under contention the server and a browser on the same machine are served
first, and on idle cores the run is as fast as before.

The child runs `astapp.jobs.record.run_job` exactly as the worker thread would, so it is the one writer of
the run folder while it runs; its events come back over a pipe into the job's live view, a Stop reaches it
through a shared event, and the outcome (the result or the sentence for its error) is the last message.
(The app's one line on a Stop request is appended to log.txt beside the child's: whole lines, O_APPEND.)
Children fork from a server process that has already imported torch and the engine (`forkserver`), so a
job starts in well under a second after the first. A child ends with the app: it exits when the app's
process is gone, so a restarted app finds the run interrupted and resumable.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from astapp.core import runfolder
from astapp.core.config import TrainConfig
from astapp.core.env import env_int
from astapp.core.errors import TrainingError, explain
from astapp.core.events import EventSink
from astapp.jobs.record import RunRecord

DEFAULT_NICE = 10  # the training process's nice value unless ASTAPP_TRAIN_NICE says otherwise
POLL_S = 0.1  # how often the parent passes a Stop on while it waits for events
# The app's main module too: a child then has it already (a child of a fork server imports it otherwise,
# gradio and all).
PRELOAD = ["__main__", "torch", "transformers", "astapp.jobs.record", "astapp.training.pipeline"]
_context: Any = None
_context_lock = threading.Lock()


def uses(train_fn: Any) -> bool:
    """Whether a job of `train_fn` trains in a child process: the engine's own runs do, unless
    `ASTAPP_TRAIN_PROCESS=0` keeps them on the worker thread (tests' fakes stay there: they are not
    importable by a child)."""
    from astapp.jobs.record import run_engine

    return train_fn is run_engine and env_int("ASTAPP_TRAIN_PROCESS", 1) != 0


def training_nice() -> int:
    return env_int("ASTAPP_TRAIN_NICE", DEFAULT_NICE)


def _ctx() -> Any:
    """The multiprocessing context children start from: a fork server with torch and the engine imported
    (spawn where there is no fork server)."""
    global _context
    with _context_lock:
        if _context is None:
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            _context = multiprocessing.get_context(method)
            if method == "forkserver":
                _context.set_forkserver_preload(PRELOAD)
        return _context


def run_job(cfg: TrainConfig, events: EventSink | None, stop: threading.Event, folder: Path) -> runfolder.RunResult:
    """`astapp.jobs.record.run_job(cfg, events, stop, record_result=False)` in a child process: the same
    result, events and errors (an error arrives as the `TrainingError` of its sentence, already recorded)."""
    ctx = _ctx()
    receive, send = ctx.Pipe(duplex=False)
    child_stop = ctx.Event()
    env = dict(os.environ)  # the app's settings as they are now (a fork server keeps those of its start)
    torch = sys.modules.get("torch")  # and torch's thread count, as a run on the worker thread would have it
    threads = torch.get_num_threads() if torch is not None else 0
    app_nice = os.nice(0)
    start_method = multiprocessing.get_start_method(allow_none=True)  # what the engine's own processes use
    args = (cfg.to_dict(), str(folder), send, child_stop, os.getpid(), env, os.getcwd(), threads, app_nice,
            start_method)
    proc = ctx.Process(target=_child, name="astapp-train", args=args)  # not a daemon: the engine starts processes
    proc.start()
    send.close()  # the parent keeps only its reading end, so a dead child reads as the end of the pipe
    try:
        outcome = _relay(receive, events, stop, child_stop)
    finally:
        receive.close()
        proc.join(30 if stop.is_set() else 5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    if outcome is None:
        message = (f"The training process ended unexpectedly (exit code {proc.exitcode}"
                   f"{': killed, perhaps out of memory' if proc.exitcode == -9 else ''}). Resume the run from "
                   "its last checkpoint; if it happens again, try a smaller batch size.")
        RunRecord(folder).failed(message)  # the child could not: it is gone, so this is the one writer now
        raise TrainingError(message)
    kind, payload = outcome
    if kind == "error":
        raise TrainingError(payload)
    return payload


def _relay(receive: Any, events: EventSink | None, stop: threading.Event, child_stop: Any) -> tuple | None:
    """Pass the child's events on and a Stop to it, until its outcome arrives (None if it died first)."""
    while True:
        if stop.is_set():
            child_stop.set()
        try:
            if not receive.poll(POLL_S):
                continue
            kind, payload = receive.recv()
        except (EOFError, OSError):
            return None
        if kind != "event":
            return kind, payload
        if events is not None:
            events(payload)


def _child(cfg: dict, folder: str, send: Any, stop: Any, app_pid: int, env: dict, cwd: str, threads: int,
           app_nice: int, start_method: str | None) -> None:
    """The child's whole life: the app's settings, a lower priority, the run, its outcome."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    # Processes the engine starts (DataLoader workers) start as in the app, not from the fork server this
    # child came from (its workers then could not receive the dataset's shared tensors).
    multiprocessing.set_start_method(start_method, force=True)
    if threads:
        import torch

        torch.set_num_threads(threads)
    _end_with(app_pid)
    with contextlib.suppress(OSError):  # a sandbox without the call: training at normal priority beats not training
        os.nice(max(0, training_nice() - os.nice(0)))
    RunRecord(folder).log(f"Training in process {os.getpid()} at nice {os.nice(0)} (the app's is {app_nice}).")
    from astapp.jobs.record import run_job as record_run_job

    def sink(event: dict[str, Any]) -> None:
        try:
            send.send(("event", event))
        except (BrokenPipeError, OSError):
            os._exit(1)  # the app is gone: nobody follows this run any more

    try:
        result = record_run_job(TrainConfig.from_dict(cfg), sink, stop, record=RunRecord(folder),
                                record_result=False)
        result.model = None  # the weights are in the run folder; the object stays here
        send.send(("result", result))
    except BaseException as exc:  # noqa: BLE001 - run_job recorded it; the parent needs its sentence
        send.send(("error", explain(exc, folder)))
    finally:
        send.close()


def _end_with(app_pid: int) -> None:
    """Exit as soon as the app's process is gone (killed, crashed): its run must not train on unseen."""

    def watch() -> None:
        while _alive(app_pid):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="astapp-app-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a killed app its parent has not reaped yet is a zombie: gone for us)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
