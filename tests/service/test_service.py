"""The service layer: session state that survives reloads and restarts, the CLI's and the app's shared
defaults, cursors, and the error vocabulary (a full disk) through the queue and the CLI."""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path

import pytest
from fake_train import make_fake_train, tiny_cfg
from hostile import class_members, make_zip

from astapp.cli import build_parser, config_from_args, main
from astapp.core import runfolder
from astapp.core.config import AugmentConfig
from astapp.core.errors import AccessError, DatasetError, UploadError, disk_full, explain
from astapp.jobs.manager import JobManager
from astapp.service import Service

TIMEOUT = 15.0


@pytest.fixture
def svc(tmp_path):
    hold = threading.Event()
    manager = JobManager(tmp_path / "data", train_fn=make_fake_train(steps=4, hold=hold))
    service = Service(manager, hub_online=False)
    service.hold = hold  # type: ignore[attr-defined]
    yield service
    hold.set()
    manager.shutdown(timeout=5)


def _restart(svc: Service) -> Service:
    """A new Service over the same data folder, as after an app restart (nothing kept in memory)."""
    return Service(JobManager(svc.root, train_fn=make_fake_train(), start=False), hub_online=False)


def test_state_survives_a_reload_and_a_restart_and_is_private(svc, tmp_path):
    alice, bob = svc.open("alice-token"), svc.open("bob-token")
    upload = make_zip(tmp_path / "birds.zip", class_members(n_classes=3, per_class=3))
    view = svc.datasets.upload(alice, upload)
    assert view.name == "Your dataset: birds.zip" and view.trainable and len(view.labels) == 3
    cfg = AugmentConfig(preset="classic", transforms={"PitchShift": {"enabled": False}}, mixup=0.5)
    svc.augmenting.save(alice, cfg, clip="tone/0.wav", seed=7)
    svc.training.save_form(alice, {"epochs": 3, "lr": 0.002, "model": "scratch:small", "not_a_field": 1})
    svc.remember(alice, evaluate_run="r1", top_k=5)

    for again in (svc, _restart(svc)):  # a reload (same process) and a restart (new process)
        s = again.open("alice-token")
        assert again.datasets.current(s).root == view.root and again.datasets.current(s).name == view.name
        assert again.augmenting.settings(s) == cfg
        state = again.state(s)
        assert state.preview == {"clip": "tone/0.wav", "seed": 7} and (state.evaluate_run, state.top_k) == ("r1", 5)
        form = again.training.form(s)
        assert (form["epochs"], form["lr"], form["model"]) == (3, 0.002, "scratch:small")
        assert form["batch_size"] == 16 and "not_a_field" not in form  # the rest: scratch defaults
    # Bob sees none of it: the example, the default settings, the default form.
    assert svc.datasets.current(bob).kind == "example" and svc.augmenting.settings(bob) == AugmentConfig()
    assert svc.training.form(bob) == svc.training.form_defaults()


def test_rejected_upload_changes_nothing_and_a_vanished_folder_falls_back(svc, tmp_path):
    s = svc.open("tok")
    good = svc.datasets.upload(s, make_zip(tmp_path / "good.zip", class_members()))
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    with pytest.raises(UploadError, match="not a valid zip"):
        svc.datasets.upload(s, bad)
    assert svc.datasets.current(s).root == good.root
    one = svc.datasets.upload(s, make_zip(tmp_path / "one.zip", class_members(n_classes=1)))
    assert not one.trainable and svc.datasets.current(s).root == one.root  # shown, with its problems
    with pytest.raises(DatasetError, match="blocking problems"):
        svc.training.start(s, svc.training.form_defaults())
    import shutil

    shutil.rmtree(one.root)
    assert svc.datasets.current(s).kind == "example"


def test_cli_and_app_defaults_are_the_same_settings(svc):
    """`--model scratch:tiny` without other flags trains exactly what the app's form starts with."""
    cli = config_from_args(build_parser().parse_args(["train", "--data", "d", "--model", "scratch:tiny",
                                                      "--output", "o"]))
    s = svc.open("tok")
    app = svc.training.config_from_form(s, svc.training.form_defaults("scratch:tiny"))
    assert (cli.epochs, cli.lr, cli.batch_size) == (20.0, 1e-3, 16)
    cli.data, cli.output, app.data, app.output = "", "", "", ""
    assert cli.to_dict() == app.to_dict()
    pretrained = config_from_args(build_parser().parse_args(["train", "--model", "some/ast"]))
    assert (pretrained.epochs, pretrained.lr, pretrained.batch_size) == (5.0, 5e-5, 8)
    typed = config_from_args(build_parser().parse_args(["train", "--model", "scratch:tiny", "--epochs", "2"]))
    assert (typed.epochs, typed.lr) == (2.0, 1e-3)


