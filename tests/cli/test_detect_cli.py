"""`detect` and `detect-score` at the command line: bad input is one sentence and exit status 2 (the whole
journey with a trained model is in tests/detection/test_quality.py)."""

from __future__ import annotations

import pytest

from astapp.cli import build_parser, main


def test_detect_flags_parse():
    ns = build_parser().parse_args(["detect", "--model", "m", "a.wav", "dir", "--output", "o", "--format", "raven",
                                    "--hop", "0.5", "--threshold", "0.6", "--min-length", "0", "--merge-gap", "1",
                                    "--int8", "--shard", "1/4", "--ignore", "background", "noise"])
    assert (ns.files, ns.format, ns.hop, ns.threshold, ns.min_length, ns.merge_gap, ns.int8, ns.shard) == (
        ["a.wav", "dir"], "raven", 0.5, 0.6, 0.0, 1.0, True, "1/4")
    assert ns.ignore == ["background", "noise"]


@pytest.mark.parametrize(("args", "words"), [
    (["--threshold", "2"], "--threshold must be between"),
    (["--min-length", "-1"], "--min-length must be 0 or more"),
    (["--shard", "5/2"], "--shard takes I/N"),
    ([], "does not exist"),
])
def test_detect_bad_input_is_one_sentence(tmp_path, capsys, args, words):
    code = main(["detect", "--model", str(tmp_path / "no-model"), str(tmp_path), "--output", str(tmp_path / "o"),
                 *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_detect_score_bad_input(tmp_path, capsys):
    assert main(["detect-score", "--events", str(tmp_path), "--reference", str(tmp_path)]) == 2
    assert "not a detection output folder" in capsys.readouterr().err
    assert main(["detect-score", "--events", str(tmp_path), "--reference", str(tmp_path), "--collar", "0"]) == 2
    assert "--collar" in capsys.readouterr().err
