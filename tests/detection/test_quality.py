"""The real model path end to end: a tiny AST trained to >= 95 % on clips finds the events of a generated
long recording with event F1 >= 0.9 at a 0.5 s collar (issue 26's quality bar), through the torch, ONNX fp32
and ONNX int8 backends, and through the CLI (detect, a rerun that skips everything, detect-score)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from detect_helpers import random_events, write_recording, write_training_clips
from train_helpers import cfg_for, one_thread  # noqa: F401 - the fixture

from astapp.cli import main
from astapp.detection.detect import DetectSettings
from astapp.detection.events import Event
from astapp.detection.formats import parse_events, write_events
from astapp.detection.reference import score_output
from astapp.detection.run import detect_files
from astapp.export.to_onnx import export_onnx
from astapp.predict.predictor import Predictor
from astapp.training.pipeline import train

pytestmark = pytest.mark.slow
HOP = 0.25  # a quarter of the 1 s window: boundaries to +-0.125 s, well inside the 0.5 s collar


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_ast):
    root = tmp_path_factory.mktemp("quality")
    data = write_training_clips(root / "clips", per_class=24, seed=1)
    res = train(cfg_for(root / "run", tiny_ast, data, mode="full", epochs=12, lr=3e-3, val_split=0.25,
                        max_length=100))
    assert res.state == "finished"
    truth = random_events(120.0, 20, seed=7)
    write_recording(root / "recs" / "field.wav", 120.0, truth, sr=48_000, channels=2, seed=3)
    write_events([Event(lab, s, e, 1.0, "field.wav") for lab, s, e in truth], root / "ref.csv", "csv")
    return root, res


def test_detection_f1_on_a_long_recording_torch_and_onnx(trained, tmp_path):
    root, res = trained
    assert res.metrics["accuracy"] >= 0.95, res.metrics["accuracy"]
    scores = {}
    clips = [np.asarray(sf.read(str(p), dtype="float32")[0]) for p in sorted((root / "clips").rglob("*_000.wav"))]
    assert export_onnx(res.model_dir, root / "run" / "onnx", clips, None, source="generated")["passed"]
    for name, predictor in (("torch", Predictor(res.model_dir)), ("onnx", Predictor(root / "run", backend="onnx")),
                            ("int8", Predictor(root / "run", backend="onnx", quantized=True))):
        out = tmp_path / name
        s = detect_files(predictor, [root / "recs"], out, DetectSettings(hop=HOP))
        assert s.done == ["field.wav"] and not s.failed
        scores[name] = score_output(out, root / "ref.csv", collar=0.5)["scores"]["overall"]
    print(json.dumps(scores))
    assert scores["torch"]["f1"] >= 0.9 and scores["onnx"]["f1"] >= 0.9 and scores["int8"]["f1"] >= 0.9, scores
    torch_ev = parse_events(tmp_path / "torch" / "events.csv")
    onnx_ev = parse_events(tmp_path / "onnx" / "events.csv")
    assert [(e.label, e.start, e.end) for e in torch_ev] == [(e.label, e.start, e.end) for e in onnx_ev]


def test_cli_detect_rerun_and_score(trained, tmp_path, capsys):
    root, _ = trained
    out = tmp_path / "out"
    bad = root / "recs2"
    bad.mkdir(exist_ok=True)
    (bad / "broken.flac").write_bytes(b"fLaC\x00\x00\x00")
    args = ["detect", "--model", str(root / "run"), str(root / "recs"), str(bad), "--output", str(out),
            "--format", "raven", "--hop", str(HOP)]
    assert main(args) == 1  # a bad file: listed, the good one finished
    captured = capsys.readouterr()
    summary = json.loads(captured.out.splitlines()[-1])
    assert sorted(summary["done"]) == ["broken.flac", "field.wav"] and summary["failed"][0][0] == "broken.flac"
    assert "Failed: broken.flac" in captured.err and "x real time" in captured.err
    assert (out / "raven" / "field.Table.1.selections.txt").is_file()
    assert main(args) == 1
    again = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert again["skipped"] == ["field.wav"] and again["events"] == summary["events"]
    assert main(["detect-score", "--events", str(out), "--reference", str(root / "ref.csv"),
                 "--target-fa-per-hour", "30"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["scores"]["overall"]["f1"] >= 0.9 and set(result["sweep"]["thresholds"]) >= {"beep", "hum"}
    assert main(["detect", "--model", str(root / "run"), str(root / "recs"), "--output", str(out),
                 "--shard", "3/2"]) == 2
    assert "--shard takes I/N" in capsys.readouterr().err
