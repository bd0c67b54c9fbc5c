"""Load: several browser-like clients upload, preview and predict at once while a real training job runs.

Every client checks the content of every answer against the engine run directly (not just "no
exception"), every call has a deadline, the training-status poll keeps answering quickly while the
heavy handlers are busy, and the training still finishes.
"""

from __future__ import annotations

import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from app_helpers import CLASSES, call, client, exported_run, launched, poll, state_of, train_args, wait_state
from conftest import build_tiny_ast
from gradio_client import handle_file
from hostile import class_members, make_zip

from astapp.core.config import AugmentConfig
from astapp.data.examples import example_zip_path
from astapp.data.synth import KINDS, make_signal, write_wav
from astapp.jobs import registry

N_CLIENTS = 5
POLL_LATENCY_S = 8.0  # a status poll may queue behind nothing heavy: it must come back fast


@pytest.fixture
def shared_app(tmp_path, monkeypatch):
    from astapp.jobs.manager import JobManager

    monkeypatch.setenv("ASTAPP_SHARE_RUNS", "1")
    root = tmp_path / "data"
    run_id = exported_run(root, "u" + "0" * 20, "shared model")  # another session's finished run
    manager = JobManager(root=root)
    try:
        with launched(manager) as url:
            yield url, root, run_id
    finally:
        manager.shutdown(timeout=30)


def _user_zip(tmp_path: Path, i: int) -> tuple[Path, Path]:
    """A 3-class dataset only this client has (zip, and the same files unpacked for reference)."""
    members = class_members(n_classes=3, per_class=4, seconds=0.5, prefix=f"set{i}/")
    members = {k.replace("/0.wav", f"/only{i}.wav"): v for k, v in members.items()}
    zp = make_zip(tmp_path / f"user{i}.zip", members)
    plain = tmp_path / f"user{i}"
    with zipfile.ZipFile(zp) as zf:
        zf.extractall(plain)
    return zp, plain / f"set{i}"


@pytest.mark.slow
def test_concurrent_clients_while_training(shared_app, tmp_path):
    from astapp.data.audio import load_audio
    from astapp.features.augment import build_augment
    from astapp.predict.predictor import Predictor

    url, root, shared_run = shared_app
    ckpt = build_tiny_ast(tmp_path / "ckpt", max_length=128)
    example = tmp_path / "example"
    with zipfile.ZipFile(example_zip_path()) as zf:
        zf.extractall(example)
    reference = Predictor(root / "runs" / ("u" + "0" * 20) / shared_run / "model")

    trainer = client(url)
    call(trainer, **train_args(4, model=str(ckpt)), api_name="/start_training")
    wait_state(trainer, ("running",), timeout=60)

    # Each client: its own dataset (the example, or a zip only it has), a seeded preview of one of
    # its clips, and a prediction with the shared model on its own clip.
    jobs: list[dict[str, Any]] = []
    for i in range(N_CLIENTS):
        if i % 2 == 0:
            zp, base, clip = example_zip_path(), example / "example_sounds", f"{CLASSES[i]}/{CLASSES[i]}_0{i}.wav"
        else:
            zp, base = _user_zip(tmp_path, i)
            clip = f"{KINDS[1]}/only{i}.wav"
        wav = write_wav(tmp_path / f"probe{i}.wav", make_signal(KINDS[i], 1.0 + 0.25 * i))
        jobs.append({"i": i, "zip": zp, "base": base, "clip": clip, "probe": wav})
    errors: list[str] = []
    polls: list[tuple[float, str]] = []
    done = threading.Event()

    def user(job: dict[str, Any]) -> None:
        i = job["i"]
        try:
            c = client(url)
            summary, table, _hist, issues, *_players = call(c, handle_file(str(job["zip"])),
                                                            api_name="/upload_dataset")
            if i % 2 == 0:
                assert "5 classes · 80 clips" in summary, summary
                assert [(r[0], r[1]) for r in table["data"]] == [(n, 16) for n in CLASSES]
            else:
                assert "3 classes · 12 clips" in summary, summary
                assert sorted(r[0] for r in table["data"]) == sorted(KINDS[:3])
            assert "Ready to train" in summary

            fig, orig, aug, text = call(c, clip=job["clip"], preset="classic", seed=100 + i,
                                        api_name="/preview_augment")
            want = load_audio(job["base"] / job["clip"], max_seconds=30)
            got_orig, sr = sf.read(orig, dtype="float32")
            got_aug, _ = sf.read(aug, dtype="float32")
            want_aug = build_augment(AugmentConfig(preset="classic"), seed=100 + i)(want, 16000)
            assert sr == 16000 and fig.get("type") == "matplotlib" and "classic" in text
            np.testing.assert_allclose(got_orig, want, atol=2e-4)  # int16 round trip
            np.testing.assert_allclose(got_aug, np.clip(want_aug, -1, 1), atol=2e-4)

            models = call(c, None, api_name="/list_models")
            assert shared_run in [v for _, v in models["choices"]]
            label, _timeline, _verdict = call(c, shared_run, handle_file(str(job["probe"])), 3,
                                              api_name="/predict_clip")
            top = reference.predict(job["probe"], top_k=3).top
            assert label["label"] == top[0][0]
            got = [(d["label"], d["confidence"]) for d in label["confidences"]]
            assert [g[0] for g in got] == [t[0] for t in top]
            np.testing.assert_allclose([g[1] for g in got], [t[1] for t in top], atol=1e-4)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(f"client {i}: {type(e).__name__}: {e}")

    def poller() -> None:
        while not done.is_set():
            t0 = time.monotonic()
            try:
                status = poll(trainer, timeout=POLL_LATENCY_S * 2)["status"]
            except BaseException as e:  # noqa: BLE001
                errors.append(f"poll: {type(e).__name__}: {e}")
                return
            polls.append((time.monotonic() - t0, status))
            time.sleep(0.2)

    threads = [threading.Thread(target=user, args=(j,)) for j in jobs]
    watcher = threading.Thread(target=poller)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(4 * 60)
    done.set()
    watcher.join(60)
    assert not any(t.is_alive() for t in [*threads, watcher]), "a client waited without end"
    assert not errors, "\n".join(errors)

    # The status poll kept answering while heavy handlers ran, and the job was training meanwhile.
    assert len(polls) >= 3, polls
    assert max(lat for lat, _ in polls) < POLL_LATENCY_S, polls
    assert any(state_of(s) == "running" for _, s in polls), [s[:60] for _, s in polls]

    done_snap = wait_state(trainer, ("finished", "failed", "stopped"), timeout=180)
    assert state_of(done_snap["status"]) == "finished", done_snap["log"]
    assert len(done_snap["metric"]) == 2 * 4  # accuracy and F1 for each of the 4 epochs
    own = [r for r in registry.list_runs(root, "u" + "1" * 20, shared=True) if r.id != shared_run]
    assert len(own) == 1, own
    assert own[0].state == "finished" and own[0].has_model, (own[0], (own[0].path / "log.txt").read_text())
