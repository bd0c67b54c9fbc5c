"""Dataset versions and the clips waiting for them: spans cut from long recordings at any rate, a version =
the parent's clips untouched + the additions, old versions usable, folds and noise carried along."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from astapp.core.errors import AstappError, AudioDecodeError, DatasetError
from astapp.data.additions import MAX_CLIP_SECONDS, MIN_CLIP_SECONDS, PendingAdditions, clip_span, read_span
from astapp.data.ingest import scan
from astapp.data.synth import make_class_folders, make_signal, write_wav
from astapp.data.versions import VersionStore


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _recording(path: Path, seconds: float = 12.0, sr: int = 48_000) -> Path:
    """A stereo 48 kHz recording: clicks at 2-3 s, a tone at 6-7 s, quiet noise elsewhere."""
    rng = np.random.default_rng(3)
    wav = rng.standard_normal(int(seconds * sr)).astype(np.float32) * 0.01
    wav[2 * sr:3 * sr] += make_signal("clicks", 1.0, sr, rng)
    wav[6 * sr:7 * sr] += make_signal("tone", 1.0, sr, rng)
    sf.write(str(path), np.stack([wav, wav * 0.5], axis=1), sr)
    return path


def test_clip_span_widens_short_caps_long_and_refuses_nonsense():
    assert clip_span(1.0, 1.1) == (0.8, 1.3)
    assert clip_span(0.0, 0.1) == (0.0, MIN_CLIP_SECONDS)
    assert clip_span(9.9, 10.0, duration=10.0) == (10.0 - MIN_CLIP_SECONDS, 10.0)  # kept inside the recording
    assert clip_span(0.0, 500.0) == (0.0, MAX_CLIP_SECONDS)
    for a, b in [(2.0, 1.0), (1.0, 1.0), (-1.0, 2.0), (float("nan"), 1.0)]:
        with pytest.raises(DatasetError, match="empty or reversed"):
            clip_span(a, b)
    with pytest.raises(DatasetError, match="after the recording ends"):
        clip_span(11.0, 12.0, duration=10.0)


def test_read_span_reads_only_the_span_at_16k_mono(tmp_path):
    rec = _recording(tmp_path / "night.wav")
    part = read_span(rec, 2.0, 3.0)
    assert part.dtype == np.float32 and abs(len(part) - 16_000) <= 2
    whole = read_span(rec, 0.0, 12.0)
    assert np.allclose(part[1000:15000], whole[33000:47000], atol=2e-2)  # same audio as the whole decode
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty.wav"):
        read_span(tmp_path / "empty.wav", 0.0, 1.0)


def test_pending_clips_survive_and_refuse_what_they_cannot_keep(tmp_path):
    rec = _recording(tmp_path / "night.wav")
    pending = PendingAdditions(tmp_path / "ws")
    a = pending.add_span(rec, 2.0, 3.0, 12.0, "false_alarm", "", "night.wav", origin="review:x:0")
    b = pending.add(np.ones(16000, np.float32) * 0.1, "confirmed", "tone", "listen live", 0.0, 1.0)
    again = PendingAdditions(tmp_path / "ws")  # a restart reads the same list
    assert [x.id for x in again.list()] == [a.id, b.id]
    assert sf.info(str(again.path(a))).samplerate == 16000 and sf.info(str(again.path(a))).duration == pytest.approx(1.0)
    assert a.target("background") == "background" and b.target("background") == "tone"
    for bad in [lambda: pending.add(np.zeros(0, np.float32), "confirmed", "x", "s", 0, 1),
                lambda: pending.add(np.ones(1600, np.float32), "confirmed", "", "s", 0, 1),
                lambda: pending.add(np.ones(1600, np.float32), "guess", "x", "s", 0, 1)]:
        with pytest.raises(AstappError):
            bad()
    again.remove_origin("review:x:0")
    assert [x.id for x in again.list()] == [b.id] and not again.path(a).exists()


def test_versions_add_clips_and_never_touch_the_parent(tmp_path):
    data = tmp_path / "upload" / "sounds"
    make_class_folders(data, n_classes=2, per_class=3, seconds=0.5, seed=2)
    write_wav(data / "_background_noise_" / "hum.wav", make_signal("noise", 1.0))
    before = _snapshot(data)
    rec = _recording(tmp_path / "night.wav")
    ws = tmp_path / "ws"
    pending, store = PendingAdditions(ws), VersionStore(ws)
    pending.add_span(rec, 2.0, 3.0, 12.0, "false_alarm", "", "night.wav")
    pending.add_span(rec, 6.0, 7.0, 12.0, "confirmed", "tone", "night.wav")
    pending.add_span(rec, 6.2, 6.8, 12.0, "missed", "beep", "night.wav")

    v1 = store.register("Your dataset: sounds.zip", data, 6)
    assert store.register("again", data, 6).name == "v1"  # one folder is registered once
    v2 = store.create(v1, scan(data), pending.list(), pending, "background")
    assert (v1.name, v2.name, v2.parent) == ("v1", "v2", "v1")
    assert _snapshot(data) == before  # the parent folder is only read
    listing = scan(v2.root)
    labels = sorted(i.label for i in listing.items)
    assert labels == sorted(["tone"] * 4 + ["chirp"] * 3 + ["background", "beep"])
    assert listing.noise and listing.noise[0].name == "hum.wav"
    bg = next(i for i in listing.items if i.label == "background")
    assert "night-2.00s-3.00s" in bg.path.name and "/added/v2/background/" in bg.path.as_posix()
    assert v2.changes == {"false_alarm": {"background": 1}, "confirmed": {"tone": 1}, "missed": {"beep": 1}}
    assert "v2 = v1 + 1 false alarms → background 1" in v2.summary and "night.wav" in v2.summary

    snap2 = _snapshot(Path(v2.root))
    pending.add(np.ones(8000, np.float32) * 0.1, "false_alarm", "", "listen live", 3.0, 3.5)
    v3 = store.create(v2, scan(v2.root), pending.list()[-1:], pending, "nothing")
    assert _snapshot(Path(v2.root)) == snap2  # old versions stay exactly as they were, and usable
    assert sorted(i.label for i in scan(v3.root).items) == sorted(labels + ["nothing"])
    assert [v.name for v in VersionStore(ws).list()] == ["v1", "v2", "v3"]
    assert store.of_root(v2.root).name == "v2" and store.get("v1").root == str(data.resolve())
    with pytest.raises(AstappError, match="no dataset version"):
        store.get("v9")
    with pytest.raises(DatasetError, match="no clips to add"):
        store.create(v3, scan(v3.root), [], pending, "background")


def test_a_version_of_a_dataset_with_folds_trains_its_additions(tmp_path):
    data = tmp_path / "folds"
    make_class_folders(data, n_classes=2, per_class=4, seconds=0.5, seed=4)
    rows = ["file,label,fold"] + [f"{p.relative_to(data).as_posix()},{p.parent.name},{'val' if i % 4 == 0 else 'a'}"
                                  for i, p in enumerate(sorted(data.rglob("*.wav")))]
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    ws = tmp_path / "ws"
    pending, store = PendingAdditions(ws), VersionStore(ws)
    pending.add(np.ones(8000, np.float32) * 0.1, "false_alarm", "", "listen live", 0.0, 0.5)
    v2 = store.create(store.register("folds", data, 8), scan(data), pending.list(), pending, "background")
    items = scan(v2.root).items
    assert sorted({i.fold for i in items}) == ["a", "val"]
    assert next(i for i in items if i.label == "background").fold == "a"  # never only in validation


def test_added_clips_always_train_and_the_parent_split_stays_the_same():
    """Clips marked "train" (a version's additions) never validate; the other clips split exactly as
    they did without them, so runs on two versions validate on the same clips."""
    from astapp.data.folds import split_files

    labels = ["a"] * 10 + ["b"] * 10
    paths = [f"c/{i}.wav" for i in range(20)]
    train0, val0, how0 = split_files(labels, [None] * 20, 0.2, seed=3, paths=paths)
    added = labels + ["background"] * 5 + ["a"] * 2
    train, val, how = split_files(added, [None] * 20 + ["train"] * 7, 0.2, seed=3,
                                  paths=paths + [f"added/{i}.wav" for i in range(7)])
    assert val == val0 and sorted(train) == sorted(train0 + list(range(20, 27)))
    assert how == f"{how0}, 7 marked train"
    assert split_files(["a", "b"] * 4, ["train"] * 8, 0.25, seed=0)[1]  # only "train" clips: split as before


def test_a_version_without_folds_marks_its_additions_train(tmp_path):
    data = tmp_path / "plain"
    make_class_folders(data, n_classes=2, per_class=4, seconds=0.5, seed=6)
    ws = tmp_path / "ws"
    pending, store = PendingAdditions(ws), VersionStore(ws)
    pending.add(np.ones(8000, np.float32) * 0.1, "false_alarm", "", "listen live", 0.0, 0.5)
    v2 = store.create(store.register("plain", data, 8), scan(data), pending.list(), pending, "background")
    folds = {i.label: i.fold for i in scan(v2.root).items}
    assert folds == {"tone": None, "chirp": None, "background": "train"}
    pending.add(np.ones(8000, np.float32) * 0.2, "false_alarm", "", "listen live", 1.0, 1.5)
    v3 = store.create(v2, scan(v2.root), pending.list()[-1:], pending, "background")
    assert sorted(str(i.fold) for i in scan(v3.root).items if i.label == "background") == ["train", "train"]
