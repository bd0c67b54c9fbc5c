"""Recording through the app's API: classes, takes (silence dropped), bad names, use them, download them."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from app_helpers import TRACEBACK, call, client, launched
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from astapp.synth import make_signal, write_wav


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from astapp.jobs import JobManager

    manager = JobManager(root=tmp_path_factory.mktemp("record-app"))
    with launched(manager) as u:
        yield u
    manager.shutdown(timeout=30)


def _take(path, kinds: str, sr: int = 44_100):
    """A take: one second per letter, 'h' harmonic, 'c' chirp, 'n' noise, '.' silence."""
    rng = np.random.default_rng(1)
    names = {"h": "harmonic", "c": "chirp", "n": "noise"}
    parts = [np.zeros(sr, np.float32) if k == "." else 0.4 * make_signal(names[k], 1.0, sr, rng) for k in kinds]
    return handle_file(str(write_wav(path, np.concatenate(parts), sr)))


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
