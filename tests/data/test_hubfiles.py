"""Hub-layout Parquet/Arrow datasets read offline: real files written by datasets and pyarrow."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from astapp.core.config import AudioConfig, IngestLimits
from astapp.core.errors import UploadError
from astapp.data.dataset import build_dataset, inspect_source
from astapp.data.ingest import resolve_source, scan
from tests.hostile import wav_bytes

ESC_CATEGORIES = ["dog", "rain", "crow"]
MB = 1 << 20


def _esc_rows(n: int = 12) -> dict[str, list]:
    """ESC-50-like columns: audio {bytes, path}, fold, target, category."""
    kinds = ["tone", "noise", "chirp"]
    return {"audio": [{"bytes": wav_bytes(0.5, kind=kinds[i % 3], seed=i), "path": f"1-{i}-A-{i % 3}.wav"}
                      for i in range(n)],
            "fold": [1 + i % 4 for i in range(n)], "target": [i % 3 for i in range(n)],
            "category": [ESC_CATEGORIES[i % 3] for i in range(n)]}


def _hub_parquet(folder: Path, rows: dict[str, list], name: str = "data/train-00000-of-00001.parquet") -> Path:
    import datasets

    ds = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio())
    out = folder / name
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out))
    return out


def _zip_folder(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder.parent).as_posix())
    return zip_path


def test_esc50_like_parquet_zip_keeps_names_and_folds(tmp_path):
    src = tmp_path / "esc50"
    _hub_parquet(src, _esc_rows(12))
    (src / "README.md").write_text("---\ndataset_info:\n  features:\n  - name: audio\n    dtype: audio\n---\n# ESC\n")
    ws = tmp_path / "ws"
    root = resolve_source(_zip_folder(src, tmp_path / "esc50.zip"), ws, IngestLimits())
    assert root.is_relative_to(ws / "tables")
    listing = scan(root)
    assert sorted({it.label for it in listing.items}) == sorted(ESC_CATEGORIES)  # category over target
    assert sorted({it.fold for it in listing.items}) == ["1", "2", "3", "4"]
    assert all(it.path.read_bytes()[:4] == b"RIFF" for it in listing.items)
    report = inspect_source(tmp_path / "esc50.zip", ws, limits=IngestLimits())
    assert report.trainable and report.total_clips == 12 and report.folds == {"1": 3, "2": 3, "3": 3, "4": 3}
    bundle = build_dataset(tmp_path / "esc50.zip", ws, AudioConfig(max_seconds=0.5))
    assert bundle.split == "fold:4" and len(bundle.dataset["validation"]) == 3 and len(bundle.dataset["train"]) == 9
    assert resolve_source(src, ws, IngestLimits()) != root  # the folder itself works too (its own copy)


def test_pyarrow_split_files_respect_train_validation_test(tmp_path):
    """Plain pyarrow tables (no datasets metadata), `<split>-*.parquet`, integer ids without names."""
    src = tmp_path / "plain"
    src.mkdir()
    for split, n in (("train", 6), ("validation", 3), ("test", 3)):
        rows = _esc_rows(n)
        table = pa.table({"audio": rows["audio"], "target": rows["target"]})
        pq.write_table(table, src / f"{split}-00000-of-00001.parquet", row_group_size=4)
    listing = scan(resolve_source(src, tmp_path / "ws", IngestLimits()))
    assert sorted({it.fold for it in listing.items}) == ["train", "validation"]
    assert len(listing.items) == 9 and sorted({it.label for it in listing.items}) == ["0", "1", "2"]
    assert any("integers without names" in w for w in listing.warnings)
    assert any("'test' split is held out" in w for w in listing.warnings)


def test_readme_front_matter_names_integer_labels(tmp_path):
    """pyarrow-written tables carry no ClassLabel; the Hub README's class_label names are used instead."""
    src = tmp_path / "carded"
    rows = _esc_rows(6)
    (src / "data").mkdir(parents=True)
    pq.write_table(pa.table({"audio": rows["audio"], "label": rows["target"]}),
                   src / "data" / "train-00000-of-00001.parquet")
    (src / "README.md").write_text("---\ndataset_info:\n  features:\n  - name: audio\n    dtype: audio\n"
                                   "  - name: label\n    dtype:\n      class_label:\n        names:\n"
                                   "          '0': dog\n          '1': rain\n          '2': crow\n---\n# card\n")
    listing = scan(resolve_source(src, tmp_path / "ws", IngestLimits()))
    assert sorted(it.label for it in listing.items) == sorted(ESC_CATEGORIES * 2)
    assert not any("integers without names" in w for w in listing.warnings)


