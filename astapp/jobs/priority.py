"""Optionally run a training kept on the worker thread below the web server's priority (issue 24): off by
default. (The engine's runs train in a child process, `astapp.jobs.child`, which lowers its own priority
safely; this is for runs that stay on the thread: ZeroGPU slices, `ASTAPP_TRAIN_PROCESS=0`, tests' fakes.)

Such a run trains on a thread of the app's process. Linux keeps a nice value per thread, so the worker
thread can lower its own priority when it starts (threads it creates later, such as torch's OpenMP team,
inherit it), and under contention the server and a browser on the same machine would be served first.
Measured on the loaded shared 2-core machine, it also did harm: once, the Stop request waited 21.6 s
before its handler ran. The likely cause is the GIL: a low-priority thread that holds it and is not
scheduled holds up every other Python thread, the server's included. So `ASTAPP_TRAIN_NICE` (a nice
value, e.g. 10) turns it on where that trade is wanted, and the default 0 leaves the worker alone.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from astapp.core.env import env_int

log = logging.getLogger(__name__)

DEFAULT_NICE = 0  # off: see the module docstring


def lower_this_thread(nice: int | None = None) -> int | None:
    """Give the calling thread nice value `nice` (default `ASTAPP_TRAIN_NICE`, 0 = unchanged) unless it is already
    that low; the value it has afterwards, or None where threads have no nice value of their own (not Linux)."""
    nice = env_int("ASTAPP_TRAIN_NICE", DEFAULT_NICE) if nice is None else nice
    if not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        if nice > now:
            os.setpriority(os.PRIO_PROCESS, tid, min(nice, 19))
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError as exc:  # a sandbox without the call: training at normal priority beats not training
        log.info("Could not lower the training thread's priority: %s", exc)
        return None
