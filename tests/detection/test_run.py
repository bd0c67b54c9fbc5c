"""Many files: per-file records, resume skips finished files, an interrupted file restarts cleanly, a bad
file is listed while the others finish, shards cover every file once, merged outputs do not depend on it."""

from __future__ import annotations

import json
import threading
import zipfile

import pytest
from detect_helpers import OracleScorer, write_recording

from astapp.detection.detect import DetectSettings
from astapp.detection.formats import parse_events
from astapp.detection.run import detect_files, parse_shard, shard_items
from astapp.detection.scores import Scorer

SETTINGS = DetectSettings(hop=0.5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Read-only input, shared by the module's tests (each writes its outputs under its own tmp_path)."""
    root = tmp_path_factory.mktemp("detect-run") / "recs"
    write_recording(root / "a.wav", 8.0, [("beep", 1.0, 3.0)])
    write_recording(root / "b.wav", 6.0, [("hum", 2.0, 4.0)], sr=48_000, channels=2)
    write_recording(root / "sub" / "c.flac", 7.0, [("whistle", 4.0, 6.0), ("beep", 0.0, 2.0)])
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00")
    return root


def test_bad_file_listed_others_finish_and_outputs(tmp_path, folder):
    seen = []
    s = detect_files(OracleScorer(), [folder], tmp_path / "out", SETTINGS, events=seen.append, fmt="raven")
    assert s.files == 4 and len(s.done) == 4 and not s.skipped
    assert [f for f, _ in s.failed] == ["broken.wav"] and s.failed[0][1].endswith(".")
    assert s.counts == {"beep": 2, "hum": 1, "whistle": 1} and s.events == 4
    assert s.hours == pytest.approx(21 / 3600, rel=1e-3)
    assert s.per_hour["beep"] == pytest.approx(2 / s.hours, rel=1e-2)
    merged = parse_events(tmp_path / "out" / "events.csv")
    assert sorted({e.file for e in merged}) == ["a.wav", "b.wav", "sub/c.flac"]
    raven = sorted(p.name for p in (tmp_path / "out" / "raven").iterdir())
    assert raven == ["a.Table.1.selections.txt", "b.Table.1.selections.txt", "sub__c.Table.1.selections.txt"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["events"] == 4
    last = seen[-1]
    assert last["files_done"] == 4 and last["hours_done"] == pytest.approx(s.hours, abs=1e-5) and last["speed"] > 0


def test_rerun_skips_finished_files_and_reproduces_outputs(tmp_path, folder):
    out = tmp_path / "out"
    scorer = OracleScorer()
    detect_files(scorer, [folder], out, SETTINGS)
    first = (out / "events.csv").read_text()
    calls = scorer.calls
    s = detect_files(scorer, [folder], out, SETTINGS)
    assert scorer.calls == calls  # nothing scored again
    assert sorted(s.skipped) == ["a.wav", "b.wav", "sub/c.flac"] and s.done == ["broken.wav"]  # failed: retried
    assert (out / "events.csv").read_text() == first
    changed = detect_files(scorer, [folder], out, DetectSettings(hop=0.25))  # other settings: all again
    assert not changed.skipped


def test_interrupted_job_resumes_to_the_same_outputs(tmp_path, folder):
    full = tmp_path / "full"
    detect_files(OracleScorer(), [folder], full, SETTINGS)
    stop = threading.Event()

    class StopAfterFirstFile(OracleScorer):
        def outputs(self, windows):
            if self.calls >= 3:  # midway through the second file
                stop.set()
            return super().outputs(windows)

    out = tmp_path / "out"
    s = detect_files(StopAfterFirstFile(batch_size=1), [folder], out, SETTINGS, stop=stop)
    assert s.stopped and len(list((out / "records").glob("*.json"))) == len(s.done) < 4
    resumed = detect_files(OracleScorer(), [folder], out, SETTINGS)
    assert sorted(resumed.skipped) == sorted(n for n in s.done if n != "broken.wav")
    assert (out / "events.csv").read_text() == (full / "events.csv").read_text()


def test_shards_cover_every_file_once_and_merge(tmp_path, folder):
    out = tmp_path / "out"
    names = []
    for i in range(3):
        s = detect_files(OracleScorer(), [folder], out, SETTINGS, shard=(i, 3))
        names += s.done
        assert (out / f"events-shard-{i}-of-3.csv").is_file()
    assert sorted(names) == ["a.wav", "b.wav", "broken.wav", "sub/c.flac"]
    final = detect_files(OracleScorer(), [folder], out, SETTINGS)
    assert len(final.skipped) == 3 and final.events == 4
    items = [(f"f{i}", None) for i in range(10)]
    parts = [shard_items(items, (i, 4)) for i in range(4)]
    assert sorted(x for p in parts for x in p) == sorted(items)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(Exception, match="--shard takes I/N"):
            parse_shard(bad)


def test_zip_of_recordings(tmp_path, folder):
    z = tmp_path / "recs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(folder / "a.wav", "a.wav")
    s = detect_files(OracleScorer(), [z], tmp_path / "out", SETTINGS, fmt="jsonl")
    assert s.done == ["recs.zip/a.wav"] and s.counts == {"beep": 1}
    assert (tmp_path / "out" / "events.jsonl").is_file()
    again = detect_files(OracleScorer(), [z], tmp_path / "out", SETTINGS, fmt="jsonl")
    assert again.skipped == ["recs.zip/a.wav"]  # identity by content, not by the extraction's path


def test_oracle_is_a_scorer():
    scorer: Scorer = OracleScorer()
    assert scorer.window_samples == 16_000


def test_same_names_in_two_folders_and_one_file_given_twice(tmp_path):
    """Records are keyed by name: two different `rec.wav` each keep their own record and events (the later one
    named by its folder), and one file given by two paths is analysed and listed once."""
    day_a = write_recording(tmp_path / "dayA" / "rec.wav", 6.0, [("beep", 1.0, 3.0)])
    write_recording(tmp_path / "dayB" / "rec.wav", 6.0, [("hum", 2.0, 4.0)])
    out, scorer = tmp_path / "out", OracleScorer()
    s = detect_files(
        scorer,
        [tmp_path / "dayA", tmp_path / "dayB", day_a, tmp_path / "dayA" / ".." / "dayA" / "rec.wav"],
        out,
        SETTINGS,
    )
    assert sorted(s.done) == ["dayB/rec.wav", "rec.wav"] and s.counts == {"beep": 1, "hum": 1}
    assert sum("same file as rec.wav" in n for n in s.notes) == 2
    by_file = {e.file: e.label for e in parse_events(out / "events.csv")}
    assert by_file == {"rec.wav": "beep", "dayB/rec.wav": "hum"}
    calls = scorer.calls
    again = detect_files(scorer, [tmp_path / "dayA", tmp_path / "dayB"], out, SETTINGS)
    assert scorer.calls == calls  # neither recomputed
    assert sorted(again.skipped) == ["dayB/rec.wav", "rec.wav"]
