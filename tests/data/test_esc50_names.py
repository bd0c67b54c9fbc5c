"""ESC-50 clips in class folders: the folds in their names are used and shown, and so is the grouping."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from astapp.core.config import AudioConfig
from astapp.data.dataset import build_dataset, inspect_source
from astapp.data.ingest import scan
from astapp.data.synth import make_signal, write_wav


def _esc_folders(root: Path, extra: str | None = None) -> Path:
    """Two classes, 5 folds, 2 source recordings per class and fold, 2 takes each (40 clips)."""
    rng = np.random.default_rng(0)
    for target, (name, kind) in enumerate([("dog", "chirp"), ("rain", "noise")]):
        for fold in range(1, 6):
            for source in range(2):
                for take in "AB":
                    stem = f"{fold}-{1000 + 10 * target + 100 * fold + source}-{take}-{target}"
                    write_wav(root / name / f"{stem}.wav", make_signal(kind, 0.3, rng=rng))
    if extra:
        write_wav(root / "dog" / extra, make_signal("chirp", 0.3, rng=rng))
    return root


def test_folds_come_from_esc50_names_and_a_validation_fold_can_be_picked(tmp_path):
    root = _esc_folders(tmp_path / "esc")
    listing = scan(root)
    assert {i.fold for i in listing.items} == {"1", "2", "3", "4", "5"}
    assert "ESC-50" in listing.folds_from
    report = inspect_source(root, tmp_path / "ws", AudioConfig(max_seconds=0.5))
    assert report.folds == {"1": 8, "2": 8, "3": 8, "4": 8, "5": 8}
    assert "ESC-50" in report.folds_from and report.grouping.startswith("by ESC-50 source recording (20 groups")
    text = report.to_text()
    assert "Folds (from file names (ESC-50" in text and "Grouping: by ESC-50" in text
    zipped = shutil.make_archive(str(tmp_path / "esc"), "zip", root)  # the folder zip the tester used
    bundle = build_dataset(zipped, tmp_path / "ws", AudioConfig(max_seconds=0.5), val_fold="4")
    assert bundle.split == "fold:4"
    assert len(bundle.dataset["validation"]) == 8 and len(bundle.dataset["train"]) == 32


def test_names_that_do_not_all_follow_the_convention_give_no_folds(tmp_path):
    listing = scan(_esc_folders(tmp_path / "esc", extra="my-own-bark.wav"))
    assert {i.fold for i in listing.items} == {None} and listing.folds_from == ""
