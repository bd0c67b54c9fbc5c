"""Sessions, run registry and data root: isolation, path traversal, sharing, idle cleanup."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
from fake_train import make_fake_train, tiny_cfg, write_checkpoint, write_model

from astapp.core import runfolder
from astapp.core.errors import AccessError
from astapp.core.paths import data_root, inside
from astapp.jobs import registry
from astapp.jobs.manager import JobManager
from astapp.jobs.record import RunRecord
from astapp.jobs.sessions import Session, cleanup_idle, owner_id

TRAVERSALS = ["..", "../x", "a/../../x", "/etc/passwd", "a/b", "%2e%2e", ".hidden/../..", "x\x00y", "", " "]


def make_run(root: Path, owner: str, run_id: str, state: str = "finished", created: float | None = None,
             metrics: dict | None = None, model: bool = True) -> Path:
    rd = root / "runs" / owner / run_id
    record = RunRecord(rd)
    record.create(tiny_cfg(output=str(rd)), name=f"run {run_id}", owner=owner)
    if created is not None:
        meta = json.loads((rd / "meta.json").read_text())
        (rd / "meta.json").write_text(json.dumps({**meta, "created": created}))
    record.status(state)
    if metrics is not None:
        (rd / "metrics.json").write_text(json.dumps(metrics))
    if model:
        write_model(rd)
    return rd


def test_owner_ids_are_stable_private_and_validated():
    a = owner_id("AbC123_-xyz")
    assert a == owner_id("AbC123_-xyz") and a != owner_id("AbC123_-xyZ")
    assert a.startswith("u") and len(a) == 21 and "AbC" not in a
    for bad in [None, 42, "../x", "a/b", "", "a b", "é", "x" * 300, "a.b"]:
        with pytest.raises(AccessError, match="reload the page"):
            owner_id(bad)


def test_session_workspace_paths_cannot_escape(tmp_path):
    s = Session.open("tok1", tmp_path)
    assert s.workspace == (tmp_path / "workspaces" / s.owner).resolve() and s.workspace.is_dir()
    assert s.resolve("sub/upload.zip") == s.workspace / "sub" / "upload.zip"
    for bad in ["../x", "a/../../x", "/etc/passwd", "..", f"../{owner_id('tok2')}/secret"]:
        with pytest.raises(AccessError, match="outside your files"):
            s.resolve(bad)
    (s.workspace / "link").symlink_to(tmp_path)
    with pytest.raises(AccessError):
        s.resolve("link/runs")
    assert Session.open("tok2", tmp_path).workspace != s.workspace


def test_runs_are_private_per_owner_and_ids_are_checked(tmp_path):
    a, b = owner_id("alice-token"), owner_id("bob-token")
    make_run(tmp_path, a, "20240101-000000-aaaaaa", metrics={"accuracy": 0.9, "f1_macro": 0.8})
    rb = make_run(tmp_path, b, "20240101-000000-bbbbbb")
    assert [r.id for r in registry.list_runs(tmp_path, a, shared=False)] == ["20240101-000000-aaaaaa"]
    info = registry.get_run(tmp_path, a, "20240101-000000-aaaaaa", shared=False)
    assert (info.accuracy, info.f1_macro, info.has_model, info.readonly) == (0.9, 0.8, True, False)
    assert "acc 0.900" in info.label()

    for call in (registry.get_run, registry.model_dir, registry.run_dir):
        with pytest.raises(AccessError, match="no run"):
            call(tmp_path, a, rb.name, shared=False)
    for bad in TRAVERSALS + [f"../{b}/{rb.name}", f"../../runs/{b}/{rb.name}"]:
        with pytest.raises(AccessError):
            registry.get_run(tmp_path, a, bad, shared=False)
        with pytest.raises(AccessError):
            registry.get_run(tmp_path, bad, rb.name, shared=False)
    mine = registry.run_dir(tmp_path, a, "20240101-000000-aaaaaa", shared=False)
    with pytest.raises(AccessError):  # a file of a visible run, never one reached through "../"
        inside(mine, "../../" + b + "/" + rb.name + "/config.json")
    assert inside(mine, "metrics.json").is_file()


def test_sharing_makes_other_runs_visible_read_only(tmp_path, monkeypatch, managers_factory):
    a, b = owner_id("alice-token"), owner_id("bob-token")
    make_run(tmp_path, a, "20240101-000000-aaaaaa", created=100.0)
    rb = make_run(tmp_path, b, "20240102-000000-bbbbbb", state="interrupted", created=200.0)
    monkeypatch.setenv("ASTAPP_SHARE_RUNS", "1")
    listed = registry.list_runs(tmp_path, a)
    assert [(r.id, r.readonly) for r in listed] == [(rb.name, True), ("20240101-000000-aaaaaa", False)]
    assert registry.model_dir(tmp_path, a, rb.name) == rb / "model"
    assert listed[0].resumable is False  # only the owner may resume
    with pytest.raises(AccessError):
        registry.run_dir(tmp_path, a, rb.name, write=True)
    jm = managers_factory(tmp_path)
    for call in (lambda: jm.resume(a, rb.name), lambda: jm.delete_run(a, rb.name)):
        with pytest.raises(AccessError):
            call()
    assert rb.is_dir()
    monkeypatch.setenv("ASTAPP_SHARE_RUNS", "0")
    assert [r.id for r in registry.list_runs(tmp_path, a)] == ["20240101-000000-aaaaaa"]


@pytest.fixture
def managers_factory():
    made: list[JobManager] = []

    def make(root: Path, **kw) -> JobManager:
        jm = JobManager(root, train_fn=kw.pop("train_fn", make_fake_train()), **kw)
        made.append(jm)
        return jm

    yield make
    for jm in made:
        jm.shutdown(timeout=5)


def test_registry_reads_models_checkpoints_and_metrics_carefully(tmp_path):
    rd = make_run(tmp_path, "o", "r1", state="stopped", model=False,
                  metrics={"accuracy": 0.5, "f1_macro": 0.25, "loss": 1.5})
    (rd / "model").mkdir()
    (rd / "model" / "config.json").write_text("{}")  # weights missing: not a usable model
    (rd / ".model.x.partial").mkdir()
    write_checkpoint(rd, 2)
    write_checkpoint(rd, 10)
    (rd / "checkpoints" / "checkpoint-12").mkdir()  # torn checkpoint: no trainer_state.json
    (rd / "checkpoints" / "checkpoint-12" / "model.safetensors").write_bytes(b"x")
    info = registry.get_run(tmp_path, "o", "r1")
    assert not info.has_model and info.metrics == {"accuracy": 0.5, "f1_macro": 0.25}
    assert info.last_checkpoint.endswith("checkpoint-10") and info.resumable
    (rd / "status.json").write_text('{"state": "runn')  # half-written by a crash
    assert registry.get_run(tmp_path, "o", "r1").state == "unknown"
    assert runfolder.number(1704067200) == 1704067200.0 and runfolder.number(True) is None
    assert runfolder.number("2024-01-01T00:00:00Z") is None  # nothing writes dates as text


def test_list_runs_newest_first(tmp_path):
    for i, created in enumerate([300.0, 100.0, 200.0]):
        make_run(tmp_path, "o", f"r{i}", created=created)
    assert [r.id for r in registry.list_runs(tmp_path, "o", shared=False)] == ["r0", "r2", "r1"]


def test_idle_cleanup_spares_recent_and_busy_sessions(tmp_path, monkeypatch):
    now = time.time()
    old, fresh, busy = (Session.open(t, tmp_path) for t in ("old", "fresh", "busy"))
    old.touch(now - 25 * 3600)
    busy.touch(now - 25 * 3600)
    (old.workspace / "upload.zip").write_bytes(b"zip")
    monkeypatch.delenv("ASTAPP_SESSION_TTL_HOURS", raising=False)
    monkeypatch.delenv("ASTAPP_RUN_TTL_DAYS", raising=False)
    make_run(tmp_path, old.owner, "ancient")
    old_cache = tmp_path / "runs" / old.owner / ".cache"
    busy_cache = tmp_path / "runs" / busy.owner / ".cache"
    for c in (old_cache, busy_cache):
        (c / "features").mkdir(parents=True)
        (c / "features" / "f.f32").write_bytes(b"x" * 16)
    deleted = cleanup_idle(tmp_path, now=now, busy_owners={busy.owner})
    assert deleted == [old.workspace, old_cache], "the idle owner's training cache goes with its workspace"
    assert not old_cache.exists() and busy_cache.is_dir()
    assert not old.workspace.exists() and fresh.workspace.is_dir() and busy.workspace.is_dir()
    assert (tmp_path / "runs" / old.owner / "ancient").is_dir(), "runs are kept by default"
    monkeypatch.setenv("ASTAPP_SESSION_TTL_HOURS", "0.5")
    fresh.touch(now - 3600)
    assert cleanup_idle(tmp_path, now=now, busy_owners={busy.owner}) == [fresh.workspace]


def test_run_retention_never_deletes_active_runs(tmp_path):
    now = time.time()
    for rid, state in (("done", "finished"), ("live", "running"), ("busy", "failed")):
        rd = make_run(tmp_path, "o", rid, state=state)
        status = json.loads((rd / "status.json").read_text())
        (rd / "status.json").write_text(json.dumps({**status, "updated": now - 3 * 86400}))
    deleted = cleanup_idle(tmp_path, now=now, busy_runs={"busy"}, run_ttl_days=2)
    assert [p.name for p in deleted] == ["done"]
    assert {p.name for p in (tmp_path / "runs" / "o").iterdir()} == {"live", "busy"}


def test_manager_cleanup_keeps_workspace_of_queued_job(tmp_path, managers_factory):
    hold = threading.Event()
    jm = managers_factory(tmp_path, train_fn=make_fake_train(hold=hold), max_per_user=1)
    running, waiting = Session.open("runner", tmp_path), Session.open("waiter", tmp_path)
    r = jm.submit(running.owner, tiny_cfg(str(running.resolve("data"))))
    w = jm.submit(waiting.owner, tiny_cfg(str(waiting.resolve("data"))))
    later = time.time() + 48 * 3600
    assert jm.cleanup_idle(now=later) == []
    assert jm.stop(r) and jm.stop(w)
    assert jm.wait(r, 10) == "stopped"
    assert sorted(jm.cleanup_idle(now=later)) == sorted([running.workspace, waiting.workspace])


def test_data_root_env_space_and_fallback(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    assert data_root({"ASTAPP_DATA_DIR": str(tmp_path / "d")}) == tmp_path / "d"
    assert data_root({}) == tmp_path / ".astapp"
    persistent = tmp_path / "data"
    persistent.mkdir()
    assert data_root({"SPACE_ID": "me/app"}, persistent=persistent) == persistent / "astapp"
    with caplog.at_level(logging.WARNING):
        assert data_root({"SPACE_ID": "me/app"}, persistent=tmp_path / "missing") == tmp_path / ".astapp"
    assert "persistent storage" in caplog.text
    if os.geteuid() != 0:  # root can write anywhere, so only check read-only /data as a normal user
        persistent.chmod(0o500)
        assert data_root({"SPACE_ID": "x"}, persistent=persistent) == tmp_path / ".astapp"


def test_janitor_thread_cleans_idle_workspaces_and_stops_on_shutdown(tmp_path):
    jm = JobManager(tmp_path, train_fn=make_fake_train(), cleanup_interval_s=0.02)
    try:
        idle = Session.open("idle-one", tmp_path)
        idle.touch(time.time() - 100 * 3600)
        end = time.monotonic() + 10
        while idle.workspace.exists() and time.monotonic() < end:
            time.sleep(0.01)
        assert not idle.workspace.exists()
    finally:
        jm.shutdown(timeout=5)
    jm._janitor.join(5)
    assert not jm._janitor.is_alive()
