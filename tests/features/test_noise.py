"""Background noise from real clips: the `_background_noise_` folder, the noise bank, training and the CLI."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from train_helpers import one_thread_fixture

from astapp.cli import main
from astapp.core.config import AugmentConfig, TrainConfig
from astapp.data.dataset import inspect_source
from astapp.data.synth import make_class_folders, make_signal, write_wav
from astapp.features.augment import build_augment
from astapp.features.augment_settings import AugmentError
from astapp.features.noise import find_noise, load_bank, noise_for_run, prepare

NOISE_ON = '{"AddBackgroundNoise": {"enabled": true, "p": 1.0}, "AddShortNoises": {"enabled": true, "p": 1.0}}'


def _noise_folder(folder: Path, broken: bool = True) -> Path:
    rng = np.random.default_rng(3)
    write_wav(folder / "hum.wav", 0.3 * make_signal("harmonic", 2.0, rng=rng))
    write_wav(folder / "short.wav", 0.3 * make_signal("noise", 0.5, rng=rng))
    if broken:
        (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
        (folder / "README.txt").write_text("noise recorded in the kitchen")
    return folder


def _zip(folder: Path, zpath: Path) -> Path:
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder.parent).as_posix())
    return zpath


# the CLI sets torch threads (restored) and quiets transformers (conftest restores it)
isolated = one_thread_fixture("noise-cache", threads=None)


def test_noise_folder_in_a_zip_is_listed_as_noise_not_as_a_class(tmp_path):
    root = tmp_path / "sounds"
    make_class_folders(root, n_classes=2, per_class=3, seconds=1.0, seed=2)
    _noise_folder(root / "_background_noise_")
    report = inspect_source(_zip(root, tmp_path / "up.zip"), tmp_path / "ws")
    assert report.labels == ["chirp", "tone"] and report.trainable
    assert report.noise["folder"] == "_background_noise_" and report.noise["files"] == 2
    assert report.noise["seconds"] == pytest.approx(2.5, abs=0.01)
    assert [s["path"] for s in report.noise["skipped"]] == ["_background_noise_/broken.wav"]
    assert any(s["path"] == "_background_noise_/README.txt" for s in report.skipped)
    text = report.to_text()
    assert "Background noise (_background_noise_/, not a class): 2 file(s)" in text
    assert "skipped _background_noise_/broken.wav" in text
    assert any("none of these" in t for t in report.suggestions)  # no background class yet

    (root / "_background_noise_").rename(root / "_noise_")
    (root / "tone").rename(root / "background")
    report = inspect_source(root, tmp_path / "ws")
    assert report.labels == ["background", "chirp"] and report.noise["folder"] == "_noise_"
    assert not report.suggestions  # a background class exists


def test_bank_is_by_content_loops_short_noise_and_needs_clips(tmp_path):
    src = _noise_folder(tmp_path / "n" / "_background_noise_")
    files = find_noise(_zip(src, tmp_path / "noise.zip"), tmp_path / "ws")
    assert sorted(f.name for f in files) == ["broken.wav", "hum.wav", "short.wav"]
    bank = prepare(files, tmp_path / "bank")
    assert len(bank.files) == 2 and [s["path"] for s in bank.skipped] == ["broken.wav"]
    again = prepare(find_noise(src, tmp_path / "ws"), tmp_path / "bank2")
    assert again.digest == bank.digest and load_bank(tmp_path / "bank2").digest == bank.digest

    short = prepare([src / "short.wav"], tmp_path / "short")  # 0.5 s of noise under a 3 s clip
    cfg = AugmentConfig(transforms={"AddBackgroundNoise": {"enabled": True, "p": 1.0, "min_snr_db": 0.0,
                                                           "max_snr_db": 0.0}}, noise=str(short.folder))
    x = (0.1 * np.sin(np.arange(48_000) * 0.05)).astype(np.float32)
    y = build_augment(cfg, seed=0)(x)
    tail = np.abs(y - x)[-8000:]  # the last 0.5 s still has noise: it was looped
    assert tail.mean() > 0.02 and np.allclose(y, build_augment(cfg, seed=0)(x))

    with pytest.raises(AugmentError, match="AddBackgroundNoise needs noise clips"):
        build_augment(dataclasses.replace(cfg, noise=""), seed=0)


def test_cli_trains_with_noise_from_the_dataset_and_from_a_zip(tiny_ast, tmp_path, capsys):
    data = tmp_path / "sounds"
    make_class_folders(data, n_classes=2, per_class=4, seconds=1.0, seed=4)
    plain = tmp_path / "plain"
    make_class_folders(plain, n_classes=2, per_class=4, seconds=1.0, seed=5)
    _noise_folder(data / "_background_noise_")
    common = ["--model", str(tiny_ast), "--epochs", "1", "--batch-size", "4", "--max-length", "64",
              "--threads", "1", "--mode", "frozen", "--transforms", NOISE_ON]

    assert main(["train", "--data", str(plain), "--output", str(tmp_path / "bad"), *common]) == 2
    assert "AddBackgroundNoise needs noise clips" in capsys.readouterr().err

    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--output", str(run), *common]) == 0
    bank = load_bank(run / "noise")
    assert bank is not None and len(bank.files) == 2
    saved = TrainConfig.load(run / "config.json")
    assert Path(saved.augment.noise) == run / "noise" and saved.augment.noise_digest == bank.digest
    history = (run / "history.jsonl").read_text()
    assert "Background noise for AddBackgroundNoise, AddShortNoises: 2 noise clip(s)" in history
    assert "Finished: accuracy" in capsys.readouterr().out

    zrun = tmp_path / "zrun"
    noise_zip = _zip(_noise_folder(tmp_path / "kitchen" / "noise", broken=False), tmp_path / "kitchen.zip")
    assert main(["train", "--data", str(plain), "--output", str(zrun), "--noise", str(noise_zip), *common]) == 0
    assert json.loads((zrun / "config.json").read_text())["augment"]["noise_digest"] == bank.digest

    # the saved config reproduces its noise; different clips under the same digest are refused
    rerun = noise_for_run(saved, [], tmp_path / "rerun", tmp_path / "ws")
    assert rerun.augment.noise_digest == bank.digest and load_bank(tmp_path / "rerun" / "noise")
    wrong = dataclasses.replace(saved, augment=dataclasses.replace(saved.augment, noise_digest="0" * 16))
    with pytest.raises(AugmentError, match="differ from the ones this config was trained with"):
        noise_for_run(wrong, [], tmp_path / "rerun2", tmp_path / "ws")
