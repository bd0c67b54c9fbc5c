"""Security through the running app: hostile uploads, upload size limits, login, and session isolation.

Everything goes over HTTP the way a browser or an attacker would (gradio_client, or raw requests
where the client would refuse to send); the zips are real archives built by tests/hostile.py.
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_helpers import call, client, exported_run, launched, readable, state_of, train_args, tree, wait_state
from conftest import build_tiny_ast
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from hostile import bomb_zip, class_members, disk_usage, encrypted_zip, make_zip, symlink_zip, wav_bytes

from astapp.data.synth import make_signal, write_wav
from astapp.jobs.sessions import owner_id

ESCAPE = f"astapp-escape-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A folder around the app's data root: hostile uploads must not write anything in it but the root."""
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="module")
def app(sandbox):
    from astapp.jobs.manager import JobManager

    root = sandbox / "data"
    manager = JobManager(root=root)
    try:
        with launched(manager) as url:
            yield url, root
    finally:
        manager.shutdown(timeout=30)


# --- hostile uploads through /upload_dataset -----------------------------------------------------

def _traversal(p: Path) -> Path:
    return make_zip(p, {**class_members(), f"../../../{ESCAPE}.wav": wav_bytes(), f"dog/../../../../{ESCAPE}2.wav":
                        wav_bytes()})


def _absolute(p: Path) -> Path:
    return make_zip(p, {**class_members(), f"/tmp/{ESCAPE}.wav": wav_bytes()})


def _symlink(p: Path) -> Path:
    return symlink_zip(p, name="tone/link.wav", target="/etc/passwd", extra=class_members())


def _lying_bomb(p: Path) -> Path:
    return bomb_zip(p, inflated_bytes=64 << 20, name="tone/bomb.wav", declared_size=1000, extra=class_members())


def _encrypted(p: Path) -> Path:
    return encrypted_zip(p, class_members())


def _not_a_zip(p: Path) -> Path:
    p.write_text("name,label\nthis is a text file renamed to .zip\n")
    return p


HOSTILE: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "traversal": (_traversal, ("climbs out",)),
    "absolute": (_absolute, ("absolute path",)),
    "symlink": (_symlink, ("symbolic link",)),
    "lying-bomb": (_lying_bomb, ("inflates", "compressed suspiciously", "corrupt")),
    "encrypted": (_encrypted, ("password",)),
    "not-a-zip": (_not_a_zip, ("zip",)),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_upload_gets_a_plain_message_and_writes_nothing_outside(app, sandbox, tmp_path, kind):
    url, root = app
    build, words = HOSTILE[kind]
    zp = build(tmp_path / f"{kind}.zip")
    before = tree(sandbox)
    c = client(url)
    with pytest.raises(AppError) as err:
        call(c, handle_file(str(zp)), api_name="/upload_dataset")
    msg = readable(str(err.value))
    assert any(w in msg.lower() for w in words), msg
    ws = root / "workspaces" / owner_id(c.session_hash)
    mine = ws.relative_to(sandbox)
    outside = {p for p in tree(sandbox) - before
               if not (Path(p) == mine or mine in Path(p).parents or Path(p) in mine.parents)}
    assert not outside, f"written outside the session's workspace: {sorted(outside)}"
    assert not list(Path("/tmp").glob(f"{ESCAPE}*")) and not list(sandbox.rglob(f"{ESCAPE}*"))
    assert not [p for p in ws.rglob("*") if p.is_symlink()]
    assert disk_usage(ws) < 2 << 20, "the bomb was not stopped early"


def test_single_class_upload_is_reported_not_trainable(app, tmp_path):
    url, _ = app
    zp = make_zip(tmp_path / "one.zip", class_members(n_classes=1, per_class=4))
    summary, table, _hist, issues, *_ = call(client(url), handle_file(str(zp)), api_name="/upload_dataset")
    assert "Not trainable yet" in summary and "1 class ·" in summary  # singular (issue 11: not "1 classes")
    assert "Blocking problems" in issues and "class" in issues.lower()
    readable(issues)


# --- upload size limit ---------------------------------------------------------------------------

def _incompressible_zip(path: Path, mb: float) -> Path:
    """A valid 2-class dataset zip padded with a stored (uncompressed) noise clip to about `mb` MB."""
    import numpy as np

    members = class_members()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("tone/padding.bin", np.random.default_rng(0).bytes(int(mb * (1 << 20))))
    return path


