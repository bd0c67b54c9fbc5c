"""The CLI in slices (ASTAPP_SLICE_SECONDS) and with `--time-limit`: real tiny training through `main()`.

A run trained in slices in one process, or stopped at a time limit and continued with the printed
command, ends with the same metrics as the same run trained in one go (tests/jobs/test_slicing.py is
the app's side of the same promise)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
import torch

from astapp.cli import EXIT_TIME_LIMIT, EXIT_USER_ERROR, main
from astapp.core import runfolder

SAME = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "best_epoch", "global_step", "epochs",
        "confusion_matrix")


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory, monkeypatch):
    """`main()` quiets transformers process-wide (right for a CLI process); undo it for later tests."""
    from transformers.utils import logging as hf_logging

    monkeypatch.setenv("ASTAPP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "astapp-cache"))
    monkeypatch.delenv("ASTAPP_SLICE_SECONDS", raising=False)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    before, verbosity = torch.get_num_threads(), hf_logging.get_verbosity()
    yield
    torch.set_num_threads(before)
    hf_logging.set_verbosity(verbosity)


def _args(tiny_ast: Path, data: Path, out: Path, epochs: int = 12) -> list[str]:
    return ["train", "--data", str(data), "--model", str(tiny_ast), "--output", str(out), "--epochs", str(epochs),
            "--batch-size", "4", "--lr", "5e-3", "--max-length", "64", "--seed", "0", "--precision", "fp32",
            "--threads", "1", "--quiet"]


def _metrics(run: Path) -> dict:
    return json.loads((run / runfolder.METRICS).read_text())


def _assert_same(ma: dict, mb: dict) -> None:
    for key in SAME:
        assert ma[key] == mb[key], key
    assert mb["loss"] == pytest.approx(ma["loss"], rel=1e-5)


def _assert_continuous(run: Path) -> None:
    steps = [e["step"] for e in runfolder.read_history(run) if e["type"] == "log"]
    assert steps == sorted(set(steps)), "the parts continue each other: no step twice, none missing"


@pytest.fixture(scope="module")
def one_go(tiny_ast, small_dataset, tmp_path_factory) -> Path:
    """The reference: the same run trained in one go through the CLI."""
    from transformers.utils import logging as hf_logging

    before, verbosity = torch.get_num_threads(), hf_logging.get_verbosity()
    mp = pytest.MonkeyPatch()
    mp.setenv("ASTAPP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "astapp-cache"))
    mp.delenv("ASTAPP_SLICE_SECONDS", raising=False)
    try:
        run = tmp_path_factory.mktemp("cli-one-go") / "run"
        assert main(_args(tiny_ast, small_dataset, run)) == 0
    finally:
        mp.undo()
        torch.set_num_threads(before)
        hf_logging.set_verbosity(verbosity)
    return run


def _startup_and_train(run: Path) -> tuple[float, float]:
    """The one go's preparing and training seconds. Preparing is its stages' own time: the one go also paid
    this process's first imports, which a later run here does not, and a budget built on them could
    outlast a whole later run (no cut at all)."""
    m = _metrics(run)
    startup = sum(float(v) for k, v in m["stage_seconds"].items() if k != "training")
    return startup, float(m["train_seconds"])


@pytest.mark.slow
def test_the_cli_trains_in_slices_and_ends_like_one_go(one_go, tiny_ast, small_dataset, tmp_path, monkeypatch,
                                                        capsys):
    startup, train_s = _startup_and_train(one_go)
    budget = max(0.5, 0.5 * startup + 0.4 * train_s)  # as the app's test: at least two slices, each with real steps
    monkeypatch.setenv("ASTAPP_SLICE_SECONDS", f"{budget:.3f}")
    run = tmp_path / "run"
    assert main(_args(tiny_ast, small_dataset, run)) == 0, capsys.readouterr().err
    slices = [e for e in runfolder.read_history(run) if e["type"] == "slice"]
    assert slices and all(e["reason"] == "budget" and e["checkpoint"] for e in slices)
    assert [e["slice"] for e in slices] == list(range(1, len(slices) + 1))
    assert json.loads((run / runfolder.STATUS).read_text())["state"] == "finished"
    assert sum("resumes from checkpoint-" in ln for ln in (run / runfolder.LOG).read_text().splitlines()) == len(slices)
    _assert_same(_metrics(one_go), _metrics(run))
    _assert_continuous(run)


@pytest.mark.slow
def test_a_time_limit_stops_resumably_and_the_printed_command_finishes_the_run(one_go, tiny_ast, small_dataset,
                                                                                tmp_path, capsys):
    startup, train_s = _startup_and_train(one_go)
    limit = (startup + 0.5 * train_s) / 0.85  # stops at 85 %: about half the training per invocation
    run = tmp_path / "run"
    argv = [*_args(tiny_ast, small_dataset, run), "--time-limit", f"{limit:.3f}"]
    assert main(argv) == EXIT_TIME_LIMIT
    err = capsys.readouterr().err
    assert runfolder.last_checkpoint(run) is not None
    assert json.loads((run / runfolder.STATUS).read_text())["state"] == "stopped"
    assert [e["reason"] for e in runfolder.read_history(run) if e["type"] == "slice"] == ["time limit"]
    command = err.strip().splitlines()[-1]
    assert "Continue with:" in err.strip().splitlines()[-2]
    words = shlex.split(command)
    assert words[:3] == [sys.executable, "-m", "astapp"] and words[3:] == [*argv, "--resume", "latest"]
    for _ in range(20):  # a batch host runs the printed command again until the run is done
        code = main(words[3:])
        err = capsys.readouterr().err
        if code == 0:
            break
        assert code == EXIT_TIME_LIMIT and err.strip().splitlines()[-1] == command  # the same command again
    assert code == 0
    assert json.loads((run / runfolder.STATUS).read_text())["state"] == "finished"
    _assert_same(_metrics(one_go), _metrics(run))
    _assert_continuous(run)


def test_a_limit_too_short_for_one_step_still_trains_one(tiny_ast, small_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [*_args(tiny_ast, small_dataset, run, epochs=3), "--time-limit", "0.001"]
    assert main(argv) == EXIT_TIME_LIMIT
    ck = runfolder.last_checkpoint(run)
    assert ck is not None and int(ck.name.split("-")[1]) >= 1
    assert "Stopped at the time limit" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
def test_a_time_limit_must_be_positive_seconds(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "d", "--model", "m", "--output", str(tmp_path / "r"), "--time-limit", value])
    assert exc.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--time-limit" in err and "seconds above 0" in err
    assert not (tmp_path / "r").exists()


def test_a_time_limit_counts_from_the_process_start(tmp_path):
    """A batch host's limit includes the interpreter's start and the imports, not only what follows main()."""
    import subprocess

    code = "import time, astapp.cli.common as c; print(time.time() - c.process_start())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert 0.05 < float(out) < 60
