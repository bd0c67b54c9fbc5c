"""Crashes and restarts: the real `python app.py` killed mid-training and started again, and model
exports that crash half-way (an exception, or SIGKILL at the worst moment).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from app_helpers import call, client, free_port, state_of, train_args, wait_state
from conftest import build_tiny_ast
from gradio_client import handle_file

from astapp.core.config import TrainConfig
from astapp.data.synth import make_signal, write_wav
from astapp.jobs import registry
from astapp.jobs.record import RunRecord
from astapp.jobs.sessions import owner_id
from astapp.ui.common import user_token

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # real app processes started, killed and restarted
AUTH = ("alice", "s3cret")


class App:
    """`python app.py` in a subprocess, configured only through the environment, as on a Space."""

    def __init__(self, data: Path, ckpt: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "ASTAPP_DATA_DIR": str(data), "ASTAPP_MODEL": str(ckpt),
               "GRADIO_SERVER_PORT": str(self.port), "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_OFFLINE": "1", "ASTAPP_AUTH": f"{AUTH[0]}:{AUTH[1]}", "PYTHONUNBUFFERED": "1"}
        self.log = open(log, "ab")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, f"app exited early:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(self.url + "config", timeout=2).status_code == 401:  # up, and login required
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"app did not start:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.log.close()


def test_app_killed_mid_training_restarts_with_an_interrupted_resumable_run(tmp_path):
    data, log = tmp_path / "data", tmp_path / "app.log"
    ckpt = build_tiny_ast(tmp_path / "ckpt", max_length=128)
    probe = write_wav(tmp_path / "probe.wav", make_signal("chirp", 1.0))
    app = App(data, ckpt, log)
    try:
        c = client(app.url, auth=AUTH)
        owner = owner_id(user_token(AUTH[0]))  # logged in: the runs belong to the user
        # A run that finishes before the crash (ASTAPP_MODEL is the form's default model).
        call(c, **train_args(1), api_name="/start_training")
        assert state_of(wait_state(c, ("finished", "failed"), timeout=120)["status"]) == "finished"
        done_id = call(c, None, api_name="/list_models")["value"]
        before, _, _ = call(c, done_id, handle_file(str(probe)), 3, api_name="/predict_clip")
        # A longer run (two epochs: a checkpoint after the first, one more to resume), killed without warning
        # once it has a checkpoint.
        call(c, **train_args(2), api_name="/start_training")
        long_id = next(r.id for r in registry.list_runs(data, owner) if r.id != done_id)
        deadline = time.monotonic() + 120
        while registry.last_checkpoint(data / "runs" / owner / long_id) is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
    finally:
        app.kill()
    assert registry.read_json(data / "runs" / owner / long_id / "status.json")["state"] == "running"

    app = App(data, ckpt, log)
    try:
        c2 = client(app.url, auth=AUTH)  # a new session of the same user, after the restart
        snap = wait_state(c2, ("interrupted",), timeout=30)  # shown without asking, on the first poll
        assert long_id in snap["status"] and "resume it from checkpoint-" in snap["status"]
        info = registry.get_run(data, owner, long_id)
        assert info.state == "interrupted" and info.resumable and info.last_checkpoint
        first_ck = int(Path(info.last_checkpoint).name.split("-")[1])

        # The finished run is intact: listed, same model, same answer.
        assert done_id in [v for _, v in call(c2, None, api_name="/list_models")["choices"]]
        after, _, _ = call(c2, done_id, handle_file(str(probe)), 3, api_name="/predict_clip")
        assert after == before

        # Resume continues from the checkpoint in the same run folder and finishes.
        status, *_ = call(c2, api_name="/resume_training")
        assert long_id in status and state_of(status) in ("queued", "running")
        assert state_of(wait_state(c2, ("finished", "failed"), timeout=180)["status"]) == "finished"
        info = registry.get_run(data, owner, long_id)
        assert info.state == "finished" and info.has_model and info.accuracy is not None
        assert f"Resuming from checkpoint-{first_ck}" in (info.path / "log.txt").read_text()
        models = [v for _, v in call(c2, None, api_name="/list_models")["choices"]]
        assert sorted(models) == sorted([done_id, long_id])
    finally:
        app.kill()


# --- atomic model export -------------------------------------------------------------------------

def _tiny_model(labels: int = 2):
    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    torch.manual_seed(0)
    return ASTForAudioClassification(ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                               intermediate_size=128, max_length=128, num_labels=labels))


def _run(root: Path, owner: str) -> Path:
    rd = root / "runs" / owner / registry.new_run_id()
    record = RunRecord(rd)
    record.create(TrainConfig(data="d", output=str(rd)), name=rd.name, owner=owner)
    record.status("running")
    return rd


def _picker(root: Path, owner: str) -> list[str]:
    """The run ids the Predict tab's model picker offers (the service's list of runs with a model)."""
    from astapp.jobs.manager import JobManager
    from astapp.jobs.sessions import Session
    from astapp.service import Service

    svc = Service(JobManager(root, start=False), hub_online=False)
    return [r.id for r in svc.runs(Session(owner, root / "workspaces" / owner), need_model=True)]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_export_that_fails_half_way_is_never_offered_and_keeps_the_previous_model(tmp_path, monkeypatch):
    from transformers import ASTForAudioClassification

    from astapp.model.folder import export_model
    from astapp.predict.predictor import Predictor

    owner = "u" + "a" * 20
    fresh, previous = _run(tmp_path, owner), _run(tmp_path, owner)
    export_model(_tiny_model(), ["a", "b"], 128, -4.0, 4.0, previous / "model")
    kept = _snapshot(previous / "model")
    real_save = ASTForAudioClassification.save_pretrained

    def save_half(self, folder, *args, **kwargs):
        real_save(self, folder, *args, **kwargs)
        weights = Path(folder) / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # torn write
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ASTForAudioClassification, "save_pretrained", save_half)
    for rd in (fresh, previous):
        with pytest.raises(OSError, match="No space"):
            export_model(_tiny_model(), ["a", "b"], 128, -4.0, 4.0, rd / "model")
        assert not [p for p in rd.iterdir() if p.name.endswith(".partial")], "temporary folder left behind"
    assert not registry.has_model(fresh) and not (fresh / "model").exists()
    assert _picker(tmp_path, owner) == [previous.name]
    assert _snapshot(previous / "model") == kept
    assert Predictor(previous / "model").labels == ["a", "b"]


CRASH = textwrap.dedent("""
    import os, shutil, signal, sys
    from pathlib import Path
    import astapp.core.fsutil as fsutil
    where, source, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if where == "between-renames":  # after moving the old folder aside, before moving the new one in
        real_replace = os.replace
        def replace_and_die(src, dst):
            real_replace(src, dst)
            os.kill(os.getpid(), signal.SIGKILL)
        fsutil.os.replace = replace_and_die
    with fsutil.atomic_dir(target) as tmp:  # what export_model does, with a complete export's files
        for f in sorted(source.iterdir()):
            shutil.copyfile(f, tmp / f.name)
        if where == "mid-write":
            w = tmp / "model.safetensors"
            w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
            os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("where", ["mid-write", "between-renames"])
