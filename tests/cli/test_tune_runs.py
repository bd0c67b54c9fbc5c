"""`tune` and `runs` on the command line: range sentences, tune.json as the issue defines it, the runs table."""

from __future__ import annotations

import json

import pytest
from train_helpers import one_thread_fixture

from astapp.cli import main

one_thread = one_thread_fixture("astapp-cli-tune")


@pytest.mark.parametrize("trials", ["0", "100000", "-1"])
def test_tune_trial_count_out_of_range(trials, tiny_ast, small_dataset, tmp_path, capsys):
    out = tmp_path / "tune"
    code = main(["tune", "--data", str(small_dataset), "--model", str(tiny_ast), "--mode", "frozen", "--trials",
                 trials, "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "from 1 to 1000" in err and not out.exists()


def test_tune_test_share_out_of_range(tiny_ast, small_dataset, tmp_path, capsys):
    code = main(["tune", "--data", str(small_dataset), "--model", str(tiny_ast), "--mode", "full", "--trials", "2",
                 "--test-share", "0.9", "--output", str(tmp_path / "t")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "test share must be above 0 and at most 0.5" in err and not (tmp_path / "t").exists()


def test_runs_of_a_missing_folder(tmp_path, capsys):
    assert main(["runs", "--runs-dir", str(tmp_path / "nope")]) == 2
    assert "not a folder of runs" in capsys.readouterr().err


@pytest.mark.slow
def test_tune_writes_tune_json_then_runs_lists_it(tiny_ast, small_dataset, tmp_path, capsys):
    out = tmp_path / "runs" / "tune1"
    assert main(["tune", "--data", str(small_dataset), "--model", str(tiny_ast), "--mode", "frozen", "--trials", "3",
                 "--max-length", "64", "--precision", "fp32", "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "tune.json").read_text())
    assert {"trials", "best", "default", "metric", "test"} <= set(doc) and len(doc["trials"]) == 3
    assert "held-back test" in printed and str(out / "tune.json") in printed
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    assert main(["runs", "--runs-dir", str(tmp_path / "runs"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["tune1"] and rows[0]["task"] == "tune" and rows[0]["mode"] == "frozen"
    assert rows[0]["f1_macro"] == doc["best"]["value"]
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "tune1" in capsys.readouterr().out
