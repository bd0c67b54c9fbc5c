"""The committed example dataset: small, multi-class, decodable, and reproducible from its script."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from astapp.data.examples import EXAMPLE_NAME, example_dir, example_zip_path

ROOT = Path(__file__).resolve().parents[2]


def test_zip_is_small_multiclass_and_decodable() -> None:
    path = example_zip_path()
    assert path == ROOT / "assets" / "example_sounds.zip"
    assert path.stat().st_size <= 5 * 2**20
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        assert all(n.startswith(f"{EXAMPLE_NAME}/") and n.count("/") == 2 for n in names), names[:5]
        counts = Counter(n.split("/")[1] for n in names)
        assert len(counts) >= 3 and min(counts.values()) >= 8, counts
        for name in names:
            info = sf.info(io.BytesIO(zf.read(name)))
            assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16"), name
            assert 0.9 <= info.duration <= 1.1, (name, info.duration)
            wav, _ = sf.read(io.BytesIO(zf.read(name)), dtype="float32")
            assert abs(wav).max() > 0.05, f"{name} is (nearly) silent"


def test_example_dir_extracts_once_and_scans_as_class_folders(tmp_path: Path) -> None:
    from astapp.data.ingest import scan

    root = example_dir(tmp_path)
    assert root == tmp_path / "example" / EXAMPLE_NAME and root.is_dir()
    stamp = (root / "speech" / "speech_00.wav").stat().st_mtime_ns
    assert example_dir(tmp_path) == root  # reused, not extracted again
    assert (root / "speech" / "speech_00.wav").stat().st_mtime_ns == stamp
    listing = scan(root)
    labels = Counter(item.label for item in listing.items)
    assert set(labels) == {"beeps", "knocks", "noise", "speech", "whistle"}
    assert set(labels.values()) == {16}
    assert not listing.skipped


def test_example_report_is_trainable(tmp_path: Path) -> None:
    from astapp.core.config import AudioConfig, IngestLimits
    from astapp.data.dataset import inspect_source

    report = inspect_source(example_zip_path(), tmp_path, AudioConfig(), IngestLimits())
    assert report.trainable, report.errors
    assert [c.name for c in report.classes] == ["beeps", "knocks", "noise", "speech", "whistle"]
    assert all(c.clips == 16 for c in report.classes)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="regenerating needs Debian's espeak-ng")
def test_generator_reproduces_the_committed_zip() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "assets" / "make_example.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
