"""The training worker runs below the web server's priority (issue 24): its own thread only, and what it
starts inherits it (torch's OpenMP team is started from the worker)."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from fake_train import make_fake_train, tiny_cfg

from astapp.jobs.manager import JobManager
from astapp.jobs.priority import lower_this_thread

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's"
)


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_thread(fn):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(10)
    return out[0]


def test_lower_this_thread_lowers_only_the_caller_and_what_it_starts():
    before = _nice()

    def worker() -> tuple:
        got = lower_this_thread(before + 5)
        child = _in_thread(_nice)  # a thread the worker starts, as torch starts its OpenMP team
        return got, _nice(), child, lower_this_thread(before + 1)  # never raised back up

    got, own, child, again = _in_thread(worker)
    assert got == own == child == again == min(before + 5, 19)
    assert _nice() == before, "the server's threads keep their priority"


def test_the_job_managers_training_runs_at_astapp_train_nice(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTAPP_TRAIN_NICE", str(min(_nice() + 7, 19)))
    seen: list[int] = []
    fake = make_fake_train(steps=2)

    def train_fn(cfg, events, stop):
        seen.append(_nice())
        return fake(cfg, events, stop)

    jm = JobManager(tmp_path, train_fn=train_fn)
    try:
        assert jm.wait(jm.submit("alice", tiny_cfg()), 15) == "finished"
    finally:
        jm.shutdown(timeout=5)
    assert seen == [min(_nice() + 7, 19)], seen
