"""Job queue: FIFO, limits, stop, failures, concurrency, restart recovery (fake train, plus one real run)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fake_train import make_fake_train, tiny_cfg, write_checkpoint

from astapp.core.errors import OOM_HINT, AccessError, DatasetError, QueueFullError, TrainingError
from astapp.jobs import registry
from astapp.jobs.manager import JobManager
from astapp.jobs.record import RunRecord

TIMEOUT = 15.0


@pytest.fixture
def managers():
    made: list[JobManager] = []

    def make(root: Path, **kw) -> JobManager:
        jm = JobManager(root, **kw)
        made.append(jm)
        return jm

    yield make
    for jm in made:
        jm.shutdown(timeout=5)


def wait_for(pred, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def test_job_runs_to_finished_with_events_log_and_model(tmp_path, managers):
    fake = make_fake_train(steps=4)

    def train_fn(cfg, events, stop):
        logging.getLogger("astapp.training.pipeline").warning("only 3 clips in class x")
        logging.getLogger("transformers.trainer").warning("a transformers warning")
        return fake(cfg, events, stop)

    jm = managers(tmp_path, train_fn=train_fn)
    cfg = tiny_cfg()
    job = jm.submit("alice", cfg, name="  my   first run ")
    assert cfg.output == "runs/run", "caller's config must not be mutated"
    assert jm.wait(job, TIMEOUT) == "finished"

    info = jm.get_run("alice", job)
    assert info.name == "my first run" and info.state == "finished" and info.has_model
    assert info.metrics == {"accuracy": 0.75, "f1_macro": 0.7} and info.path.parent.name == "alice"
    saved = json.loads((info.path / "config.json").read_text())
    assert Path(saved["output"]) == info.path

    evs, cur = jm.events(job, owner="alice")
    types = [e["type"] for e in evs]
    assert types[0] == "stage" and types.count("log") == 4 and types[-2:] == ["eval", "done"]
    assert cur == len(evs)
    later, cur2 = jm.events(job, since=cur - 2)
    assert [e["type"] for e in later] == ["eval", "done"] and cur2 == cur
    assert jm.events(job, since=cur) == ([], cur)

    snap = jm.snapshot(job, owner="alice")
    assert snap["state"] == "finished" and snap["progress"] == 1.0 and snap["position"] is None
    assert snap["epochs"] == cfg.epochs  # the Train tab fixes its epoch axis with it from the first point
    assert any("Training finished." in line for line in snap["log"])
    log_text = "\n".join(jm.tail(job, 50))
    assert "Preparing data" in log_text and "warning: only 3 clips in class x" in log_text
    assert "warning: a transformers warning" in log_text
    assert jm.active_job("alice") is None


def test_fifo_order_positions_and_limits(tmp_path, managers):
    hold, calls = threading.Event(), []
    jm = managers(tmp_path, train_fn=make_fake_train(steps=1, hold=hold, calls=calls), max_queue=2,
                  max_per_user=1)
    a = jm.submit("a", tiny_cfg("/d/a"))
    wait_for(lambda: jm.position(a) == 0)
    b = jm.submit("b", tiny_cfg("/d/b"))
    c = jm.submit("c", tiny_cfg("/d/c"))
    assert (jm.position(b), jm.position(c)) == (1, 2)
    assert (jm.snapshot(b)["ahead"], jm.snapshot(c)["ahead"]) == (1, 2)  # the running job is ahead of #1
    assert jm.snapshot(c)["state"] == "queued" and registry.get_run(tmp_path, "c", c).state == "queued"
    with pytest.raises(QueueFullError, match="queue is full"):
        jm.submit("d", tiny_cfg())
    with pytest.raises(QueueFullError, match="already have a training job"):
        jm.submit("a", tiny_cfg())
    assert jm.active_job("b") == b and jm.active_job("d") is None
    hold.set()
    for j in (a, b, c):
        assert jm.wait(j, TIMEOUT) == "finished"
    assert [cfg.data for cfg in calls] == ["/d/a", "/d/b", "/d/c"]
    jm.submit("a", tiny_cfg())  # the limit frees up once the owner's job is done


def test_stop_running_is_graceful_and_queued_is_cancelled(tmp_path, managers):
    hold, calls = threading.Event(), []
    jm = managers(tmp_path, train_fn=make_fake_train(steps=3, hold=hold, calls=calls))
    a = jm.submit("a", tiny_cfg("/d/a"))
    b = jm.submit("b", tiny_cfg("/d/b"))
    wait_for(lambda: jm.position(a) == 0)
    assert jm.stop(b, owner="b") is True
    assert jm.position(b) is None and jm.snapshot(b)["state"] == "stopped"
    assert registry.get_run(tmp_path, "b", b).state == "stopped"
    assert jm.stop(a) is True
    assert jm.wait(a, TIMEOUT) == "stopped"
    assert jm.stop(a) is False
    assert [c.data for c in calls] == ["/d/a"]
    info = registry.get_run(tmp_path, "a", a)
    assert info.state == "stopped" and not info.has_model
    assert any("Stop requested" in line for line in jm.tail(a))


def test_failing_jobs_are_recorded_and_worker_keeps_serving(tmp_path, managers):
    failures = {"/d/boom": RuntimeError("boom"), "/d/oom": MemoryError(),
                "/d/data": DatasetError("Only one class found: add a second class folder.")}
    jm = managers(tmp_path, train_fn=make_fake_train(fail=lambda cfg: failures.get(cfg.data)),
                  max_per_user=5)
    boom, oom, bad, good = (jm.submit("u", tiny_cfg(d)) for d in ("/d/boom", "/d/oom", "/d/data", "/d/ok"))
    assert [jm.wait(j, TIMEOUT) for j in (boom, oom, bad, good)] == ["failed"] * 3 + ["finished"]

    snap = jm.snapshot(boom)
    assert "RuntimeError: boom" in snap["error"] and "unexpected error" in snap["error"]
    assert any("Traceback" in line for line in jm.tail(boom, 200))
    assert jm.snapshot(oom)["error"] == OOM_HINT and "smaller batch size" in OOM_HINT
    assert jm.get_run("u", bad).error == "Only one class found: add a second class folder."
    evs, _ = jm.events(oom)
    assert evs[-1] == {"type": "error", "message": OOM_HINT, "time": evs[-1]["time"]}
    assert jm.get_run("u", boom).state == "failed" and jm._worker.is_alive()


def test_invalid_settings_and_bad_ids_are_refused(tmp_path, managers):
    jm = managers(tmp_path, train_fn=make_fake_train())
    with pytest.raises(TrainingError, match="Epochs must be greater than 0"):
        jm.submit("a", _cfg_with(epochs=0))
    for bad in ("../a", "a/b", "", "..", "a" * 200):
        with pytest.raises(AccessError):
            jm.submit(bad, tiny_cfg())
    with pytest.raises(AccessError):
        jm.events("../../etc")
    assert not list((tmp_path / "runs").iterdir())


def _cfg_with(**kw):
    cfg = tiny_cfg()
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_jobs_of_other_sessions_are_invisible(tmp_path, managers):
    hold = threading.Event()
    jm = managers(tmp_path, train_fn=make_fake_train(hold=hold))
    a = jm.submit("alice", tiny_cfg())
    for call in (lambda: jm.events(a, owner="bob"), lambda: jm.snapshot(a, owner="bob"),
                 lambda: jm.stop(a, owner="bob"), lambda: jm.tail(a, owner="bob"),
                 lambda: jm.position(a, owner="bob"), lambda: jm.get_run("bob", a)):
        with pytest.raises(AccessError):
            call()
    assert jm.active_job("bob") is None and jm.list_runs("bob") == []
    hold.set()
    assert jm.wait(a, TIMEOUT) == "finished"
    fresh = JobManager(tmp_path, train_fn=make_fake_train(), start=False)  # after a restart: disk only
    with pytest.raises(AccessError):
        fresh.events(a, owner="bob")
    evs, cur = fresh.events(a, owner="alice")
    assert cur == len(evs) and evs[-1]["type"] == "done"
    assert fresh.snapshot(a, owner="alice")["state"] == "finished"


def test_concurrent_clients_get_correct_answers_without_deadlock(tmp_path, managers):
    hold = threading.Event()
    jm = managers(tmp_path, train_fn=make_fake_train(steps=3, hold=hold), max_queue=8, max_per_user=1)
    errors: list[BaseException] = []
    results: dict[str, tuple[str, str]] = {}

    def client(i: int) -> None:
        try:
            owner = f"user{i}"
            job = jm.submit(owner, tiny_cfg(f"/d/{i}"))
            with pytest.raises(QueueFullError):
                jm.submit(owner, tiny_cfg())
            cursor = 0
            for _ in range(50):
                pos = jm.position(job, owner=owner)
                assert pos is None or 0 <= pos <= 6
                evs, cursor = jm.events(job, since=cursor, owner=owner)
                assert jm.snapshot(job, owner=owner)["job_id"] == job
                assert jm.active_job(owner) in (job, None)
                assert [r.id for r in jm.list_runs(owner)] == [job]
                time.sleep(0.001)
            if i % 2:
                assert jm.stop(job, owner=owner) is True  # still held, so the job is active
                with lock:
                    stopped.append(owner)
            results[owner] = (job, jm.wait(job, TIMEOUT))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    lock, stopped = threading.Lock(), []
    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: len(stopped) == 3 or bool(errors))  # release training only after the stops
    hold.set()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a client waited unboundedly"
    assert not errors, errors
    for i in range(6):
        job, state = results[f"user{i}"]
        assert state in (("stopped",) if i % 2 else ("finished",))
        assert registry.get_run(tmp_path, f"user{i}", job).state == state
    assert jm.queue_length() == 0 and jm._worker.is_alive()


SUBPROCESS_SCRIPT = textwrap.dedent("""
    import sys, threading
    sys.path.insert(0, {tests!r})
    from fake_train import make_fake_train, tiny_cfg
    from astapp.jobs.manager import JobManager
    forever = threading.Event()  # never set: the job trains until killed
    def ready(ck):
        print("CHECKPOINT", ck, flush=True)
    jm = JobManager({root!r}, train_fn=make_fake_train(steps=10, hold=None, on_checkpoint=ready,
                    step_s=0.01, checkpoint_every=2, fail=lambda cfg: None))
    job = jm.submit("owner1", tiny_cfg())
    import time; time.sleep(20)
