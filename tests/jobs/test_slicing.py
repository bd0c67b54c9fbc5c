"""Training in slices (ZeroGPU's bounded GPU calls, or ASTAPP_SLICE_SECONDS anywhere), on the CPU: a run
trained in slices ends exactly where the same run trained in one go does; Stop works within and between
slices; a used-up GPU quota leaves a run that can be continued."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from fake_train import write_checkpoint
from train_helpers import one_thread_fixture
from transformers import ASTForAudioClassification

from astapp.core import runfolder
from astapp.core.config import TrainConfig
from astapp.jobs.manager import JobManager

TIMEOUT = 240.0


one_thread = one_thread_fixture()  # autouse


def _cfg(tiny_ast: Path, data: Path, **kw) -> TrainConfig:
    return TrainConfig.from_dict({"data": str(data), "model": str(tiny_ast), "epochs": 30, "batch_size": 4,
                                  "lr": 5e-3, "max_length": 64, "seed": 0, "precision": "fp32", **kw})


def _slice_lines(run: Path) -> list[str]:
    return [ln for ln in (run / runfolder.LOG).read_text().splitlines() if "queued, resuming from" in ln]


@pytest.mark.slow
def test_a_run_in_slices_ends_like_the_same_run_in_one_go(tmp_path, tiny_ast, small_dataset, monkeypatch):
    # Both on the worker thread, as slices run: the budget is cut from the whole run's own timing, which a
    # lower-priority child process (astapp.jobs.child) would stretch on a busy machine.
    monkeypatch.setenv("ASTAPP_TRAIN_PROCESS", "0")
    whole, sliced = JobManager(tmp_path / "whole", slice_seconds=0), None
    try:
        a = whole.submit("o", _cfg(tiny_ast, small_dataset, epochs=12))
        assert whole.wait(a, TIMEOUT) == "finished", whole.tail(a, 30)
        # Each slice: room for its start-up plus under half the training time: at least two slices on
        # any machine, however fast, and each gets real steps done (not only its start-up).
        m = json.loads((whole.get_run("o", a).path / runfolder.METRICS).read_text())
        startup = max(0.0, float(m["total_seconds"]) - float(m["train_seconds"]))
        sliced = JobManager(tmp_path / "sliced", slice_seconds=max(0.5, 0.5 * startup + 0.4 * float(m["train_seconds"])))
        b = sliced.submit("o", _cfg(tiny_ast, small_dataset, epochs=12))
        assert sliced.wait(b, TIMEOUT) == "finished", sliced.tail(b, 30)
        run_a, run_b = whole.get_run("o", a).path, sliced.get_run("o", b).path
    finally:
        for jm in (whole, sliced):
            if jm is not None:
                jm.shutdown(timeout=10)
    assert len(_slice_lines(run_b)) >= 1, "the budget must really have cut the run into slices"
    cuts = [e for e in runfolder.read_history(run_b) if e["type"] == "slice"]  # the record a CLI run keeps too
    assert len(cuts) == len(_slice_lines(run_b)) and all(e["reason"] == "budget" and e["checkpoint"] for e in cuts)
    ma, mb = (json.loads((r / runfolder.METRICS).read_text()) for r in (run_a, run_b))
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "best_epoch", "global_step", "epochs",
                "confusion_matrix"):
        assert ma[key] == mb[key], key
    assert mb["loss"] == pytest.approx(ma["loss"], rel=1e-5)  # weights equal to 1e-5, so the loss to float noise
    wa = ASTForAudioClassification.from_pretrained(run_a / runfolder.MODEL).state_dict()
    wb = ASTForAudioClassification.from_pretrained(run_b / runfolder.MODEL).state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    steps = [e["step"] for e in runfolder.read_history(run_b) if e["type"] == "log"]
    assert steps == sorted(set(steps)), "the slices continue each other: no step twice, none missing"


def test_stop_between_slices_keeps_a_run_that_can_continue(tmp_path, tiny_ast, small_dataset):
    jm = JobManager(tmp_path, slice_seconds=1.0)
    try:
        job = jm.submit("o", _cfg(tiny_ast, small_dataset, epochs=60))
        deadline = time.monotonic() + TIMEOUT
        while not _slice_lines(jm.get_run("o", job).path):  # the first slice has ended
            assert time.monotonic() < deadline
            time.sleep(0.05)
        snap = jm.snapshot(job, owner="o")
        assert snap["state"] in ("queued", "running")
        if snap["state"] == "running":
            assert snap["slice"] >= 2 and 0 <= snap["slice_left"] <= 1.0
        assert jm.stop(job, owner="o")
        assert jm.wait(job, TIMEOUT) == "stopped"
        info = jm.get_run("o", job)
        assert info.resumable and info.last_checkpoint
    finally:
        jm.shutdown(timeout=10)


def test_a_used_up_gpu_quota_stops_the_run_resumably(tmp_path):
    def out_of_quota(cfg, events, stop):
        write_checkpoint(Path(cfg.output), 2)
        raise RuntimeError("You have exceeded your GPU quota (60s requested vs. 0s left). Try again in 1:00:00")

    jm = JobManager(tmp_path, train_fn=out_of_quota, slice_seconds=60)
    try:
        job = jm.submit("o", TrainConfig(data="/d", model="scratch:tiny", epochs=1))
        assert jm.wait(job, 15) == "stopped"
        info = jm.get_run("o", job)
        assert info.resumable and "GPU quota is used up" in info.error and "Continue stopped run" in info.error
    finally:
        jm.shutdown(timeout=5)


def test_the_slice_budget_comes_from_the_environment(tmp_path, monkeypatch):
    from astapp.jobs import slicing

    monkeypatch.setenv("ASTAPP_SLICE_SECONDS", "45")
    assert JobManager(tmp_path, start=False).slice_seconds == 45.0
    monkeypatch.delenv("ASTAPP_SLICE_SECONDS")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert JobManager(tmp_path, start=False).slice_seconds == 0.0
    assert slicing.margin(120) == 18.0 and slicing.margin(600) == 30.0


@pytest.mark.slow
def test_early_stopping_counts_on_across_a_resume(tmp_path, tiny_ast, small_dataset):
    """Patience survives a stop (a slice end): evaluations since the best one are kept with the best weights."""
    import threading

    from astapp.jobs.record import run_job

    cfg = _cfg(tiny_ast, small_dataset, epochs=12, lr=1e-9, early_stopping=2, output=str(tmp_path / "run"))
    stop = threading.Event()
    first = run_job(cfg, events=lambda ev: ev["type"] == "eval" and ev["epoch"] >= 2 and stop.set(), stop=stop)
    assert first.state == "stopped"
    resumed = run_job(TrainConfig.from_dict({**cfg.to_dict(), "resume": "latest"}))
    straight = run_job(_cfg(tiny_ast, small_dataset, epochs=12, lr=1e-9, early_stopping=2,
                          output=str(tmp_path / "straight")))
    assert straight.metrics["early_stopped"] and resumed.metrics["early_stopped"]
    assert resumed.metrics["epochs"] == straight.metrics["epochs"] == 3.0


@pytest.mark.slow
def test_one_step_slices_still_evaluate_every_epoch(tmp_path, tiny_ast, small_dataset):
    """A slice that stops on an epoch's last step evaluates that epoch (the resumed slice starts the next
    one and would never make it up): the best epoch survives even when every slice is a single step."""
    whole, sliced = JobManager(tmp_path / "whole", slice_seconds=0), JobManager(tmp_path / "sliced", slice_seconds=0.05)
    try:
        runs = []
        for jm in (whole, sliced):
            job = jm.submit("o", _cfg(tiny_ast, small_dataset, epochs=2))
            assert jm.wait(job, TIMEOUT) == "finished", jm.tail(job, 30)
            runs.append(jm.get_run("o", job).path)
    finally:
        whole.shutdown(timeout=10)
        sliced.shutdown(timeout=10)
    assert len(_slice_lines(runs[1])) >= 4  # (nearly) one step per slice
    ma, mb = (json.loads((r / runfolder.METRICS).read_text()) for r in runs)
    assert mb["best_epoch"] is not None and mb["best_epoch"] == ma["best_epoch"]
    assert [ev["epoch"] for ev in map(json.loads, (runs[1] / runfolder.HISTORY).read_text().splitlines())
            if ev.get("type") == "eval"] == [1.0, 2.0]