def test_export_killed_at_the_worst_moment_is_never_offered_half_written(tmp_path, where):
    from astapp.jobs.manager import JobManager
    from astapp.model.folder import export_model
    from astapp.predict.predictor import Predictor

    owner = "u" + "b" * 20
    fresh, previous = _run(tmp_path, owner), _run(tmp_path, owner)
    export_model(_tiny_model(), ["a", "b"], 128, -4.0, 4.0, previous / "model")
    new = export_model(_tiny_model(3), ["x", "y", "z"], 128, -4.0, 4.0, tmp_path / "new")
    kept = _snapshot(previous / "model")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for rd in ([fresh, previous] if where == "mid-write" else [previous]):
        done = subprocess.run([sys.executable, "-c", CRASH, where, str(new), str(rd / "model")], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    # Right after the crash nothing half-written is offered: a fresh run has no model at all, and the
    # previous model is either untouched (crash while writing) or set aside whole (between renames).
    assert not registry.has_model(fresh) and fresh.name not in _picker(tmp_path, owner)
    if where == "mid-write":
        assert _snapshot(previous / "model") == kept and _picker(tmp_path, owner) == [previous.name]
    else:
        assert not (previous / "model").exists() and _snapshot(previous / ".model.old") == kept
    # The restart (recover) marks both runs interrupted and puts the previous model back in place.
    JobManager(tmp_path, start=False).recover()
    assert {r.id: r.state for r in registry.list_runs(tmp_path, owner)} == {fresh.name: "interrupted",
                                                                         previous.name: "interrupted"}
    assert _picker(tmp_path, owner) == [previous.name]
    assert _snapshot(previous / "model") == kept
    assert Predictor(previous / "model").labels == ["a", "b"]