def test_arrow_files_and_classlabel_names(tmp_path):
    import datasets

    src = tmp_path / "arrowds"
    src.mkdir()
    rows = _esc_rows(6)
    ds = datasets.Dataset.from_dict({"audio": rows["audio"], "label": rows["target"]})
    ds = ds.cast_column("audio", datasets.Audio(decode=False)).cast_column(
        "label", datasets.ClassLabel(names=ESC_CATEGORIES))
    with pa.OSFile(str(src / "esc-train.arrow"), "wb") as sink, pa.ipc.new_stream(sink, ds.data.schema) as w:
        w.write_table(ds.data.table)
    listing = scan(resolve_source(src, tmp_path / "ws", IngestLimits()))
    assert sorted(it.label for it in listing.items) == sorted(ESC_CATEGORIES * 2)


def test_parquet_bomb_is_refused_before_reading(tmp_path):
    src = tmp_path / "bomb"
    src.mkdir()
    zeros = bytes(40 * MB)  # zstd packs 40 MB of silence into a few KB
    pq.write_table(pa.table({"audio": [{"bytes": zeros, "path": "a.wav"}, {"bytes": zeros, "path": "b.wav"}],
                             "label": ["x", "y"]}), src / "train-00000-of-00001.parquet", compression="zstd")
    assert (src / "train-00000-of-00001.parquet").stat().st_size < MB
    ws = tmp_path / "ws"
    with pytest.raises(UploadError, match="bomb"):
        resolve_source(src, ws, IngestLimits())
    with pytest.raises(UploadError, match="inflates past the 60 MB limit"):  # the footer says 40 MB (a dictionary
        resolve_source(src, ws, IngestLimits(max_ratio=1e9, max_total_bytes=60 * MB))  # value repeated): counted
    assert not (ws / "tables").exists() or not any((ws / "tables").iterdir())


def test_corrupt_parquet_and_missing_audio_column_are_clear_errors(tmp_path):
    good = _hub_parquet(tmp_path / "g", _esc_rows(3))
    bad = tmp_path / "bad" / "train-00000-of-00001.parquet"
    bad.parent.mkdir()
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UploadError, match="not a readable Parquet"):
        resolve_source(bad.parent, tmp_path / "ws", IngestLimits())
    noaudio = tmp_path / "noaudio"
    noaudio.mkdir()
    pq.write_table(pa.table({"category": ["a", "b"], "fold": [1, 2]}), noaudio / "train-00000-of-00001.parquet")
    with pytest.raises(UploadError, match="no audio column"):
        resolve_source(noaudio, tmp_path / "ws", IngestLimits())
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [1]}), buf)
    assert buf.getvalue()[:4] == b"PAR1"  # the writer itself is real; only our files were broken


def test_saved_dataset_with_one_split_keeps_its_fold_column(tmp_path):
    """The hf:/saved path writes the table's fold column, so cross-validation sees ESC-50's folds."""
    import datasets

    ds = datasets.Dataset.from_dict(_esc_rows(8)).cast_column("audio", datasets.Audio(decode=False))
    datasets.DatasetDict(train=ds).save_to_disk(str(tmp_path / "saved"))
    listing = scan(resolve_source(tmp_path / "saved", tmp_path / "ws", IngestLimits()))
    assert sorted({it.fold for it in listing.items}) == ["1", "2", "3", "4"]
    assert sorted({it.label for it in listing.items}) == sorted(ESC_CATEGORIES)
