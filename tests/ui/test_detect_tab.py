"""The Detect tab through the app's API (gradio_client, a fast stand-in for training): events of a recording
loaded from a detection output, a false alarm rejected, a missed sound marked, "Add to dataset and retrain"
makes v2 and queues a run on it, the Data tab's versions list shows it; and the keyboard shortcuts script."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from app_helpers import call, client, launched, poll, state_of, train_args
from fake_train import make_fake_train
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from astapp.data.synth import make_signal
from astapp.jobs.manager import JobManager


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("detect-app")
    manager = JobManager(root=root, train_fn=make_fake_train(steps=2))
    with launched(manager) as url:
        yield url, root
    manager.shutdown(timeout=10)


def _recording(path: Path) -> Path:
    sr = 44_100
    rng = np.random.default_rng(1)
    wav = rng.standard_normal(sr * 8).astype(np.float32) * 0.01
    wav[sr:2 * sr] += make_signal("clicks", 1.0, sr, rng)
    wav[5 * sr:6 * sr] += make_signal("tone", 1.0, sr, rng)
    sf.write(str(path), wav, sr)
    return path


def _finished_run(c, root: Path) -> str:
    call(c, **train_args(1, model="scratch:tiny"), api_name="/start_training")
    deadline = time.monotonic() + 30
    while state_of(poll(c)["status"]) != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return max((p for p in (root / "runs").glob("*/*") if (p / "meta.json").is_file()),
               key=lambda p: p.stat().st_mtime).name


@pytest.mark.slow
def test_reject_a_false_alarm_and_retrain_on_a_new_version(app, tmp_path):
    url, root = app
    c = client(url)
    call(c, api_name="/use_example", timeout=120)
    run = _finished_run(c, root)
    rec = _recording(tmp_path / "garden.wav")
    events = tmp_path / "garden.csv"
    events.write_text("file,label,start,end,score\ngarden.wav,knocks,1.0,2.0,0.91\ngarden.wav,beeps,5.0,6.0,0.8\n")
    out = call(c, run, handle_file(str(rec)), handle_file(str(events)), api_name="/review_events_file")
    rid, table, current = out[0]["value"] if isinstance(out[0], dict) else out[0], out[4], out[6]
    assert [r[1] for r in table["data"]] == ["knocks", "beeps"] and "Event 0" in current
    out = call(c, rid, 0, "", 0.0, 20, "", api_name="/review_reject")
    assert out[8] == 1 and "rejected" in [r[5] for r in out[4]["data"]]  # on to the next undecided event
    out = call(c, rid, 1, "", 0.0, 20, "", api_name="/review_confirm")
    out = call(c, rid, 6.5, 7.2, "beeps", "", 0.0, 20, api_name="/review_missed")
    assert [r[5] for r in out[4]["data"]] == ["rejected", "confirmed", "missed"]
    assert "3 clip(s) wait" in out[9]
    with pytest.raises(AppError) as err:
        call(c, rid, 0, "", 0.0, 20, "", api_name="/review_relabel")  # relabel without a class: one sentence
    assert "Type the class" in str(err.value) and "Traceback" not in str(err.value)

    result, pending = call(c, rid, run, "background", api_name="/review_retrain")
    assert "v2 = v1 + " in result and "background" in result and "No clips are waiting" in pending
    versions, _pick, _waiting = call(c, api_name="/dataset_versions")
    assert "**v2** · *in use*" in versions and "**v1**" in versions
    runs = sorted((p for p in (root / "runs").glob("*/*") if (p / "config.json").is_file()),
                  key=lambda p: p.stat().st_mtime)
    cfg = json.loads((runs[-1] / "config.json").read_text())
    assert cfg["data_version"].startswith("v2 = v1 + ") and "/versions/v2" in cfg["data"]


def test_the_page_carries_the_review_keys():
    from astapp.ui.detect_tab import KEYS, KEYS_HEAD

    for key, button in KEYS.items():
        assert f"'{key}': '{button}'" in KEYS_HEAD
    assert "review-panel" in KEYS_HEAD and "INPUT" in KEYS_HEAD  # only on the Detect tab, never while typing
