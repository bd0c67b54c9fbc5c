"""The app over HTTP for issue 13: the report shows the noise folder, the Augment tab previews real noise
(the dataset's, then uploaded clips), bad noise uploads get a sentence; recording classes, takes (silence
dropped), bad names, using them as the dataset and downloading them. One launched app for both."""

from __future__ import annotations

import zipfile
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from app_helpers import TRACEBACK, call, client, launched
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from astapp.data.synth import make_class_folders, make_signal, write_wav
from astapp.service import transform_specs


def _noise_on(name: str) -> dict[str, Any]:
    """The preview's keyword arguments that enable `name` with p=1 and a loud SNR (0 dB)."""
    i, kw = 8, {}
    for spec in transform_specs():
        if spec["name"] == name:
            kw[f"param_{i}"] = True
            for j, k in enumerate(spec["params"], start=1):
                if k in ("p",):
                    kw[f"param_{i + j}"] = 1.0
                elif k.endswith("snr_db"):
                    kw[f"param_{i + j}"] = 0.0
        i += 1 + len(spec["params"])
    return kw


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from astapp.jobs.manager import JobManager

    manager = JobManager(root=tmp_path_factory.mktemp("issue13-app"))
    with launched(manager) as u:
        yield u
    manager.shutdown(timeout=30)


@pytest.mark.slow
def test_noise_folder_preview_and_uploaded_noise(url, tmp_path):
    root = tmp_path / "sounds"
    make_class_folders(root, n_classes=2, per_class=3, seconds=1.0, seed=6)
    write_wav(root / "_background_noise_" / "fan.wav", 0.3 * make_signal("noise", 2.0))
    zpath = tmp_path / "with-noise.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(root.rglob("*.wav")):
            zf.write(f, f.relative_to(tmp_path).as_posix())
    c = client(url)
    summary, table, *_ = call(c, handle_file(str(zpath)), api_name="/upload_dataset")
    assert "Background noise" in summary and "_background_noise_/" in summary and "1 clip" in summary
    assert sorted(row[0] for row in table["data"]) == ["chirp", "tone"]

    kw = _noise_on("AddBackgroundNoise")
    _, orig, aug, text = call(c, clip="tone/tone_0000.wav", preset="none", seed=1, **kw,
                              api_name="/preview_augment")
    a, b = sf.read(orig)[0], sf.read(aug)[0]
    assert "Add background noise" in text and np.abs(a - b).mean() > 0.01

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    with pytest.raises(AppError, match="could be used as noise"):
        call(c, [handle_file(str(bad))], api_name="/add_noise")
    hum = write_wav(tmp_path / "hum.wav", 0.2 * make_signal("harmonic", 0.5))
    info = call(c, [handle_file(str(hum))], api_name="/add_noise")
    assert "Your noise clips: 1 clip(s), 0.5 s" in info
    _, _, aug2, text = call(c, clip="tone/tone_0000.wav", preset="none", seed=1, **kw,
                            api_name="/preview_augment")
    assert "Add background noise" in text and np.abs(sf.read(aug2)[0] - b).mean() > 1e-3  # other noise now
    assert "_background_noise_/ folder" in call(c, api_name="/forget_noise")


def _take(path, kinds: str, sr: int = 44_100):
    """A take: one second per letter, 'h' harmonic, 'c' chirp, 'n' noise, '.' silence."""
    rng = np.random.default_rng(1)
    names = {"h": "harmonic", "c": "chirp", "n": "noise"}
    parts = [np.zeros(sr, np.float32) if k == "." else 0.4 * make_signal(names[k], 1.0, sr, rng) for k in kinds]
    return handle_file(str(write_wav(path, np.concatenate(parts), sr)))


@pytest.mark.slow
def test_record_classes_use_them_and_download(url, tmp_path):
    c = client(url)
    for name in ("clap", "whistle", "background"):
        assert name in call(c, name, api_name="/record_add_class")[0]
    with pytest.raises(AppError, match="differs only in upper/lower case") as err:
        call(c, "Clap", api_name="/record_add_class")
    assert not TRACEBACK.search(str(err.value))

    status, table = call(c, "clap", _take(tmp_path / "a.wav", "hh.h"), "one long take, cut into clips", 1.0, -45,
                         api_name="/record_take")
    assert "Added 3 clip(s) to 'clap'" in status and "1 silent stretch(es) dropped" in status
    status, _ = call(c, "whistle", _take(tmp_path / "b.wav", "cc.cc"), "one long take, cut into clips", 0.5, -45,
                     api_name="/record_take")
    assert "Added 8 clip(s) to 'whistle'" in status
    status, _ = call(c, "background", _take(tmp_path / "s.wav", "..."), "each recording is one clip", 1.0, -45,
                     api_name="/record_take")
    assert "Nothing added to 'background'" in status and "silence" in status
    status, table = call(c, "background", _take(tmp_path / "n.wav", "n"), "each recording is one clip", 1.0, -45,
                         api_name="/record_take")
    assert "Added 1 clip(s)" in status
    rows = {r[0]: r[1:] for r in table["data"]}
    assert rows == {"background": [1, 1.0], "clap": [3, 3.0], "whistle": [8, 4.0]}

    summary, classes, *_ = call(c, api_name="/use_recordings")
    assert "Your recordings" in summary and "Ready to train" not in summary  # background has 1 clip: blocked
    status, _ = call(c, "background", _take(tmp_path / "n2.wav", "nn"), "one long take, cut into clips", 1.0, -45,
                     api_name="/record_take")
    summary, classes, *_ = call(c, api_name="/use_recordings")
    assert "Ready to train" in summary and sorted(r[0] for r in classes["data"]) == ["background", "clap", "whistle"]

    zpath = call(c, api_name="/download_recordings")
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
    assert len(names) == 14 and "recordings/clap/clap_0003.wav" in names

    c2 = client(url)  # a reload of the same page session keeps nothing server-side but its token: new client
    assert call(c2, "Clap", api_name="/record_add_class")[0]  # another session has its own recordings
