"""The Runs table's unknown column: the AUROC known vs other sounds where `calibrate --other` measured one
(model/unknown.json's calibration), else what there is (the method and its threshold's keep share)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from astapp.cli.runs import COLUMNS, _cells
from astapp.evaluation import unknown
from astapp.jobs.compare import row_of


def _run(root: Path, name: str, other: np.ndarray | None) -> Path:
    """A finished run folder whose model's unknown score was calibrated on validation scores (and others)."""
    run = root / name
    (run / "model").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "finished"}))
    (run / "config.json").write_text(json.dumps({"data": "/d/sounds", "model": "m", "mode": "frozen"}))
    stats = unknown.fit(np.random.default_rng(0).normal(size=(12, 4)), np.arange(12) % 3, "knn")
    unknown.set_threshold(stats, np.linspace(0.1, 0.5, 20), keep=0.9, scores_other=other)
    unknown.save(stats, run / "model")
    return run


def test_auroc_shown_when_calibrated_with_other_sounds(tmp_path):
    other = np.array([0.45, 0.6, 0.7, 0.8])  # mostly above the known scores: AUROC well above 0.5, below 1
    row = row_of(_run(tmp_path, "with-other", other))
    expected = unknown.auroc(np.linspace(0.1, 0.5, 20), other)
    assert 0.5 < expected < 1.0
    assert row.unknown_auroc == expected
    cells = dict(zip(COLUMNS, _cells(row, 1), strict=True))
    assert cells["unknown"] == f"{expected:.3f}"


def test_without_other_sounds_the_method_and_keep_share(tmp_path):
    row = row_of(_run(tmp_path, "validation-only", None))
    assert row.unknown_auroc is None
    assert row.unknown_method == "knn, keeps 90% (no AUROC: calibrate --other)"
    assert dict(zip(COLUMNS, _cells(row, 1), strict=True))["unknown"] == "knn"


def test_no_unknown_score_at_all(tmp_path):
    run = _run(tmp_path, "old", None)
    (run / "model" / "unknown.json").unlink()
    row = row_of(run)
    assert row.unknown_auroc is None and row.unknown_method is None
    assert dict(zip(COLUMNS, _cells(row, 1), strict=True))["unknown"] == "–"
