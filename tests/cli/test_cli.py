"""CLI contract: inspect / train / predict / export, exit codes, no tracebacks, to_cli round-trip."""

from __future__ import annotations

import json
import shlex
import zipfile

import pytest
from train_helpers import one_thread_fixture

from astapp.cli import ProgressPrinter, build_parser, config_from_args, main
from astapp.core.config import AudioConfig, AugmentConfig, TrainConfig

# the CLI sets torch threads (restored) and quiets transformers (conftest restores it)
isolated = one_thread_fixture("astapp-cache", threads=None)


def test_inspect_reports_and_exit_codes(small_dataset, tmp_path, capsys):
    assert main(["inspect", "--data", str(small_dataset)]) == 0
    assert "Ready to train" in capsys.readouterr().out
    assert main(["inspect", "--data", str(small_dataset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(c["name"] for c in report["classes"]) == ["chirp", "noise", "tone"]

    one_class = tmp_path / "one"
    (one_class / "only").mkdir(parents=True)
    for f in list((small_dataset / "tone").iterdir())[:3]:
        (one_class / "only" / f.name).write_bytes(f.read_bytes())
    assert main(["inspect", "--data", str(one_class)]) == 2
    out = capsys.readouterr()
    assert "Not trainable" in out.out and "Traceback" not in out.err

    assert main(["inspect", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "Traceback" not in err


@pytest.mark.slow
def test_train_predict_export(tiny_ast, small_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--data", str(small_dataset), "--model", str(tiny_ast), "--output", str(run),
                 "--epochs", "1", "--batch-size", "6", "--lr", "1e-3", "--max-length", "64", "--threads", "1",
                 "--mode", "frozen"])
    assert code == 0
    out = capsys.readouterr()
    assert "Finished: accuracy" in out.out
    assert "step 3/3" in out.err and "[training]" in out.err  # plain progress lines when not a TTY
    m = json.loads((run / "metrics.json").read_text())
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "confusion_matrix", "labels",
                "best_epoch", "train_seconds", "train_samples_per_second"):
        assert key in m, key
    assert json.loads((run / "config.json").read_text())["mode"] == "frozen"

    clips = sorted((small_dataset / "noise").iterdir())[:2]
    assert main(["predict", "--model", str(run / "model"), *map(str, clips), "--top-k", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == [str(c) for c in clips]
    assert all(len(r["top"]) == 2 and r["label"] in m["labels"] and r["error"] is None for r in rows)

    assert main(["predict", "--model", str(run / "model"), str(tmp_path / "nope.wav")]) == 1
    assert json.loads(capsys.readouterr().out)["error"]

    zpath = tmp_path / "model.zip"
    assert main(["export", "--run", str(run), "--output", str(zpath)]) == 0
    names = zipfile.ZipFile(zpath).namelist()  # one top folder named like the zip (it unpacks tidily)
    assert "model/config.json" in names and "model/model.safetensors" in names
    assert "model/preprocessor_config.json" in names and all(n.startswith("model/") for n in names)
    assert main(["export", "--run", str(tmp_path), "--output", str(tmp_path / "x.zip")]) == 2


def test_train_user_errors_exit_2_without_traceback(tiny_ast, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "none"), "--model", str(tiny_ast),
                 "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert main(["train", "--epochs", "0"]) == 2
    assert "Epochs must be greater than 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--max-length", "long"])
    assert e.value.code == 2


def test_to_cli_round_trips_every_setting(tmp_path):
    cfg = TrainConfig(data="my data/dir", model="scratch:small", output="runs/x y", epochs=3.5, batch_size=6,
                      lr=3.3333e-05, weight_decay=0.01, warmup_ratio=0.05, max_length=256, mode="last-2",
                      val_split=0.25, seed=7, early_stopping=2, class_weighted=True, metric="f1_macro",
                      device="cpu", precision="fp32", threads=2, resume="latest",
                      audio=AudioConfig(long_clips="split", max_seconds=5.0, min_seconds=0.5),
                      augment=AugmentConfig(preset="classic", transforms={"Gain": {"p": 0.3}},
                                            freq_mask=24, time_mask=48, mixup=0.5))
    argv = shlex.split(cfg.to_cli())
    assert argv[:4] == ["python3", "-m", "astapp", "train"]
    parsed = config_from_args(build_parser().parse_args(argv[3:]))
    assert parsed.to_dict() == cfg.to_dict()
    default = TrainConfig(data="d", model="m", output="o")
    assert config_from_args(build_parser().parse_args(shlex.split(default.to_cli())[3:])).to_dict() == \
        default.to_dict()


def test_config_file_with_flag_overrides(tmp_path):
    base = TrainConfig(data="a", model="scratch:tiny", output="o", epochs=9, mode="frozen")
    base.save(tmp_path / "c.json")
    ns = build_parser().parse_args(["train", "--config", str(tmp_path / "c.json"), "--epochs", "2",
                                    "--mixup", "0.3"])
    cfg = config_from_args(ns)
    assert (cfg.epochs, cfg.mode, cfg.data, cfg.augment.mixup) == (2.0, "frozen", "a", 0.3)


def test_progress_printer_plain_lines():
    class Stream:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return False

    s = Stream()
    p = ProgressPrinter(stream=s)
    p({"type": "stage", "stage": "model", "message": "Loading"})
    p({"type": "log", "step": 2, "max_steps": 4, "epoch": 0.5, "loss": 0.25, "lr": 1e-4, "eta": 3.0})
    p({"type": "eval", "epoch": 1.0, "accuracy": 0.5, "f1_macro": 0.4, "loss": 0.9})
    assert s.text.splitlines() == ["[model] Loading", "step 2/4, epoch 0.50, loss 0.2500, lr 1.00e-04, eta 3s",
                                   "epoch 1.00: accuracy 0.5000, f1_macro 0.4000, loss 0.9000"]



def test_predict_with_a_missing_model_gives_prediction_advice(tmp_path, capsys):
    for extra in ([], ["--onnx"]):
        assert main(["predict", *extra, "--model", str(tmp_path / "nope"), str(tmp_path / "x.wav")]) == 2
        err = capsys.readouterr().err
        assert "does not exist" in err and "run folder" in err and "exported model" in err
        assert "scratch:small" not in err and "Hub id" not in err and "Traceback" not in err


@pytest.mark.slow
def test_pool_and_search_commands(tiny_ast, small_dataset, tmp_path, capsys):
    out = tmp_path / "pool"
    assert main(["pool", "--data", str(small_dataset), "--model", str(tiny_ast), "--output", str(out),
                 "--hop", "0.5"]) == 0
    assert "24 file(s)" in capsys.readouterr().out
    query = sorted((small_dataset / "noise").glob("*.wav"))[0]
    assert main(["search", "--pool", str(out), "--query", str(query), "--top", "3", "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(hits) == 3 and hits[0]["file"] == f"noise/{query.name}" and hits[0]["score"] > 0.99
    assert {"file", "start", "end", "score"} <= set(hits[0]) and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert main(["search", "--pool", str(out), "--query", str(query), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and f"noise/{query.name}" in lines[0]
    assert main(["search", "--pool", str(tmp_path / "nope"), "--query", str(query)]) == 2
    assert "not a finished pool" in capsys.readouterr().err
    assert main(["pool", "--data", str(tmp_path / "nothing"), "--model", str(tiny_ast), "--output", str(out)]) == 2
    assert "No audio files" in capsys.readouterr().err


def test_distill_flags_and_an_unfinished_teacher_in_one_sentence(tmp_path, capsys):
    ns = build_parser().parse_args(["distill", "--run", "r", "--output", "o", "--student", "128x2", "--pool", "p",
                                    "--epochs", "3"])
    assert (ns.run, ns.output, ns.student, ns.pool, ns.epochs) == ("r", "o", "128x2", "p", 3.0)
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text('{"state": "interrupted"}')
    assert main(["distill", "--run", str(run), "--output", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "is interrupted, not finished" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["distill", "--run", str(run), "--student", "huge", "--output", str(tmp_path / "s")]) == 2
    assert "is interrupted" in capsys.readouterr().err  # the teacher is checked first
