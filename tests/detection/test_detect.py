"""One recording: streaming decode, windows, events with onsets/offsets within a hop, single/multi-label,
unknown events, and each bad input as one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from detect_helpers import OracleScorer, match, write_recording

from astapp.core.errors import AudioDecodeError
from astapp.data.audio import load_audio
from astapp.detection.detect import DetectSettings, DetectSettingsError, detect_recording
from astapp.detection.events import EventSettings, detect_events, smooth
from astapp.detection.stream import check_recording, read_all, stream_blocks

TRUTH = [("beep", 3.0, 6.0), ("hum", 10.0, 14.5), ("whistle", 20.0, 23.0), ("beep", 30.0, 33.5)]

ORACLE_FILL = 0.5  # the oracle scorer fires once a sound fills half a window


@pytest.mark.parametrize(("sr", "channels"), [(48_000, 2), (16_000, 1), (22_050, 1)])
def test_streaming_decode_equals_whole_file_decode(tmp_path, sr, channels):
    path = write_recording(tmp_path / "r.wav", 7.3, TRUTH[:1], sr=sr, channels=channels)
    info = check_recording(path)
    streamed = np.concatenate(list(stream_blocks(info, block_seconds=0.7)))
    whole = load_audio(path)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    sizes = [len(b) for b in stream_blocks(info, block_seconds=0.7)]
    assert max(sizes) <= 2 * 0.7 * 16_000 and len(sizes) >= 10  # bounded blocks, never the whole file


@pytest.mark.parametrize("multi_label", [True, False])
def test_events_onsets_and_offsets_within_one_hop(tmp_path, multi_label):
    path = write_recording(tmp_path / "long.wav", 40.0, TRUTH, sr=48_000, channels=2)
    scorer = OracleScorer(multi_label=multi_label, background=not multi_label)
    det = detect_recording(scorer, path, DetectSettings(fill=ORACLE_FILL, hop=0.25, block_seconds=3.0))
    assert det.scores.dtype == np.float32 and det.scores.shape == (len(det.times), len(scorer.labels))
    assert abs(det.duration - 40.0) < 1e-3 and det.hop == 0.25
    assert {e.label for e in det.events} == {"beep", "hum", "whistle"}  # background makes no events
    assert len(det.events) == len(TRUTH), det.events
    assert match(det.events, TRUTH, tol=0.25), det.events
    assert all(0.5 <= e.score <= 1.0 for e in det.events)


def test_multi_label_events_overlap_and_single_label_never_does(tmp_path):
    truth = [("beep", 2.0, 8.0), ("hum", 4.0, 6.0)]
    path = write_recording(tmp_path / "overlap.wav", 10.0, truth)
    multi = detect_recording(OracleScorer(multi_label=True), path, DetectSettings(fill=ORACLE_FILL, hop=0.25))
    assert match(multi.events, truth, tol=0.25), multi.events
    single = detect_recording(OracleScorer(multi_label=False, background=True), path,
                              DetectSettings(fill=ORACLE_FILL, hop=0.25, threshold=0.4))
    ev = sorted(single.events, key=lambda e: e.start)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(ev, ev[1:], strict=False)), ev


def test_hysteresis_min_length_and_merge_gap():
    times = np.arange(20) * 0.5 + 0.5
    p = np.zeros((20, 1), np.float32)
    p[2:8, 0] = [0.6, 0.45, 0.42, 0.6, 0.41, 0.7]  # dips stay above off = 0.5 * 0.75
    p[10, 0] = 0.9  # one window: a 0.5 s event
    p[13:15, 0] = 0.8
    p[16:18, 0] = 0.8  # 0.5 s gap after the previous
    kw = {"labels": ["x"], "duration": 10.25, "multi_label": True, "model_thresholds": {}}
    raw = EventSettings(smoothing="none")
    ev, _ = detect_events(times, p, s=raw, **kw)
    assert [(e.start, e.end) for e in ev] == [(1.25, 4.25), (5.25, 5.75), (6.75, 7.75), (8.25, 9.25)]
    assert ev[0].score == pytest.approx(0.7)
    no_hyst, _ = detect_events(times, p, s=EventSettings(smoothing="none", off_ratio=1.0), **kw)
    assert len(no_hyst) == 6
    merged, _ = detect_events(times, p, s=EventSettings(smoothing="none", merge_gap=0.5, min_length=0.75), **kw)
    assert [(e.start, e.end) for e in merged] == [(1.25, 4.25), (6.75, 9.25)]


def test_smoothing_removes_a_lone_spike_and_keeps_edges():
    p = np.zeros((9, 1), np.float32)
    p[4] = 1.0
    assert smooth(p, "median", 3).max() == 0
    assert smooth(p, "mean", 3)[3:6, 0].tolist() == pytest.approx([1 / 3] * 3)
    assert smooth(p, "none", 3) is not None and smooth(p, "none", 3)[4, 0] == 1.0


def test_model_thresholds_are_the_default_and_settings_override(tmp_path):
    path = write_recording(tmp_path / "r.wav", 12.0, [("beep", 3.0, 3.6)])  # at most 0.6 of a 1 s window
    scorer = OracleScorer()
    scorer.thresholds = {"beep": 0.9}  # the model's tuned threshold: not reached...
    assert not [e for e in detect_recording(scorer, path, DetectSettings(fill=ORACLE_FILL, hop=0.5)).events if e.label == "beep"]
    assert detect_recording(scorer, path, DetectSettings(fill=ORACLE_FILL, hop=0.5, threshold=0.5)).events
    assert detect_recording(scorer, path, DetectSettings(fill=ORACLE_FILL, hop=0.5, thresholds={"beep": 0.5})).events


def test_unknown_sounds_become_unknown_events(tmp_path):
    path = write_recording(tmp_path / "r.wav", 15.0, [("beep", 2.0, 5.0), ("whistle", 8.0, 12.0)])
    scorer = OracleScorer(multi_label=False, background=True, unknown_threshold=0.5)
    scorer.unknown_for = {"whistle"}
    det = detect_recording(scorer, path, DetectSettings(fill=ORACLE_FILL, hop=0.25))
    assert [e.label for e in det.events] == ["beep", "unknown"]
    assert det.unknown is not None and det.unknown.shape == (len(det.times),)
    assert match(det.events, [("unknown", 8.0, 12.0)], tol=0.25)


def test_short_recording_is_padded_and_said(tmp_path):
    path = write_recording(tmp_path / "short.wav", 0.6, [("beep", 0.0, 0.6)])
    det = detect_recording(OracleScorer(), path, DetectSettings(fill=ORACLE_FILL, threshold=0.3))
    assert len(det.times) == 1 and "padded" in det.notes[0] and "short.wav" in det.notes[0]
    assert det.events and det.events[0].end == pytest.approx(0.6)


def test_tail_is_scored_by_a_window_aligned_to_the_end(tmp_path):
    path = write_recording(tmp_path / "r.wav", 10.3, [("hum", 9.2, 10.3)])
    det = detect_recording(OracleScorer(), path, DetectSettings(fill=ORACLE_FILL, hop=1.0))
    assert det.times[-1] == pytest.approx(10.3 - 0.5, abs=1e-3)
    assert [e.label for e in det.events] == ["hum"] and det.events[0].end == pytest.approx(10.3, abs=1e-3)


def _truncated(tmp_path):
    good = write_recording(tmp_path / "full.flac", 5.0, [], subtype="PCM_16")
    data = good.read_bytes()
    bad = tmp_path / "cut.flac"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _written(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make", "words"), [
    (lambda p: _written(p / "empty.wav", b""), "empty file"),
    (lambda p: _written(p / "notes.wav", b"hello, this is text"), "text file"),
    (lambda p: p / "missing.wav", "not found"),
    (lambda p: write_recording(p / "bat.wav", 1.0, [], sr=192_000), "outside the 8-96 kHz"),
    (lambda p: write_recording(p / "low.wav", 1.0, [], sr=4_000), "outside the 8-96 kHz"),
])
def test_bad_recordings_are_one_sentence(tmp_path, make, words):
    with pytest.raises(AudioDecodeError) as err:
        detect_recording(OracleScorer(), make(tmp_path))
    assert words in str(err.value) and str(err.value).endswith(".")


def test_truncated_and_oversized_recordings(tmp_path, monkeypatch):
    bad = _truncated(tmp_path)
    try:
        det = detect_recording(OracleScorer(), bad)
        assert det.notes and "truncated" in " ".join(det.notes)  # what was there was analysed, and said
    except AudioDecodeError as e:
        assert "truncated or corrupt" in str(e) or "cannot be read" in str(e)
    big = write_recording(tmp_path / "big.wav", 3.0, [])
    monkeypatch.setenv("ASTAPP_DETECT_MAX_MB", "0")
    with pytest.raises(AudioDecodeError, match="ASTAPP_DETECT_MAX_MB"):
        detect_recording(OracleScorer(), big)


def test_truncated_wav_header_is_noted(tmp_path):
    path = write_recording(tmp_path / "cut.wav", 6.0, [("beep", 1.0, 2.0)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    det = detect_recording(OracleScorer(), path, DetectSettings(fill=ORACLE_FILL, threshold=0.4))
    assert det.duration == pytest.approx(3.0, abs=0.01)
    assert sf.info(str(path)).duration < 6.0 or any("truncated" in n for n in det.notes)


@pytest.mark.parametrize("bad", [{"hop": 0}, {"threshold": 1.5}, {"min_length": -1}, {"smoothing": "gauss"}])
def test_bad_settings_are_one_sentence(bad):
    with pytest.raises(DetectSettingsError):
        DetectSettings(**bad).validate()


def test_read_all_matches_stream(tmp_path):
    path = write_recording(tmp_path / "r.wav", 2.0, [], sr=44_100)
    assert read_all(path).shape == load_audio(path).shape


def test_multi_label_model_without_thresholds_is_said(tmp_path):
    path = write_recording(tmp_path / "r.wav", 3.0, [])
    assert any("no tuned per-class thresholds" in n for n in detect_recording(OracleScorer(), path).notes)
    assert not detect_recording(OracleScorer(), path, DetectSettings(fill=ORACLE_FILL, threshold=0.5)).notes


def test_event_bounds_move_inside_the_windows_that_fired_by_the_fill():
    """A run of windows that fired on a clear sound is about a window wider than the sound: with fill f the
    bounds move window x (0.5 - f) inwards; the recording's edges stay; fill 0.5 is the centres' own spans."""
    from astapp.detection.events import sound_bounds

    times = np.arange(0.5, 9.51, 0.25)  # 1 s windows at a 0.25 s hop over 10 s (last centre 9.5)
    lo, hi = sound_bounds(times, 10.0, 1.0, 0.5)
    assert lo[1] == pytest.approx(0.625) and hi[-2] == pytest.approx(9.375)
    lo, hi = sound_bounds(times, 10.0, 1.0, 0.1)
    assert lo[1] == pytest.approx(0.625 + 0.4) and hi[-2] == pytest.approx(9.375 - 0.4)
    assert lo[0] == 0.0 and hi[-1] == 10.0
    with pytest.raises(Exception, match="--fill"):
        DetectSettings(fill=0.9).validate()