""")


def test_sigkilled_app_leaves_interrupted_resumable_run(tmp_path, managers):
    root = tmp_path / "root"
    # a finished run from earlier must stay untouched
    done = JobManager(root, train_fn=make_fake_train(steps=2))
    finished = done.submit("owner1", tiny_cfg())
    assert done.wait(finished, TIMEOUT) == "finished"
    done.shutdown()
    before = (root / "runs" / "owner1" / finished / "status.json").read_text()

    script = SUBPROCESS_SCRIPT.format(tests=str(Path(__file__).parents[1]), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "checkpoint-4" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "subprocess ended before writing a checkpoint"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    calls: list = []
    jm = managers(root, train_fn=make_fake_train(steps=10, calls=calls))
    killed = [r for r in jm.list_runs("owner1") if r.id != finished][0]
    assert killed.state == "running"
    recovered = jm.recover()
    assert [r.id for r in recovered] == [killed.id]
    info = jm.get_run("owner1", killed.id)
    assert info.state == "interrupted" and info.resumable
    assert Path(info.last_checkpoint).name.startswith("checkpoint-")
    assert int(Path(info.last_checkpoint).name.split("-")[1]) >= 4
    assert "resume it from checkpoint-" in info.error
    assert (root / "runs" / "owner1" / finished / "status.json").read_text() == before
    assert jm.recover() == []  # idempotent

    job = jm.resume("owner1", killed.id)
    assert job == killed.id and jm.wait(job, TIMEOUT) == "finished"
    assert calls[0].resume == info.last_checkpoint and calls[0].output == str(info.path)
    assert jm.get_run("owner1", job).has_model
    with pytest.raises(AccessError, match="cannot be resumed"):
        jm.resume("owner1", finished)


def test_recover_spares_live_processes_but_not_reused_pids(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.1)
        for rid, updated in (("live", time.time() + 5), ("reused", time.time() - 3600)):
            rd = tmp_path / "runs" / "o" / rid
            rd.mkdir(parents=True)
            RunRecord(rd).status("running", pid=sleeper.pid)
            status = json.loads((rd / "status.json").read_text())
            (rd / "status.json").write_text(json.dumps({**status, "updated": updated}))
        write_checkpoint(tmp_path / "runs" / "o" / "reused", 2)
        changed = registry.recover(tmp_path)
        assert [r.id for r in changed] == ["reused"]
        assert registry.get_run(tmp_path, "o", "live").state == "running"
        assert registry.get_run(tmp_path, "o", "reused").last_checkpoint.endswith("checkpoint-2")
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("astapp.training.pipeline") is None, reason="astapp.training.pipeline not written yet")
@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")
def test_real_train_stops_and_resumes_through_the_queue(tmp_path, managers, tiny_ast, small_dataset):
    from astapp.training.pipeline import train

    stops: list[str] = []

    def train_fn(cfg, events, stop):
        """The real train; the first run is stopped by the user at its first progress event."""
        def sink(ev):
            events(ev)
            if ev["type"] == "log" and not cfg.resume and not stops:
                stops.append(Path(cfg.output).name)
                assert jm.stop(Path(cfg.output).name, owner="real") is True
        return train(cfg, sink, stop)

    jm = managers(tmp_path, train_fn=train_fn)
    cfg = tiny_cfg(str(small_dataset), batch_size=4, max_length=128, threads=1, epochs=4)
    cfg.model = str(tiny_ast)
    job = jm.submit("real", cfg)
    assert jm.wait(job, 240) == "stopped", jm.tail(job, 40)
    info = jm.get_run("real", job)
    assert stops == [job] and info.resumable and info.last_checkpoint, info
    assert any("Stop requested" in line for line in jm.tail(job, 100))

    assert jm.resume("real", job) == job
    assert jm.wait(job, 240) == "finished", jm.tail(job, 40)
    info = jm.get_run("real", job)
    assert info.has_model and info.accuracy is not None and not info.resumable
    evs, _ = jm.events(job, owner="real")
    steps = [e["step"] for e in evs if e["type"] == "log"]
    assert steps == sorted(steps) and steps[-1] > steps[0]
    assert {"stage", "log", "eval", "done"} <= {e["type"] for e in evs}


def test_get_manager_uses_data_dir_and_recovers_at_startup(tmp_path, monkeypatch):
    from astapp.jobs import manager

    dead = subprocess.Popen(["true"])
    dead.wait()
    rd = tmp_path / "runs" / "o" / "r1"
    rd.mkdir(parents=True)
    RunRecord(rd).status("running", pid=dead.pid)
    monkeypatch.setenv("ASTAPP_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(manager, "_manager", None)
    jm = manager.get_manager()
    try:
        assert jm.root == tmp_path.resolve() and manager.get_manager() is jm
        assert jm.get_run("o", "r1").state == "interrupted"
    finally:
        jm.shutdown(timeout=5)
