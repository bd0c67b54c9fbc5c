"""The training worker runs below the web server's priority (issue 24).

Training runs on a thread of the app's process and takes every core it can; on a 2-vCPU host (a free
Space, a laptop that also runs the browser) the page's polls, the Stop click and the browser itself then
get the CPU only in turns with it. Linux keeps a nice value per thread, so the worker thread lowers its
own priority when it starts: threads it creates later (torch's OpenMP team, the slice clock) inherit it.
Nothing else changes: with idle cores the training runs as fast as before; under contention the server
and the page are served first. `ASTAPP_TRAIN_NICE` sets the value (default 10; 0 leaves the worker alone).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from astapp.core.env import env_int

log = logging.getLogger(__name__)

DEFAULT_NICE = 10


def lower_this_thread(nice: int | None = None) -> int | None:
    """Give the calling thread nice value `nice` (default `ASTAPP_TRAIN_NICE`, 10) unless it is already
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
