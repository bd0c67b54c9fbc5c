"""Event-based scoring on worked examples (counted by hand), references in every format, and the sweep."""

from __future__ import annotations

import pytest
from detect_helpers import OracleScorer, write_recording

from astapp.detection.detect import DetectSettings
from astapp.detection.events import Event
from astapp.detection.formats import AnnotationError, write_events
from astapp.detection.reference import ReferenceMismatchError, score_output
from astapp.detection.run import detect_files
from astapp.detection.scoring import max_matching, score_events

REFS = [Event("A", 1.0, 3.0), Event("A", 5.0, 6.0), Event("B", 2.0, 4.0)]
ESTS = [Event("A", 1.3, 3.2),  # onset off by 0.3 (<= 0.5), offset by 0.2 (<= max(0.5, 0.2 * 2)): a hit
        Event("A", 5.6, 6.0),  # onset off by 0.6: a false alarm, and the reference at 5 s is missed
        Event("B", 2.4, 5.5),  # onset fine, offset off by 1.5 > max(0.5, 0.4): no match unless offsets are ignored
        Event("A", 8.0, 9.0)]  # nothing there: a false alarm


def test_worked_example_counts_by_hand():
    s = score_events({"r": REFS}, {"r": ESTS}, hours=0.5, collar=0.5)
    assert (s.overall["tp"], s.overall["fp"], s.overall["fn"]) == (1, 3, 2)
    assert s.overall["precision"] == pytest.approx(0.25) and s.overall["recall"] == pytest.approx(1 / 3)
    assert s.overall["f1"] == pytest.approx(2 / 7, abs=1e-6)
    assert s.per_class["A"]["f1"] == pytest.approx(0.4) and s.per_class["B"]["f1"] == 0.0
    assert s.f1_macro == pytest.approx(0.2)
    assert s.overall["fa_per_hour"] == pytest.approx(6.0) and s.per_class["A"]["fa_per_hour"] == pytest.approx(4.0)
    onset_only = score_events({"r": REFS}, {"r": ESTS}, hours=0.5, collar=0.5, offsets=False)
    assert onset_only.per_class["B"]["tp"] == 1
    wider = score_events({"r": REFS}, {"r": ESTS}, hours=0.5, collar=1.0)
    assert wider.per_class["A"]["tp"] == 2  # the 5.6 s onset is inside a 1 s collar


def test_matching_is_maximal_where_greedy_is_not():
    refs = [Event("A", 0.0, 1.0), Event("A", 0.6, 1.6)]
    ests = [Event("A", 0.4, 1.4), Event("A", 0.0, 0.9)]  # the first fits both references, the second only one
    assert len(max_matching(refs, ests)) == 2
    assert len(max_matching(refs[::-1], ests[::-1])) == 2


def test_per_file_events_never_match_across_recordings():
    s = score_events({"a": [Event("A", 1, 2)], "b": []}, {"b": [Event("A", 1, 2)]}, hours=1.0)
    assert (s.overall["tp"], s.overall["fp"], s.overall["fn"]) == (0, 1, 1) and s.unmatched_files == ["a"]


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    """One detection output, only read by the tests (scoring writes nothing): made once per module."""
    tmp_path = tmp_path_factory.mktemp("detected")
    truth = {"n1": [("beep", 2.0, 5.0), ("hum", 8.0, 11.0)], "n2": [("whistle", 1.0, 4.0)]}
    rec = tmp_path / "recs"
    write_recording(rec / "n1.wav", 14.0, [*truth["n1"], ("beep", 12.0, 12.35)])  # short: unannotated distractor
    write_recording(rec / "n2.wav", 6.0, truth["n2"])
    out = tmp_path / "out"
    detect_files(OracleScorer(), [rec], out, DetectSettings(hop=0.25, threshold=0.3, smoothing="none"))
    return out, truth


@pytest.mark.parametrize("fmt", ["audacity", "raven", "csv"])
def test_detection_output_scored_against_references(tmp_path, detected, fmt):
    out, truth = detected
    ref = tmp_path / "ref"
    if fmt == "csv":
        write_events([Event(lab, s, e, 1.0, f"{n}.wav") for n, evs in truth.items() for lab, s, e in evs],
                     ref / "all.csv", "csv")
    else:
        for n, evs in truth.items():
            name = f"{n}.txt" if fmt == "audacity" else f"{n}.Table.1.selections.txt"
            write_events([Event(lab, s, e) for lab, s, e in evs], ref / name, fmt)
    res = score_output(out, ref, collar=0.5)["scores"]
    assert res["overall"]["tp"] == 3 and res["overall"]["fn"] == 0
    assert res["overall"]["fp"] == 1 and res["per_class"]["beep"]["fa_per_hour"] == pytest.approx(3600 / 20)


def test_sweep_finds_the_lowest_threshold_under_the_target(tmp_path, detected):
    out, truth = detected
    ref = tmp_path / "ref.csv"
    write_events([Event(lab, s, e, 1.0, f"{n}.wav") for n, evs in truth.items() for lab, s, e in evs], ref, "csv")
    res = score_output(out, ref, collar=0.5, target_fa_per_hour=0.0)
    beep = res["sweep"]["per_class"]["beep"]
    assert 0.3 < beep["threshold"] <= 0.5 and beep["fa_per_hour"] == 0 and beep["recall"] == 1.0
    assert res["sweep"]["scores"]["overall"]["f1"] == 1.0


def test_bad_references_are_one_sentence(tmp_path, detected):
    out, _ = detected
    bad = tmp_path / "n1.txt"
    bad.write_text("1.0\tx\tbeep\n")
    with pytest.raises(AnnotationError, match="n1.txt line 1"):
        score_output(out, bad)
    other = tmp_path / "elsewhere.txt"
    other.write_text("1.0\t2.0\tbeep\n")
    with pytest.raises(ReferenceMismatchError, match="names a recording"):
        score_output(out, other)
    with pytest.raises(ReferenceMismatchError, match="not a detection output"):
        score_output(tmp_path / "nothing", other)
