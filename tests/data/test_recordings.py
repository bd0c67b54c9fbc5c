"""Recorded classes: cutting takes, the silence threshold, name checks, limits, and the zip through upload."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from astapp.data.recordings import (
    MAX_TAKE_SECONDS,
    RecordingError,
    RecordingStore,
    cut_take,
    loudest_db,
    to_mono16k,
)
from astapp.data.synth import make_signal, write_wav

SR = 16_000


def _take(pattern: str, sr: int = 48_000) -> np.ndarray:
    """One second per character: 'x' a sound, '.' silence (int16 stereo, as a browser sends it)."""
    rng = np.random.default_rng(0)
    parts = [0.4 * make_signal("harmonic", 1.0, sr, rng) if ch == "x" else np.zeros(sr, np.float32) for ch in pattern]
    mono = np.concatenate(parts)
    return (np.stack([mono, mono], axis=1) * 32767).astype(np.int16)


def test_cut_take_drops_silence_and_keeps_a_half_tail():
    wav = to_mono16k(_take("xx.x."), 48_000)
    assert wav.shape == (5 * SR,) and wav.dtype == np.float32
    clips, dropped = cut_take(wav, 1.0, -45.0)
    assert len(clips) == 3 and dropped == 2 and all(c.size == SR for c in clips)
    assert loudest_db(np.zeros(SR, np.float32)) == -120.0 and loudest_db(clips[0]) > -30
    loud = to_mono16k(_take("xxx"), 48_000)
    clips, dropped = cut_take(loud[: int(2.6 * SR)], 1.0, -45.0)  # a 0.6 s tail is kept, padded
    assert len(clips) == 3 and clips[-1].size == SR and dropped == 0
    clips, _ = cut_take(loud[: int(2.3 * SR)], 1.0, -45.0)  # a 0.3 s tail is not
    assert len(clips) == 2
    whole, _ = cut_take(wav, 0, -45.0)
    assert len(whole) == 1 and whole[0].size == 5 * SR
    quiet = wav * 10 ** (-40 / 20)  # 40 dB quieter (about -61 dBFS): silence at -45, sound at -80
    assert len(cut_take(quiet, 1.0, -45.0)[0]) == 0 and len(cut_take(quiet, 1.0, -80.0)[0]) == 3


def test_store_names_limits_takes_and_zip(tmp_path):
    store = RecordingStore(tmp_path / "rec")
    assert store.add_class("  clap ") == "clap"
    for bad, why in [("", "Type a name"), ("Clap", "differs only in upper/lower case"), ("clap", "already exists"),
                     ("a/b", "cannot be a class name"), ("..", "cannot be a class name"),
                     ("CON", "reserved"), (".hidden", "cannot be a class name"), ("x" * 41, "at most 40")]:
        with pytest.raises(RecordingError, match=why):
            store.add_class(bad)
    store.add_class("background")

    result = store.add_take("clap", _take("x.xx"), 48_000)
    assert len(result.kept) == 3 and result.dropped == 1 and "Added 3 clip(s) to 'clap'" in result.message("clap", -45)
    silent = store.add_take("background", np.zeros((SR * 2, 1), np.int16), SR)
    assert not silent.kept and "silence" in silent.message("background", -45)
    with pytest.raises(RecordingError, match="limited to 5 minutes"):
        store.add_take("clap", np.zeros(int(SR * (MAX_TAKE_SECONDS + 1)), np.int16), SR)
    with pytest.raises(RecordingError, match="no class 'dog'"):
        store.add_take("dog", _take("x"), 48_000)

    hum = write_wav(tmp_path / "hum.wav", 0.1 * make_signal("noise", 1.5))
    (tmp_path / "notes.txt").write_text("x")
    stored, problems = store.add_files("background", [hum, tmp_path / "notes.txt"])
    assert len(stored) == 1 and problems == ["notes.txt: not an audio file"]
    assert [(c.name, len(c.clips)) for c in store.classes()] == [("background", 1), ("clap", 3)]
    assert store.classes()[1].seconds == pytest.approx(3.0, abs=1e-3)

    store.delete_clip("clap", "clap_0002.wav")
    assert [p.name for p in store.classes()[1].clips] == ["clap_0001.wav", "clap_0003.wav"]
    assert store.add_take("clap", _take("x"), 48_000).kept[0].name == "clap_0004.wav"  # names are never reused
    assert store.rename_class("clap", "Clap") == "Clap"  # a case-only rename of itself is fine
    assert store.names() == ["Clap", "background"] and store.classes()[0].clips[0].name == "Clap_0001.wav"
    with pytest.raises(RecordingError, match="already exists"):
        store.rename_class("Clap", "background")

    zpath = store.to_zip(tmp_path / "out" / "recordings.zip")
    with zipfile.ZipFile(zpath) as zf:
        names = sorted(zf.namelist())
    assert names == ["recordings/Clap/Clap_0001.wav", "recordings/Clap/Clap_0003.wav", "recordings/Clap/Clap_0004.wav",
                     "recordings/background/background_0001.wav"]
    store.delete_class("background")
    assert store.names() == ["Clap"]


def test_use_recordings_goes_through_the_upload_report(tmp_path):
    from astapp.jobs.manager import JobManager
    from astapp.service import Service

    manager = JobManager(root=tmp_path / "root")
    try:
        svc = Service(manager)
        sess = svc.open("a" * 32)
        svc.recording.add_class(sess, "clap")
        svc.recording.add_class(sess, "whistle")
        assert "Added 4 clip(s)" in svc.recording.take(sess, "clap", (48_000, _take("xx.xx")), 1.0, -45.0)
        msg = svc.recording.take(sess, "whistle", (48_000, _take("x" * 60)), 1.0, -45.0)  # a 60 s take
        assert "Added 60 clip(s)" in msg
        view = svc.recording.use(sess)
        assert view.name == "Your recordings" and view.trainable and view.labels == ["clap", "whistle"]
        assert any("none of these" in t for t in view.report["suggestions"])  # no background class yet
        assert svc.datasets.current(svc.open("a" * 32)).name == "Your recordings"  # a reload finds it
        assert svc.recording.table(svc.open("a" * 32)) == [["clap", 4, 4.0], ["whistle", 60, 60.0]]
    finally:
        manager.shutdown(timeout=10)