@pytest.mark.slow
def test_upload_limit_is_enforced_by_the_server(tmp_path, monkeypatch):
    """ASTAPP_MAX_UPLOAD_MB sets Gradio's max_file_size: the server refuses the upload itself (413)."""
    from astapp.jobs.manager import JobManager

    monkeypatch.setenv("ASTAPP_MAX_UPLOAD_MB", "1")
    big = _incompressible_zip(tmp_path / "big.zip", 1.5)
    manager = JobManager(root=tmp_path / "data")
    try:
        with launched(manager) as url:
            with open(big, "rb") as f:
                r = httpx.post(url + "gradio_api/upload", files={"files": ("big.zip", f)}, timeout=60)
            assert r.status_code == 413 and "maximum allowed size" in r.text
            with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client checks too
                call(client(url), handle_file(str(big)), api_name="/upload_dataset")
            small = make_zip(tmp_path / "small.zip", class_members())
            summary, *_ = call(client(url), handle_file(str(small)), api_name="/upload_dataset")
            assert "Ready to train" in summary
    finally:
        manager.shutdown(timeout=10)
    assert not list((tmp_path / "data").rglob("padding.bin"))


def test_upload_limit_is_enforced_by_the_engine_too(app, tmp_path, monkeypatch):
    """Behind a bigger web limit (a proxy, a custom launch), IngestLimits still refuses: nothing extracted."""
    url, root = app
    monkeypatch.setenv("ASTAPP_MAX_UPLOAD_MB", "1")  # read per upload by IngestLimits()
    big = _incompressible_zip(tmp_path / "big.zip", 1.5)
    c = client(url)
    with pytest.raises(AppError) as err:
        call(c, handle_file(str(big)), api_name="/upload_dataset")
    msg = readable(str(err.value))
    assert "over the 1 MB" in msg, msg
    ws = root / "workspaces" / owner_id(c.session_hash)
    assert not list(ws.rglob("*.wav")) and not list(ws.rglob("padding.bin"))


# --- optional login ------------------------------------------------------------------------------

@pytest.mark.slow
def test_auth_from_environment_requires_login(tmp_path, monkeypatch):
    from astapp.jobs.manager import JobManager
    from astapp.ui.app import _auth_from_env

    pairs = _auth_from_env(" alice:pw1, bob:p:w2 ,junk,:nouser,nopass:")
    assert pairs == [("alice", "pw1"), ("bob", "p:w2")]
    manager = JobManager(root=tmp_path / "data")
    try:
        with launched(manager, auth=pairs) as url:
            for path in ("config", "gradio_api/info"):
                assert httpx.get(url + path, timeout=30).status_code == 401
            r = httpx.post(url + "gradio_api/call/list_runs", json={"data": [None]}, timeout=30)
            assert r.status_code == 401
            with pytest.raises(Exception, match="credentials|login"):
                client(url)
            with pytest.raises(ValueError, match="Could not login"):
                client(url, auth=("alice", "wrong"))
            c = client(url, auth=("bob", "p:w2"))
            assert call(c, None, api_name="/list_runs")["choices"] == []

            # Logged in, runs belong to the user: alice sees hers from any browser session, bob doesn't.
            from jobs.test_sessions import make_run

            from astapp.jobs.sessions import owner_id
            from astapp.ui.common import user_token

            alice = owner_id(user_token("alice"))
            make_run(tmp_path / "data", alice, "r1", metrics={"accuracy": 0.9, "f1_macro": 0.8})
            for session in (client(url, auth=("alice", "pw1")), client(url, auth=("alice", "pw1"))):
                choices = call(session, None, api_name="/list_runs")["choices"]
                assert [c[1] if isinstance(c, (list, tuple)) else c for c in choices] == ["r1"], choices
            assert call(c, None, api_name="/list_runs")["choices"] == []
    finally:
        manager.shutdown(timeout=10)


# --- session isolation for every handler that takes a run id or a file ---------------------------

@pytest.fixture(scope="module")
def two_sessions(app):
    """Session A with a finished run (a real exported model: the refusals are about ownership, not training,
    so no training through the app is needed for it); session B."""
    url, root = app
    a = client(url)
    finished = exported_run(root, owner_id(a.session_hash), "a's finished run")
    assert call(a, None, api_name="/list_models")["value"] == finished
    return url, root, a, client(url), finished


