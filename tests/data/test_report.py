"""Validation report and Arrow dataset built from real generated audio, folders, manifests and zips."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from astapp.core.config import AudioConfig, IngestLimits
from astapp.core.errors import DatasetError
from astapp.data.dataset import build_dataset, inspect_source, split_files, to_windows, validation_fold
from astapp.data.report import UntrainableDatasetError, ValidationReport
from astapp.data.synth import KINDS, make_signal, write_wav
from tests.hostile import class_members, make_zip, wav_bytes

CFG = AudioConfig()


def _clip(root: Path, rel: str, seconds: float = 0.3, kind: str = "tone", seed: int = 0, sr: int = 16_000) -> Path:
    return write_wav(root / rel, make_signal(kind, seconds, sr, np.random.default_rng(seed)), sr)


def _classes(root: Path, spec: dict[str, int], seconds: float = 0.3) -> Path:
    for ci, (name, n) in enumerate(spec.items()):
        for i in range(n):
            _clip(root, f"{name}/{i}.wav", seconds, KINDS[ci % len(KINDS)], seed=ci * 1000 + i)
    return root


def test_zip_to_dataset_end_to_end(tmp_path):
    members = {**class_members(3, 5, seconds=0.4, prefix="my_upload/data/"),
               "my_upload/data/tone/empty.wav": b"", "my_upload/data/tone/fake.wav": b"hello, I am text\n" * 9,
               "__MACOSX/my_upload/._x": b"junk"}
    z = make_zip(tmp_path / "in" / "sounds.zip", members)
    ws = tmp_path / "ws"
    steps: list[float] = []
    bundle = build_dataset(z, ws, CFG, val_split=0.2, seed=0, limits=IngestLimits(),
                           progress=lambda f, m: steps.append(f))
    dd = bundle.dataset
    assert set(dd) == {"train", "validation"}
    assert bundle.labels == sorted(KINDS[:3]) == dd["train"].features["label"].names
    assert dd["train"].column_names == ["audio", "label", "path", "duration"]
    assert (dd["train"].num_rows, dd["validation"].num_rows) == (12, 3)
    assert sorted(dd["validation"]["label"]) == [0, 1, 2]  # stratified: one per class
    row = dd["train"].with_format("numpy")[0]
    assert row["audio"].dtype == np.float32 and len(row["audio"]) == 6400
    assert row["duration"] == pytest.approx(0.4)
    assert not Path(row["path"]).is_absolute() and row["path"].count("/") == 1
    assert bundle.root.is_relative_to(ws) and bundle.cache_dir.is_relative_to(ws)
    rep = bundle.report
    reasons = {s["path"]: s["reason"] for s in rep.skipped}
    assert "empty" in reasons["tone/empty.wav"] and "text" in reasons["tone/fake.wav"]
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)


def test_unicode_labels_survive_to_classlabel(tmp_path):
    nfd = unicodedata.normalize("NFD", "café")
    root = _classes(tmp_path / "ds", {nfd: 3, "Hund 🐕": 3, "狗": 3})
    bundle = build_dataset(root, tmp_path / "ws", CFG, 0.34, 0)
    assert bundle.labels == sorted(["café", "Hund 🐕", "狗"])
    assert bundle.dataset["train"].features["label"].names == bundle.labels
    assert all(unicodedata.is_normalized("NFC", n) for n in bundle.labels)


def test_tiny_classes_split_one_and_one_and_seed_changes_the_split(tmp_path):
    root = _classes(tmp_path / "ds", {"a": 2, "b": 2, "c": 10})
    b = build_dataset(root, tmp_path / "ws", CFG, 0.2, seed=0)
    val = b.dataset["validation"]
    names = b.labels
    assert sorted(names[i] for i in val["label"]) == ["a", "b", "c", "c"]
    assert sorted(names[i] for i in b.dataset["train"]["label"]).count("a") == 1
    splits = {tuple(sorted(split_files(["c"] * 10, [None] * 10, 0.3, s)[1])) for s in range(6)}
    assert len(splits) > 1  # the seed matters ...
    assert split_files(["c"] * 10, [None] * 10, 0.3, 4) == split_files(["c"] * 10, [None] * 10, 0.3, 4)  # ... and repeats


def test_manifest_folds_choose_the_validation_split(tmp_path):
    root = tmp_path / "ds"
    lines = ["filename,category,fold"]
    for i in range(12):
        cat = ["dog", "rain"][i % 2]
        _clip(root, f"audio/{i}.wav", kind=KINDS[i % 2], seed=i)
        lines.append(f"{i}.wav,{cat},{i % 4 + 1}")
    (root / "meta").mkdir()
    (root / "meta" / "index.csv").write_text("\n".join(lines) + "\n")
    b = build_dataset(root, tmp_path / "ws", CFG, 0.2, 0)
    val_paths = sorted(b.dataset["validation"]["path"])
    assert val_paths == ["audio/11.wav", "audio/3.wav", "audio/7.wav"]  # fold 4 = the last fold
    assert b.report.folds == {"1": 3, "2": 3, "3": 3, "4": 3}
    assert validation_fold(["train", "test", "train"]) == "test"
    assert validation_fold(["1", "10", "2"]) == "10"
    assert validation_fold(["A", "A"]) is None


@pytest.mark.parametrize("mode", ["crop", "split"])
def test_long_clip_cropped_or_split_and_short_clip_padded(tmp_path, mode):
    root = _classes(tmp_path / "ds", {"a": 3, "b": 3})
    _clip(root, "a/long.wav", seconds=60.0, seed=7)
    _clip(root, "b/tiny.wav", seconds=0.01, seed=8)
    cfg = AudioConfig(long_clips=mode)
    b = build_dataset(root, tmp_path / "ws", cfg, 0.34, 0)
    rows = [r for split in b.dataset.values() for r in split.select_columns(["path", "duration"])]
    long_rows = [r for r in rows if r["path"] == "a/long.wav"]
    assert len(long_rows) == (1 if mode == "crop" else 6)  # 5 full windows + an end-aligned tail window
    assert all(r["duration"] == pytest.approx(10.24) for r in long_rows)
    tiny = [r for r in rows if r["path"] == "b/tiny.wav"]
    assert len(tiny) == 1 and tiny[0]["duration"] == pytest.approx(0.25)
    text = " ".join(b.report.warnings)
    assert "longer than 10.24 s" in text and ("split into windows" if mode == "split" else "cropped") in text
    assert "shorter than 0.25 s" in text
    assert b.report.padded == 1 and b.report.long == 1 and max(b.report.durations) == pytest.approx(60.0)
    train_paths = set(b.dataset["train"]["path"])
    assert not train_paths & set(b.dataset["validation"]["path"])  # split by file, never by window


def test_to_windows_edges():
    cfg = AudioConfig(min_seconds=0.5, max_seconds=1.0, long_clips="split")
    x = np.arange(16_000 * 2 + 4000, dtype=np.float32)
    w = to_windows(x, cfg)
    assert [len(v) for v in w] == [16_000, 16_000]  # tail of 0.25 s < half a window: dropped
    w = to_windows(np.arange(16_000 * 2 + 9000, dtype=np.float32), cfg)
    assert len(w) == 3 and w[-1][-1] == 16_000 * 2 + 9000 - 1  # tail window ends at the clip's end
    assert len(to_windows(np.ones(10, np.float32), cfg)[0]) == 8000


def test_blocking_errors(tmp_path):
    single = _classes(tmp_path / "one", {"dog": 4})
    rep = inspect_source(single, tmp_path / "ws", CFG, IngestLimits())
    assert not rep.trainable and "at least 2" in rep.errors[0]
    lonely = _classes(tmp_path / "lonely", {"dog": 3, "cat": 1})
    with pytest.raises(DatasetError, match="'cat' has 1 usable clip") as err:
        build_dataset(lonely, tmp_path / "ws", CFG, 0.2, 0)
    assert isinstance(err.value, UntrainableDatasetError) and err.value.report.classes[0].name == "cat"
    broken = tmp_path / "broken"
    for rel in ["a/1.wav", "a/2.wav", "b/1.wav"]:
        (broken / rel).parent.mkdir(parents=True, exist_ok=True)
        (broken / rel).write_bytes(b"")
    rep = inspect_source(broken, tmp_path / "ws", CFG, IngestLimits())
    assert rep.errors == ["None of the 3 audio file(s) could be decoded (see the skipped files); "
                          "re-export them as WAV, FLAC or MP3."]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No labelled audio files" in inspect_source(empty, tmp_path / "ws", CFG, IngestLimits()).errors[0]
    assert not (tmp_path / "ws" / "cache").exists() or not any((tmp_path / "ws" / "cache" / "datasets").iterdir())


def test_warnings_case_duplicates_silence_imbalance(tmp_path):
    root = _classes(tmp_path / "ds", {"Dog": 2, "dog": 16})
    (root / "Dog" / "copy.wav").write_bytes((root / "dog" / "0.wav").read_bytes())
    write_wav(root / "dog" / "silent.wav", np.zeros(8000, np.float32))
    (root / "dog" / "0b.wav").write_bytes(wav_bytes(0.3, seed=99))
    (root / "dog" / "0c.wav").write_bytes(wav_bytes(0.3, seed=99))
    rep = inspect_source(root, tmp_path / "ws", CFG, IngestLimits())
    text = "\n".join(rep.warnings)
    assert "differ only in upper/lower case" in text
    assert "identical audio under different labels" in text and "'Dog'" in text
    assert "exact duplicates of another clip in the same class" in text
    assert "1 clip(s) are completely silent (dog/silent.wav)" in text and rep.silent == 1
    assert "imbalanced: 'dog' has 19 clips but 'Dog' only 3" in text
    assert rep.trainable


def test_report_round_trips_and_prints(tmp_path):
    root = _classes(tmp_path / "ds", {"a": 3, "b": 2})
    _clip(root, "b/22k.wav", sr=22_050, seed=5)
    (root / "b" / "x.wav").write_bytes(b"")
    rep = inspect_source(root, tmp_path / "ws", CFG, IngestLimits())
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["trainable"] is True and d["total_clips"] == 6
    assert d["sample_rates"] == {"16000": 5, "22050": 1}
    assert sum(d["duration_histogram"]["counts"]) == 6
    back = ValidationReport.from_dict(d)
    assert back == rep
    text = rep.to_text()
    for needle in ("2 classes, 6 clips", "b/x.wav: empty file (0 bytes)", "Ready to train.", "22050 Hz x1"):
        assert needle in text


def test_second_build_reuses_the_arrow_cache_until_the_source_changes(tmp_path):
    root = _classes(tmp_path / "ds", {"a": 3, "b": 3})
    ws = tmp_path / "ws"
    first = build_dataset(root, ws, CFG, 0.34, 0)
    arrow = first.cache_dir / "data.arrow"
    stamp = arrow.stat().st_mtime_ns
    again = build_dataset(root, ws, CFG, 0.34, 0)
    assert again.cache_dir == first.cache_dir and arrow.stat().st_mtime_ns == stamp
    assert again.dataset["train"]["path"] == first.dataset["train"]["path"]
    assert again.report.to_dict() == first.report.to_dict()
    other_seed = build_dataset(root, ws, CFG, 0.34, 1)
    assert other_seed.cache_dir != first.cache_dir
    _clip(root, "a/new.wav", seed=42)
    changed = build_dataset(root, ws, CFG, 0.34, 0)
    assert changed.cache_dir != first.cache_dir
    assert changed.dataset["train"].num_rows + changed.dataset["validation"].num_rows == 7
