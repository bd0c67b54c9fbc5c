"""The real Gradio app driven end to end through `gradio_client`, on a tiny local AST checkpoint.

One app per module (isolated data folder); each `Client` is its own session, like a browser tab.
"""

from __future__ import annotations

import csv
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from app_helpers import free_port, points
from conftest import build_tiny_ast
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from astapp.data.examples import example_zip_path
from astapp.data.synth import make_signal, write_wav

CLASSES = ["beeps", "knocks", "noise", "speech", "whistle"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(url, tiny checkpoint folder, data root) of a launched app; closed after the module."""
    from astapp.jobs.manager import JobManager
    from astapp.ui.app import build_app

    root = tmp_path_factory.mktemp("appdata")
    ckpt = build_tiny_ast(tmp_path_factory.mktemp("ckpt") / "tiny", max_length=128)
    manager = JobManager(root=root)
    demo = build_app(manager, hub_online=False)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", ckpt, root
    finally:
        demo.close()
        manager.shutdown(timeout=30)


def _client(url: str) -> Client:
    return Client(url, verbose=False, download_files=True)


def _train_args(ckpt: Path, epochs: float) -> dict[str, Any]:
    return {"model": str(ckpt), "mode": "full", "epochs": epochs, "lr": 1e-3, "batch_size": 16,
            "max_length": "auto", "val_split": 0.25, "seed": 0, "early_stopping": 0, "class_weighted": False}


def _start(client: Client, ckpt: Path, epochs: float) -> tuple[Any, ...]:
    return client.predict(**_train_args(ckpt, epochs), api_name="/start_training")


def _poll(client: Client) -> dict[str, Any]:
    status, progress, loss, lr, metric, log, _timer = client.predict(api_name="/poll_training")
    return {"status": status, "progress": progress, "loss": points(loss), "metric": points(metric), "log": log}


def _wait(client: Client, words: tuple[str, ...], timeout: float) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        snap = _poll(client)
        # The badge, not the message: a running job's message can already read "Stopped ..." or
        # "Finished" (train's last stage) a moment before the job itself ends.
        badge = re.search(r"astapp-badge (\w+)", snap["status"])
        if badge and badge.group(1) in {w.lower() for w in words}:
            return snap
        assert time.time() < deadline, f"timed out waiting for {words}: {snap['status']}\n{snap['log']}"
        time.sleep(0.5)


def test_api_endpoints_are_stable(app):
    url, _, _ = app
    names = set(_client(url).view_api(print_info=False, return_format="dict")["named_endpoints"])
    for name in ("/use_example", "/upload_dataset", "/preview_augment", "/start_training", "/poll_training",
                 "/stop_training", "/evaluate_run", "/predict_clip", "/predict_batch", "/download_model"):
        assert name in names


def test_bad_upload_gets_a_readable_message(app, tmp_path):
    url, _, _ = app
    fake = tmp_path / "notes.zip"
    fake.write_text("this is not a zip archive")
    with pytest.raises(AppError) as err:
        _client(url).predict(handle_file(str(fake)), api_name="/upload_dataset")
    msg = str(err.value)
    assert "zip" in msg.lower() and "Traceback" not in msg


@pytest.mark.slow
def test_end_to_end_journey(app, tmp_path):
    url, ckpt, root = app
    client = _client(url)

    # Data: upload the example zip and read the report.
    summary, table, hist, issues, *players = client.predict(handle_file(str(example_zip_path())),
                                                           api_name="/upload_dataset")
    assert "Ready to train" in summary and "5 classes" in summary and "80 clips" in summary
    assert [row[0] for row in table["data"]] == CLASSES
    assert all(row[1] == 16 for row in table["data"])
    assert hist and hist.get("type") == "matplotlib"
    heard = [p for p in players if isinstance(p, dict) and p.get("value")]
    assert len(heard) >= 5  # at least one playable clip per class

    # Augment: classic preset with a fixed seed really changes the waveform.
    import soundfile as sf

    fig, orig, aug, text = client.predict(clip="speech/speech_03.wav", preset="classic", seed=3,
                                          api_name="/preview_augment")
    assert fig.get("type") == "matplotlib" and "classic" in text
    a, _ = sf.read(orig)
    b, _ = sf.read(aug)
    assert len(a) == 16000 and (len(a) != len(b) or abs(a - b).max() > 1e-3)
    with pytest.raises(AppError) as err:
        client.predict(clip="../../etc/passwd", api_name="/preview_augment")
    assert "outside" in str(err.value) or "no clip" in str(err.value)

    # Train a long run, watch history grow, then stop it gracefully.
    _start(client, ckpt, epochs=30)
    first = _wait(client, ("Running",), timeout=60)
    grown = first
    deadline = time.time() + 60
    while len(grown["loss"]) <= len(first["loss"]) or not grown["loss"]:
        assert time.time() < deadline, f"loss history never grew: {grown['log']}"
        time.sleep(0.5)
        grown = _poll(client)
    assert all(isinstance(pt[1], float) for pt in grown["loss"])
    status = client.predict(api_name="/stop_training")
    assert "Stopping" in status
    stopped = _wait(client, ("Stopped", "Finished"), timeout=60)
    assert "Stopped" in stopped["status"]

    # Train 1 epoch to the end.
    _start(client, ckpt, epochs=1)
    done = _wait(client, ("Finished", "Failed"), timeout=90)
    assert "Finished" in done["status"], done["log"]
    assert done["metric"], "validation metrics are plotted"
    assert "100%" in done["progress"]

    # Evaluate: the finished run is listed first and has a confusion matrix over our classes.
    runs = client.predict(None, api_name="/list_runs")
    run_id = runs["value"]
    assert run_id and len(runs["choices"]) >= 1
    head, matrix, per_class, mistakes, *_ = client.predict(run_id, api_name="/evaluate_run")
    assert "Accuracy" in head and "validation clips" in head
    assert matrix and matrix.get("type") == "matplotlib"
    assert sorted(r[0] for r in per_class["data"]) == CLASSES
    assert sum(r[4] for r in per_class["data"]) == 20  # 25 % of 80 clips validate

    # Predict one short and one long clip with the trained model.
    models = client.predict(None, api_name="/list_models")
    assert models["value"] == run_id
    short = write_wav(tmp_path / "tone.wav", make_signal("tone", 1.0))
    label, timeline, verdict = client.predict(run_id, handle_file(str(short)), 3, api_name="/predict_clip")
    assert label["label"] in CLASSES and len(label["confidences"]) == 3
    assert sum(c["confidence"] for c in label["confidences"]) <= 1.0001
    assert re.search(r"unknown score [-\d.e+]+ (≤|>) |^### unknown \(not like any class; score ", verdict), verdict
    long = write_wav(tmp_path / "long.wav", make_signal("noise", 4.0))
    _, timeline, _ = client.predict(run_id, handle_file(str(long)), 2, api_name="/predict_clip")
    assert timeline.get("visible") is True and timeline["value"]["type"] == "matplotlib"

    # Batch prediction on a zip → CSV with one row per file (a broken file gets an error row).
    batch = tmp_path / "batch.zip"
    with zipfile.ZipFile(batch, "w") as zf:
        zf.write(short, "a/tone.wav")
        zf.write(long, "b/long.wav")
        zf.writestr("b/broken.wav", b"RIFF....garbage")
    csv_path, preview = client.predict(run_id, handle_file(str(batch)), api_name="/predict_batch")
    with open(csv_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and sum(bool(r["error"]) for r in rows) == 1
    assert {r["label"] for r in rows if not r["error"]} <= {*CLASSES, "unknown"}
    assert all(float(r["unknown"]) == float(r["unknown"]) for r in rows if not r["error"])  # the score column
    assert all(len(r["top"].split("; ")) == 3 for r in rows if not r["error"])  # the slider's default
    csv_path, _ = client.predict(run_id, handle_file(str(batch)), 2, api_name="/predict_batch")
    with open(csv_path, encoding="utf-8") as f:  # issue 11.10: batch prediction honours top-k
        assert all(len(r["top"].split("; ")) == 2 for r in csv.DictReader(f) if not r["error"])

    # Download the model; plain transformers loads it.
    model_zip = client.predict(run_id, api_name="/download_model")
    out = tmp_path / "model"
    with zipfile.ZipFile(model_zip) as zf:
        zf.extractall(out)
    assert [p.name for p in out.iterdir()] == [Path(model_zip).stem]  # one top folder, nothing scattered
    from transformers import pipeline

    clf = pipeline("audio-classification", model=str(out / Path(model_zip).stem))
    wav = make_signal("tone", 1.0)  # an array: decoding a path would need ffmpeg
    assert {p["label"] for p in clf({"raw": wav, "sampling_rate": 16000}, top_k=2)} <= set(CLASSES)

    # Another session cannot see or use this run.
    other = _client(url)
    assert other.predict(None, api_name="/list_runs")["choices"] == []
    with pytest.raises(AppError) as err:
        other.predict(run_id, api_name="/download_model")
    assert "run" in str(err.value).lower() and "Traceback" not in str(err.value)
    assert (root / "runs").is_dir()


@pytest.mark.slow
def test_folds_are_shown_chosen_and_logged(app, tmp_path):
    """Issue 11.3: the manifest's folds are listed, a chosen fold validates, the run logs its split."""
    from hostile import esc_like_zip

    url, ckpt, root = app
    client = _client(url)
    summary, *_ = client.predict(handle_file(str(esc_like_zip(tmp_path / "esc.zip"))), api_name="/upload_dataset")
    assert "Folds" in summary and "1: 6 clips" in summary and "fold **4** validates" in summary
    with pytest.raises(AppError) as err:
        client.predict(**_train_args(ckpt, 1), val_fold="9", api_name="/start_training")
    assert "There is no fold '9'" in str(err.value) and "1, 2, 3, 4" in str(err.value)
    client.predict(**_train_args(ckpt, 1), val_fold="2", api_name="/start_training")
    done = _wait(client, ("Finished", "Failed"), timeout=90)
    assert "Finished" in done["status"], done["log"]
    run_id = client.predict(None, api_name="/list_runs")["value"]
    run = next((root / "runs").glob(f"*/{run_id}"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_validation"] == 6 and metrics["num_train"] == 18
    assert {p["path"].split("-")[0] for p in metrics["predictions"]} == {"audio/2"}
    assert "Validating on fold 2 (6 examples), training on folds 1, 3, 4 (18 examples)." in \
        (run / "log.txt").read_text()
    cmd = client.predict(**_train_args(ckpt, 1), val_fold="2", api_name="/training_command")
    assert "--val-fold 2" in cmd


def test_training_command_names_the_users_file_and_the_servers_copy(app):
    """Issue 11.8 and issue 10: the command shows the user's own file name and python3, says where the
    uploaded copy lives, and untyped settings are the defaults the CLI would use too."""
    import shlex

    from astapp.cli import build_parser, config_from_args

    url, _, root = app
    client = _client(url)
    client.predict(handle_file(str(example_zip_path())), api_name="/upload_dataset")
    note, command = client.predict(api_name="/training_command").splitlines()
    assert note.startswith("# example_sounds.zip is your zip.") and str(root) in note and "extracted" in note
    argv = shlex.split(command)
    assert argv[:6] == ["python3", "-m", "astapp", "train", "--data", "example_sounds.zip"]
    from_form = config_from_args(build_parser().parse_args(argv[3:]))
    typed_by_hand = config_from_args(build_parser().parse_args(
        ["train", "--data", "example_sounds.zip", "--model", "scratch:tiny", "--output", "runs/my-run"]))
    assert from_form.to_dict() == typed_by_hand.to_dict()


@pytest.mark.slow
def test_lora_through_the_app(app):
    """Issue 17: mode lora with its settings from the Train form, to a finished run the API can use."""
    url, ckpt, _ = app
    client = _client(url)
    client.predict(api_name="/use_example")
    lora = {**_train_args(ckpt, 1), "mode": "lora", "lora_rank": 4, "lora_targets": "q_proj,v_proj"}
    cmd = client.predict(**lora, api_name="/training_command")
    assert "--mode lora --lora-rank 4" in cmd
    client.predict(**lora, api_name="/start_training")
    done = _wait(client, ("Finished", "Failed"), timeout=120)
    assert "Finished" in done["status"] and "Accuracy" in done["status"], done["log"]


def test_the_queue_line_says_what_is_ahead():
    from astapp.ui.train_tab import _status_md

    first = _status_md({"state": "queued", "run_id": "r", "position": 1, "ahead": 0}, None)
    assert "nothing is ahead of you" in first and "#1" not in first
    second = _status_md({"state": "queued", "run_id": "r", "position": 1, "ahead": 1}, None)
    assert "#1** in the queue, behind 1 job" in second


def test_a_cv_run_without_a_final_model_does_not_send_the_user_to_predict():
    from astapp.ui.train_tab import _status_md

    cv = _status_md({"state": "finished", "run_id": "r", "metrics": {"accuracy": 0.9, "folds": 5}}, None)
    assert "nothing to try in **Predict**" in cv and "Then train the final model" in cv
    final = _status_md({"state": "finished", "run_id": "r",
                        "metrics": {"accuracy": 0.9, "folds": 5, "final_model": "/r/model"}}, None)
    plain = _status_md({"state": "finished", "run_id": "r", "metrics": {"accuracy": 0.9}}, None)
    assert "try the model in **Predict**" in final and "try the model in **Predict**" in plain
