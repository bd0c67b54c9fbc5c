"""Issue 12 through the real app over HTTP: cross-validate the example, look at a clip of the map,
accept a suggested label, download the corrected manifest and retrain on it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from app_helpers import call, client, launched, wait_state


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from astapp.jobs.manager import JobManager

    manager = JobManager(root=tmp_path_factory.mktemp("appdata"))
    try:
        with launched(manager) as url:
            yield url
    finally:
        manager.shutdown(timeout=30)


def form(**over):
    values = {"model": "scratch:tiny", "mode": "frozen", "epochs": 2, "lr": 1e-3, "batch_size": 16,
              "max_length": "auto", "val_split": 0.2, "val_fold": "auto", "seed": 0, "early_stopping": 0,
              "class_weighted": False, "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.0,
              "lora_targets": "q_proj,v_proj", **over}
    return list(values.values())


@pytest.mark.slow
def test_cross_validate_the_example_then_fix_a_label_and_retrain(app, tmp_path):
    c = client(app)
    call(c, api_name="/use_example", timeout=120)
    call(c, "3", False, *form(), api_name="/start_cv")
    done = wait_state(c, ("finished", "failed"), timeout=240)
    assert "finished" in done["status"], done["log"]
    assert "Fold 3" in done["log"] or "fold 3" in done["log"].lower()

    runs = call(c, None, api_name="/list_runs")
    run_id = runs["value"] if isinstance(runs, dict) else runs
    out = call(c, run_id, api_name="/cv_view", timeout=120)
    # outputs as the API returns them (the section's column and the picked-clip state are not values)
    summary, table, _plot, picture, _player, issues, _info, _after = out
    assert "Mean accuracy" in summary and "3 folds" in summary and "stratified 3-fold" in summary
    assert [r[0] for r in table["data"]] == ["1", "2", "3"] and sum(int(r[3]) for r in table["data"]) == 80
    assert picture is not None  # the map image

    audio, info, picture = call(c, run_id, 0, api_name="/cv_clip")
    assert audio and "Labelled" in info and "out of fold" in info and picture

    rows = issues["data"]
    assert rows, "the example's frozen scratch model must leave some suspects"
    first = rows[0][1]
    _, info, _ = call(c, run_id, 1, api_name="/cv_suspect")  # row #1 of the list, as a click on it does
    assert first in info and "suggested label" in info
    after = call(c, run_id, api_name="/cv_accept")
    decided = {r[1]: r[6] for r in after["data"]}
    assert decided[first].startswith("relabelled ")
    new_label = decided[first].removeprefix("relabelled ")

    manifest = Path(call(c, run_id, api_name="/cv_manifest"))
    with manifest.open(encoding="utf-8") as fh:
        got = {r["file"]: r["label"] for r in csv.DictReader(fh)}
    assert len(got) == 80 and got[first] == new_label

    message = call(c, run_id, api_name="/cv_retrain", timeout=120)
    assert "Corrected" in message and "80 clips" in message
    done = wait_state(c, ("finished", "failed"), timeout=240)
    assert "finished" in done["status"], done["log"]
