"""Every events format written and parsed back; annotation files that do not parse name their line."""

from __future__ import annotations

import pytest

from astapp.detection.events import Event
from astapp.detection.formats import (
    RAVEN_COLUMNS,
    AnnotationError,
    parse_events,
    recording_stem,
    write_events,
)

EVENTS = [Event("dog bark", 1.25, 2.5, 0.91, "night/a.wav"), Event("chainsaw", 3.0, 10.125, 0.6, "night/a.wav"),
          Event("鳥", 11.0, 11.5, 0.55, "night/a.wav")]


@pytest.mark.parametrize(("fmt", "name"), [("csv", "e.csv"), ("jsonl", "e.jsonl"), ("audacity", "a.txt"),
                                           ("raven", "a.Table.1.selections.txt")])
def test_each_format_round_trips(tmp_path, fmt, name):
    path = write_events(EVENTS, tmp_path / name, fmt)
    back = parse_events(path, default_file="night/a.wav")
    assert [(e.label, e.start, e.end, e.file) for e in back] == [(e.label, e.start, e.end, e.file) for e in EVENTS]
    if fmt in ("csv", "jsonl"):
        assert [round(e.score, 4) for e in back] == [round(e.score, 4) for e in EVENTS]


def test_exact_headers(tmp_path):
    csv_text = write_events(EVENTS, tmp_path / "e.csv", "csv").read_text()
    assert csv_text.splitlines()[0] == "file,label,start,end,score"
    assert csv_text.splitlines()[1] == "night/a.wav,dog bark,1.25,2.5,0.9100"
    raven = write_events(EVENTS, tmp_path / "r.Table.1.selections.txt", "raven").read_text().splitlines()
    assert raven[0].split("\t") == list(RAVEN_COLUMNS) and raven[1].split("\t")[0] == "1"
    aud = write_events(EVENTS, tmp_path / "a.txt", "audacity").read_text().splitlines()
    assert aud[0] == "1.250000\t2.500000\tdog bark"
    assert recording_stem(tmp_path / "night1.Table.1.selections.txt") == "night1"


def test_real_audacity_and_raven_files_parse(tmp_path):
    aud = tmp_path / "rec.txt"  # a spectral label: the frequency line follows
    aud.write_text("0.5\t1.5\tbark\n\\\t200.0\t4000.0\n2\t3\n", encoding="utf-8")
    assert [(e.label, e.start, e.end, e.file) for e in parse_events(aud)] == [("bark", 0.5, 1.5, "rec"),
                                                                            ("", 2.0, 3.0, "rec")]
    raven = tmp_path / "rec.Table.1.selections.txt"  # Raven writes each selection for each view
    raven.write_text("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies\n"
                     "1\tWaveform 1\t1\t0.5\t1.5\t0\t8000\tbark\n1\tSpectrogram 1\t1\t0.5\t1.5\t0\t8000\tbark\n")
    assert [(e.label, e.start, e.file) for e in parse_events(raven)] == [("bark", 0.5, "rec")]


@pytest.mark.parametrize(("name", "text", "line"), [
    ("a.csv", "file,label,start,end,score\nx.wav,bark,1.0,abc,0.5\n", 2),
    ("a.csv", "file,label,begin\nx,y,1\n", 1),
    ("a.txt", "0.5\t1.5\tbark\n3.0\t2.0\tbark\n", 2),
    ("a.txt", "0.5\t1.5\tbark\nnonsense line\n", 2),
    ("a.jsonl", '{"label": "x", "start": 0, "end": 1}\n{"label": "x"}\n', 2),
    ("a.Table.1.selections.txt", "Selection\tView\tBegin Time (s)\tEnd Time (s)\n1\tSpectrogram 1\tx\t2\n", 2),
])
def test_bad_annotation_names_the_line(tmp_path, name, text, line):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AnnotationError) as err:
        parse_events(path)
    assert f"{name} line {line} does not parse" in str(err.value) and str(err.value).endswith(".")


def test_unknown_format_is_a_sentence(tmp_path):
    with pytest.raises(AnnotationError, match="use one of"):
        write_events(EVENTS, tmp_path / "x", "xml")