def test_form_values_are_typed_by_their_settings_kind():
    """Every form field becomes its setting's type; "auto" keeps meaning "let astapp choose"."""
    from astapp.core.config import setting
    from astapp.core.errors import TrainingError
    from astapp.service.training import form_value

    assert form_value(setting("max_length"), " Auto ", "auto") == "auto"
    assert form_value(setting("max_length"), "512", "auto") == 512
    assert form_value(setting("val_fold"), "auto", "") == "" and form_value(setting("val_fold"), " 2 ", "") == "2"
    assert form_value(setting("model"), "  ", "scratch:tiny") == "scratch:tiny"
    batch = form_value(setting("batch_size"), 16.0, 8)
    assert batch == 16 and isinstance(batch, int)
    assert form_value(setting("class_weighted"), 1, False) is True
    with pytest.raises(TrainingError, match="Input length must be 'auto'"):
        form_value(setting("max_length"), "long", "auto")
    with pytest.raises(TrainingError, match="not numbers"):
        form_value(setting("lr"), "fast", 5e-5)


def test_attach_and_poll_with_a_cursor(svc):
    s = svc.open("tok")
    assert svc.training.attach(s) is None and svc.training.poll(s, None).snapshot is None
    job = svc.training.start(s, svc.training.form_defaults())
    first = svc.training.poll(s, job)
    assert first.reset and first.job_id == job
    deadline = time.monotonic() + TIMEOUT
    while first.cursor == 0:  # until the held job has said something
        assert time.monotonic() < deadline
        first = svc.training.poll(s, job)
    svc.hold.set()
    assert svc.manager.wait(job, TIMEOUT) == "finished"
    rest = svc.training.poll(s, job, first.cursor)
    assert not rest.reset and rest.cursor == first.cursor + len(rest.events)
    assert [e["type"] for e in first.events + rest.events].count("log") == 4
    assert svc.training.poll(s, job, rest.cursor).events == []
    # After the run, a reloaded page shows it (finished, with its accuracy), not "no training yet".
    assert svc.training.attach(s) == job
    snap = _restart(svc).training.poll(svc.open("tok"), None).snapshot
    assert snap["state"] == "finished" and snap["run_id"] == job
    assert svc.runs(s, need_model=True)[0].accuracy == 0.75
    with pytest.raises(AccessError):
        svc.training.poll(svc.open("other"), job)


def test_disk_full_is_one_plain_sentence_with_the_folder_and_the_fix(svc, tmp_path):
    err = OSError(errno.ENOSPC, "No space left on device", "/data/astapp/runs/u1/r1/model.safetensors")
    msg = explain(err)
    assert msg == disk_full("/data/astapp/runs/u1/r1")
    assert "/data/astapp/runs/u1/r1" in msg and "Free some space" in msg and "ASTAPP_DATA_DIR" in msg

    def full(cfg):
        return OSError(errno.ENOSPC, "No space left on device", str(Path(cfg.output) / "checkpoints" / "x.bin"))

    jm = JobManager(tmp_path / "q", train_fn=make_fake_train(fail=full))
    try:
        job = jm.submit("o", tiny_cfg())
        assert jm.wait(job, TIMEOUT) == "failed"
        error = jm.snapshot(job, owner="o")["error"]
        run = jm.get_run("o", job)
        assert error == disk_full(run.path / "checkpoints") == run.error
        assert "unexpected" not in error.lower()
    finally:
        jm.shutdown(timeout=5)


def test_disk_full_in_the_cli(tiny_ast, small_dataset, tmp_path, capsys, monkeypatch):
    from astapp.training import pipeline

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("ASTAPP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(pipeline._Run, "_export", no_space)
    run = tmp_path / "run"
    code = main(["train", "--data", str(small_dataset), "--model", str(tiny_ast), "--output", str(run),
                 "--epochs", "1", "--max-length", "64", "--threads", "1", "--mode", "frozen"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"Error: {disk_full(run)}" in err and "Traceback" not in err and "unexpected" not in err.lower()
    status = json.loads((run / runfolder.STATUS).read_text())
    assert status["state"] == "failed" and status["error"] == disk_full(run)
    assert runfolder.read_history(run)[-1] == {**runfolder.read_history(run)[-1], "type": "error",
                                            "message": disk_full(run)}
    assert "Training failed: The disk is full" in (run / runfolder.LOG).read_text()


def test_cli_runs_are_recorded_like_app_runs(tiny_ast, small_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASTAPP_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "--data", str(small_dataset), "--model", str(tiny_ast), "--output", str(run),
                 "--epochs", "1", "--max-length", "64", "--threads", "1", "--mode", "frozen"]) == 0
    log = (run / runfolder.LOG).read_text()
    assert "Training started." in log and "[training]" in log
    last = log.strip().splitlines()[-1]
    assert "Training finished. accuracy" in last and "macro F1" in last
    assert log.count("Training finished") == 1  # one closing line, not three
    assert json.loads((run / runfolder.CONFIG).read_text())["max_length"] == 64
    assert time.time() - json.loads((run / runfolder.STATUS).read_text())["updated"] < 120


def test_a_hub_model_is_refused_at_start_when_the_hub_is_unreachable(svc):
    from astapp.core.errors import ModelLoadError

    s = svc.open("tok")
    form = {**svc.training.form_defaults(), "model": "some-lab/ast-not-cached-here"}
    with pytest.raises(ModelLoadError, match="cannot be reached.*local checkpoint folder.*scratch:small"):
        svc.training.start(s, form)
    assert svc.manager.active_job(s.owner) is None  # nothing was queued to fail later
    assert svc.training.start(s, {**form, "model": "scratch:tiny"})  # the alternatives still start