@pytest.mark.slow
def test_other_sessions_runs_are_refused_by_every_handler(two_sessions, tmp_path):
    url, root, a, b, run_id = two_sessions
    # A trains (a real, long run through the app) while B tries A's runs and A's job.
    ckpt = build_tiny_ast(tmp_path / "tiny", max_length=128)
    call(a, **train_args(50, model=str(ckpt)), api_name="/start_training")
    wait_state(a, ("running",), timeout=60)
    clip = write_wav(tmp_path / "clip.wav", make_signal("tone", 1.0))
    batch = make_zip(tmp_path / "batch.zip", {"x/a.wav": clip.read_bytes()})

    # B lists nothing of A's.
    assert call(b, None, api_name="/list_runs")["choices"] == []
    assert call(b, None, api_name="/list_models")["choices"] == []
    # Every handler that takes a run id refuses A's, and tricks with the id, with a plain sentence.
    attempts: dict[str, Callable[[str], Any]] = {
        "/evaluate_run": lambda rid: call(b, rid, api_name="/evaluate_run"),
        "/predict_clip": lambda rid: call(b, rid, handle_file(str(clip)), 3, api_name="/predict_clip"),
        "/predict_batch": lambda rid: call(b, rid, handle_file(str(batch)), api_name="/predict_batch"),
        "/download_model": lambda rid: call(b, rid, api_name="/download_model"),
        "/download_browser": lambda rid: call(b, rid, api_name="/download_browser"),
    }
    a_owner = owner_id(a.session_hash)
    for name, attempt in attempts.items():
        for rid in (run_id, f"../{a_owner}/{run_id}", f"{a_owner}/{run_id}", str(root / "runs" / a_owner / run_id)):
            with pytest.raises(AppError) as err:
                attempt(rid)
            msg = readable(str(err.value))
            assert "run" in msg.lower() and ("among your runs" in msg or "Invalid run id" in msg), (name, msg)
    # A itself can use the run, so the refusals above are about ownership, not a broken run.
    label, _, _ = call(a, run_id, handle_file(str(clip)), 3, api_name="/predict_clip")
    assert len(label["confidences"]) == 3

    # Stop and resume act on the caller's own job only: B cannot stop A's training or resume its runs.
    assert "Nothing is training" in call(b, api_name="/stop_training")
    with pytest.raises(AppError) as err:
        call(b, api_name="/resume_training")
    assert "no interrupted run" in readable(str(err.value))
    assert state_of(call(a, api_name="/poll_training")[0]) == "running"
    assert "Stopping" in call(a, api_name="/stop_training")
    assert state_of(wait_state(a, ("stopped", "finished"), timeout=60)["status"]) == "stopped"
    with pytest.raises(AppError):
        call(b, api_name="/resume_training")  # A's stopped run is resumable, but only by A
    b_runs = root / "runs" / owner_id(b.session_hash)
    assert not b_runs.exists() or not [r for r in b_runs.iterdir() if not r.name.startswith(".")]


def test_files_of_other_sessions_are_refused(two_sessions, tmp_path):
    url, root, a, b, run_id = two_sessions
    a_ws = root / "workspaces" / owner_id(a.session_hash)
    secret = write_wav(a_ws / "uploads" / "secret" / "tone" / "s.wav", make_signal("tone", 1.0))
    model_file = root / "runs" / owner_id(a.session_hash) / run_id / "model" / "config.json"
    assert model_file.is_file()
    # A clip path that leaves B's dataset (absolute or ../) is refused by the preview.
    for clip in (str(secret), f"../../../{a_ws.name}/uploads/secret/tone/s.wav", str(model_file)):
        with pytest.raises(AppError) as err:
            call(b, clip=clip, preset="light", api_name="/preview_augment")
        assert "outside" in readable(str(err.value)) or "no clip" in str(err.value)
    # A server path smuggled in as an "uploaded" file is refused by Gradio before any handler runs.
    for path in (secret, model_file):
        r = httpx.post(url + "gradio_api/call/predict_clip",
                       json={"data": [run_id, {"path": str(path), "meta": {"_type": "gradio.FileData"}}, 3]},
                       timeout=30)
        assert r.status_code == 200
        events = httpx.get(url + f"gradio_api/call/predict_clip/{r.json()['event_id']}", timeout=60).text
        assert "event: error" in events and "event: complete" not in events, events
        assert "confidences" not in events
