"""The settings search in modes full and LoRA: every trial a real training through the engine in a child run
folder, on the search's own dataset (the held-back test clips are not in it), pruned through the engine's
per-epoch evaluation, stopped and continued with its finished trials replayed, and "train the best" an exact
copy of the winning trial (the same validation score when trained again as a normal run)."""

from __future__ import annotations

import csv
import json
import threading

import pytest
from train_helpers import cfg_for, one_thread  # noqa: F401 - autouse fixture

from astapp.core.config import TrainConfig
from astapp.training.pipeline import train
from astapp.tuning import search, space
from astapp.tuning.prepare import split_three

pytestmark = pytest.mark.slow  # real trainings of a tiny AST: ~1 min on a shared CPU

# a small space (1-2 epochs) that still draws the settings whose randomness must replay: dropout, mixup, batches
TINY = [space.Param("lr", "float", 3e-4, 3e-3, log=True), space.Param("epochs", "int", 1, 2),
        space.Param("batch_size", "choice", choices=(4, 8)), space.Param("head_dropout", "float", 0.0, 0.3),
        space.Param("augment.mixup", "float", 0.0, 0.5)]


@pytest.fixture
def tiny_space(monkeypatch):
    monkeypatch.setattr(search, "space", lambda mode: TINY)
    real = search.default_params
    monkeypatch.setattr(search, "default_params",
                        lambda cfg: {k: v for k, v in {**real(cfg), "epochs": 1}.items() if k in {p.name for p in TINY}})


def tune_cfg(out, tiny_ast, data, mode="full", **kw) -> TrainConfig:
    return cfg_for(out, tiny_ast, data, **{"task": "tune", "mode": mode, "tune_trials": 2, **kw})


def test_full_search_child_runs_resume_and_an_exact_best(tmp_path, tiny_ast, small_dataset, tiny_space):
    out, stop = tmp_path / "tune", threading.Event()
    cfg = tune_cfg(out, tiny_ast, small_dataset)
    first = search.run_tune(cfg, events=lambda e: stop.set() if e.get("stage") == "trial" else None, stop=stop)
    doc = json.loads((out / "tune.json").read_text())
    assert first.state == "stopped" and len(doc["trials"]) == 1
    kept = (out / "trials" / "trial-0000" / "trial.json").read_text()

    again = search.run_tune(tune_cfg(out, tiny_ast, small_dataset))
    doc = json.loads((out / "tune.json").read_text())
    assert again.state == "finished" and [t["number"] for t in doc["trials"]] == [0, 1]
    assert (out / "trials" / "trial-0000" / "trial.json").read_text() == kept  # replayed, not trained again
    for t in doc["trials"]:  # each a child run of the engine: its history, metrics and model
        child = out / "trials" / f"trial-{t['number']:04d}"
        rec = json.loads((child / "trial.json").read_text())
        assert rec["exact"] and rec["config"]["data"] == str(out / "search-data" / "manifest.csv")
        assert len(rec["curve"]) == t["params"]["epochs"]
        assert (child / "history.jsonl").is_file() and not (child / "checkpoints").exists()
        if t["state"] == "complete":
            assert json.loads((child / "metrics.json").read_text())["f1_macro"] == pytest.approx(t["value"])

    # the search's dataset holds its training and validation clips only: never a held-back test clip
    with (out / "search-data" / "manifest.csv").open() as fh:
        listed = {r["file"].removeprefix("audio/") for r in csv.DictReader(fh)}
    paths = sorted(p.relative_to(small_dataset).as_posix() for p in small_dataset.rglob("*.wav"))
    labels = [p.split("/")[0] for p in paths]
    _, _, test = split_three(labels, paths, cfg.tune_test_share, cfg.val_split, cfg.seed)
    assert len(listed) == doc["clips"]["train"] + doc["clips"]["validation"] and test
    assert not listed & {paths[i] for i in test} and doc["test"]["clips"] == len(test)

    # "train the best": the winning trial's config as a normal run gives the trial's validation score again
    win = "default" if doc["kept_default"] else f"trial-{doc['best']['number']:04d}"
    rec = json.loads((out / "trials" / win / "trial.json").read_text())
    again_cfg = TrainConfig.from_dict({**rec["config"], "output": str(tmp_path / "best-again")})
    result = train(again_cfg)
    assert result.metrics["f1_macro"] == pytest.approx(rec["value"], abs=1e-6)
    # and the search's model/ is that winner's export
    assert (out / "model" / "model.safetensors").read_bytes() == \
        (out / "trials" / win / "model" / "model.safetensors").read_bytes()


def test_a_pruned_trial_stops_its_training(tmp_path, tiny_ast, small_dataset):
    import optuna

    from astapp.training.stages import Stages
    from astapp.tuning.engine import EngineTrials

    out = tmp_path / "tune"
    cfg = tune_cfg(out, tiny_ast, small_dataset)
    trials = EngineTrials(cfg, Stages(lambda e: None, threading.Event()), out, "setup")
    trials.prepare()
    seen: list[tuple[int, float]] = []

    def report(epoch: int, score: float) -> None:
        seen.append((epoch, score))
        raise optuna.TrialPruned()  # the median rule's verdict after the first epoch

    params = {"lr": 1e-3, "epochs": 4, "batch_size": 4, "head_dropout": 0.0, "augment.mixup": 0.0}
    folder = out / "trials" / "trial-0000"
    with pytest.raises(optuna.TrialPruned):
        trials.trial(0, params, folder, report, threading.Event())
    evals = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    epochs = [e["epoch"] for e in evals if e.get("type") == "eval"]
    assert [e for e, _ in seen] == [1] and 1 <= len(epochs) < 4 and max(epochs) < 4  # stopped early
    assert not (folder / "model").exists() and not (folder / "checkpoints").exists()


def test_lora_trials_train_adapters(tmp_path, tiny_ast, small_dataset, tiny_space):
    out = tmp_path / "tune"
    result = search.run_tune(tune_cfg(out, tiny_ast, small_dataset, mode="lora", tune_trials=1))
    doc = json.loads((out / "tune.json").read_text())
    assert result.state == "finished" and doc["mode"] == "lora" and len(doc["trials"]) == 1
    assert (out / "trials" / "trial-0000" / "adapter").is_dir() and (out / "model" / "config.json").is_file()
