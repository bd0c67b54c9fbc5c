"""`versions --data DIR`: a dataset's versions and what each added, from any of the folders a user has at hand
(a version's folder, the versions folder, the workspace), as text and as JSON; a folder without versions is one
sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astapp.cli import main
from astapp.data.additions import PendingAdditions
from astapp.data.ingest import scan
from astapp.data.synth import make_class_folders
from astapp.data.versions import VersionStore


@pytest.fixture
def workspace(tmp_path):
    """v1 = a two-class upload; v2 = v1 + 2 false alarms (background) + 1 confirmed chirp."""
    data = tmp_path / "upload"
    make_class_folders(data, n_classes=2, per_class=3, seconds=0.5, seed=2)
    ws = tmp_path / "ws"
    pending, store = PendingAdditions(ws), VersionStore(ws)
    tone = np.sin(np.arange(16000, dtype=np.float32) / 5) * 0.3
    pending.add(tone, "false_alarm", "", "night.wav", 1.0, 2.0)
    pending.add(tone * 0.5, "false_alarm", "", "night.wav", 5.0, 6.0)
    pending.add(tone * 0.8, "confirmed", "chirp", "day.wav", 3.0, 4.0)
    v1 = store.register("sounds.zip", data, 6)
    store.create(v1, scan(data), pending.list(), pending, "background")
    return ws


def test_versions_lists_what_each_version_added(workspace, capsys):
    assert main(["versions", "--data", str(workspace / "versions" / "v2")]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert (
        len(lines) == 2 and lines[0].startswith("  v1") and lines[1].startswith("* v2")
    )  # * = the folder given
    assert "v1 = sounds.zip as chosen (6 clips)" in lines[0]
    assert (
        "v2 = v1 + 2 false alarms → background 2 + 1 confirmed → chirp 1 (from day.wav, night.wav): 9 clips"
        in lines[1]
    )


@pytest.mark.parametrize("where", ["", "versions"])
def test_versions_json_from_the_workspace_or_versions_folder(workspace, where, capsys):
    assert main(["versions", "--data", str(workspace / where), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [(r["name"], r["parent"], r["clips"], r["this"]) for r in rows] == [
        ("v1", "", 6, False),
        ("v2", "v1", 9, False),
    ]
    assert rows[1]["changes"] == {"false_alarm": {"background": 2}, "confirmed": {"chirp": 1}}
    assert rows[1]["sources"] == ["day.wav", "night.wav"] and all(r["exists"] for r in rows)


def test_versions_of_a_folder_without_versions_is_one_sentence(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    assert main(["versions", "--data", str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no dataset versions" in err
    assert main(["versions", "--data", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
