"""The per-file runner in one process: records per file, a bad file listed, reruns skip, another model refused."""

from __future__ import annotations

import json
import threading

import pytest
from scale_helpers import export_tiny, recordings
from train_helpers import one_thread  # noqa: F401 - autouse: one torch thread, shared cache

from astapp.core.errors import explain
from astapp.predict.predictor import Predictor
from astapp.scale.records import JOB_FILE, ModelMismatchError, RecordFolder
from astapp.scale.runner import run_files
from astapp.scale.scores import ScoreJob


@pytest.fixture(scope="module")
def scale_model(tiny_ast, tmp_path_factory):
    return export_tiny(tiny_ast, tmp_path_factory.mktemp("scale") / "model")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return recordings(tmp_path_factory.mktemp("rec"), 4, 3.0)


def test_every_file_recorded_bad_one_listed_and_a_rerun_skips_them(scale_model, files, tmp_path):
    events = []
    summary = run_files(ScoreJob(str(scale_model)), files, str(tmp_path), events=events.append)
    bad = [f for f in files if f.endswith("broken.wav")]
    assert (summary.total, summary.done, list(summary.failed)) == (5, 4, bad)
    assert "could not be decoded" in summary.failed[bad[0]] or "not" in summary.failed[bad[0]]
    assert [e["file"] for e in events] == files  # one record written per file
    store = RecordFolder(tmp_path)
    rec = store.read(files[1])["result"]  # files[0] is broken.wav
    predictor = Predictor(scale_model)
    assert rec["labels"] == predictor.labels and rec["duration"] == pytest.approx(3.0 * 0.7, abs=1e-3)
    starts = [w[0] for w in rec["windows"]]
    assert len(starts) == len(predictor.window_starts(int(rec["duration"] * 16000)))  # the predictor's windows
    assert all(abs(sum(w[2]) - 1) < 1e-4 for w in rec["windows"])
    again = run_files(ScoreJob(str(scale_model)), files, str(tmp_path), events=events.append)
    assert (again.skipped, again.done, list(again.failed)) == (4, 0, bad)  # only the failed file is tried again
    assert json.loads((tmp_path / JOB_FILE).read_text())["model"]["backend"] == "torch"


def test_another_model_is_refused_and_nothing_is_written(scale_model, tiny_ast, files, tmp_path):
    run_files(ScoreJob(str(scale_model)), files[:1], str(tmp_path / "out"))
    other = export_tiny(tiny_ast, tmp_path / "other", seed=1)
    before = sorted(p.name for p in (tmp_path / "out" / "files").iterdir())
    with pytest.raises(ModelMismatchError) as err:
        run_files(ScoreJob(str(other)), files, str(tmp_path / "out"))
    assert "holds results made by model model" in explain(err.value) and "another --output" in str(err.value)
    assert sorted(p.name for p in (tmp_path / "out" / "files").iterdir()) == before


def test_a_stop_keeps_what_is_finished_and_the_rerun_completes_identically(scale_model, files, tmp_path):
    stop = threading.Event()
    first = run_files(ScoreJob(str(scale_model)), files, str(tmp_path / "a"), events=lambda e: stop.set(), stop=stop)
    assert first.stopped and first.done + len(first.failed) == 1
    rest = run_files(ScoreJob(str(scale_model)), files, str(tmp_path / "a"))
    assert rest.skipped + rest.done + len(rest.failed) == len(files)
    run_files(ScoreJob(str(scale_model)), files, str(tmp_path / "b"))
    a, b = RecordFolder(tmp_path / "a").merge(files), RecordFolder(tmp_path / "b").merge(files)
    assert a.read_bytes() == b.read_bytes()
