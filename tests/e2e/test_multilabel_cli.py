"""CLI for multi-label: `inspect` names the label mode, `train --multi-label` forces it, `predict` lists labels."""

from __future__ import annotations

import json

from train_helpers import one_thread_fixture

from astapp.cli import main
from astapp.data.synth import make_multilabel_dataset

# the CLI sets torch threads (restored) and quiets transformers (conftest restores it)
isolated = one_thread_fixture("astapp-cache-mlcli", threads=None)


def test_inspect_shows_the_mode_and_train_multi_label_forces_it(tiny_ast, small_dataset, tmp_path, capsys):
    mixed = make_multilabel_dataset(tmp_path / "mix", per_combo=2, seconds=0.5, seed=1)
    assert main(["inspect", "--data", str(mixed)]) == 0
    out = capsys.readouterr().out
    assert "Label mode: multi-label" in out and "Labels seen together:" in out
    assert main(["inspect", "--data", str(mixed), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["label_mode"] == "multi" and report["multilabel"]["labels"] == {"clicks": 8, "noise": 8, "tone": 8}

    run = tmp_path / "run"  # class folders are single-label; --multi-label trains them with BCE anyway
    assert main(["train", "--data", str(small_dataset), "--model", str(tiny_ast), "--output", str(run),
                 "--epochs", "1", "--batch-size", "6", "--lr", "1e-3", "--max-length", "64", "--threads", "1",
                 "--multi-label"]) == 0
    assert "Finished: mAP" in capsys.readouterr().out
    m = json.loads((run / "metrics.json").read_text())
    assert m["problem_type"] == "multi_label_classification" and set(m["thresholds"]) == {"chirp", "noise", "tone"}
    assert json.loads((run / "config.json").read_text())["multi_label"] is True
    clip = sorted((small_dataset / "noise").iterdir())[0]
    assert main(["predict", "--model", str(run / "model"), str(clip)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["label"] == ";".join(lab for lab, _ in row["labels"])
    assert all(p >= m["thresholds"][lab] for lab, p in row["labels"])
