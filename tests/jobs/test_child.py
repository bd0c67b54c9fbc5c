"""The engine's runs train in a child process below the app's priority (issue 24), and nothing else changes:
the same events, result, Stop and errors as on the worker thread; a child that dies is a failed run with a
sentence; tests' fakes (not importable by a child) stay on the thread."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import pytest
from fake_train import make_fake_train, tiny_cfg

from astapp.core import runfolder
from astapp.core.config import TrainConfig
from astapp.jobs import child
from astapp.jobs.manager import JobManager
from astapp.jobs.record import run_engine

TIMEOUT = 240.0


def _cfg(tiny_ast, data, **kw) -> TrainConfig:
    return TrainConfig.from_dict({"data": str(data), "model": str(tiny_ast), "epochs": 2, "batch_size": 4,
                                  "lr": 5e-3, "max_length": 64, "seed": 0, "precision": "fp32", **kw})


def _status(manager: JobManager, run_id: str) -> dict:
    return json.loads((manager.get_run("o", run_id).path / runfolder.STATUS).read_text())


def test_only_the_engines_own_runs_go_to_a_child(monkeypatch):
    assert child.uses(run_engine)
    assert not child.uses(make_fake_train(steps=1)), "a test's fake cannot be imported by a child"
    monkeypatch.setenv("ASTAPP_TRAIN_PROCESS", "0")
    assert not child.uses(run_engine)


@pytest.mark.slow
def test_a_run_trains_in_a_lower_priority_child_with_its_events_and_result(tmp_path, tiny_ast, small_dataset,
                                                                           monkeypatch):
    monkeypatch.setenv("ASTAPP_TRAIN_NICE", str(min(os.nice(0) + 5, 19)))
    manager = JobManager(tmp_path)
    try:
        # augmentation on: its DataLoader workers are processes the child starts
        run_id = manager.submit("o", _cfg(tiny_ast, small_dataset, augment={"preset": "classic"}))
        assert manager.wait(run_id, TIMEOUT) == "finished", manager.tail(run_id, 30)
        events, _ = manager.events(run_id, owner="o")
    finally:
        manager.shutdown(timeout=30)
    log = (manager.get_run("o", run_id).path / runfolder.LOG).read_text()
    pid, nice = map(int, re.search(r"Training in process (\d+) at nice (\d+)", log).groups())
    assert pid != os.getpid() and nice == min(os.nice(0) + 5, 19), log
    assert [e["epoch"] for e in events if e.get("type") == "eval"] == [1.0, 2.0], "the child's events came back"
    assert _status(manager, run_id)["state"] == "finished"
    metrics = json.loads((manager.get_run("o", run_id).path / runfolder.METRICS).read_text())
    assert metrics["accuracy"] is not None and (manager.get_run("o", run_id).path / "model").is_dir()


@pytest.mark.slow
def test_stop_reaches_the_child_and_a_killed_child_is_a_failed_run_with_a_sentence(tmp_path, tiny_ast,
                                                                                     small_dataset):
    manager = JobManager(tmp_path)
    try:
        stopped = manager.submit("o", _cfg(tiny_ast, small_dataset, epochs=200))
        _until(lambda: any(e.get("type") == "log" for e in manager.events(stopped, owner="o")[0]))
        manager.stop(stopped, owner="o")
        assert manager.wait(stopped, TIMEOUT) == "stopped", manager.tail(stopped, 30)
        evals = [e for e in manager.events(stopped, owner="o")[0] if e.get("type") == "eval"]
        assert len(evals) < 200

        killed = manager.submit("o", _cfg(tiny_ast, small_dataset, epochs=200))
        _until(lambda: any(e.get("type") == "log" for e in manager.events(killed, owner="o")[0]))
        os.kill(_status(manager, killed)["pid"], signal.SIGKILL)
        assert manager.wait(killed, TIMEOUT) == "failed"
    finally:
        manager.shutdown(timeout=30)
    status = _status(manager, killed)
    assert status["state"] == "failed" and "ended unexpectedly (exit code -9" in status["error"], status


@pytest.mark.slow
def test_an_engine_error_in_the_child_is_the_same_sentence_as_on_the_thread(tmp_path, tiny_ast, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    errors = []
    for process in ("1", "0"):
        monkeypatch.setenv("ASTAPP_TRAIN_PROCESS", process)
        manager = JobManager(tmp_path / f"root{process}")
        try:
            run_id = manager.submit("o", _cfg(tiny_ast, empty))
            assert manager.wait(run_id, TIMEOUT) == "failed"
            errors.append(_status(manager, run_id)["error"])
        finally:
            manager.shutdown(timeout=30)
    assert errors[0] == errors[1] and errors[0], errors


def _until(cond, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        threading.Event().wait(0.2)


def test_fakes_still_run_on_the_worker_thread(tmp_path):
    manager = JobManager(tmp_path, train_fn=make_fake_train(steps=2))
    try:
        assert manager.wait(manager.submit("alice", tiny_cfg()), 15) == "finished"
    finally:
        manager.shutdown(timeout=5)
