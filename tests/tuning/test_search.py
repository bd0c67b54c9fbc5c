"""The settings search on a tiny model: tune.json as the issue defines it, child trial folders, the default kept
when the search cannot beat it, a stop that keeps the trials and a rerun that continues them, and a held-back
test share no trial ever sees."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from train_helpers import cfg_for, one_thread  # noqa: F401 - autouse fixture

from astapp.core.config import setting
from astapp.core.errors import TrainingError
from astapp.crossval.clips import fold_scores
from astapp.tuning import search, space
from astapp.tuning.prepare import split_three
from astapp.tuning.trials import clip_scores


def tune_cfg(out: Path, tiny_ast: Path, data: Path, **kw):
    return cfg_for(out, tiny_ast, data, **{"task": "tune", "mode": "frozen", "tune_trials": 4, **kw})


def test_space_stays_inside_the_settings_table():
    for mode in ("frozen", "last-1", "full"):
        for p in space.space(mode):
            s = setting(p.name)  # head dropout too: a training setting of its own
            for v in (p.choices or (p.low, p.high)):
                assert s.check(int(v) if p.kind == "int" else v) is None, (mode, p.name, v)
    names = {p.name for p in space.space("frozen")}
    assert "augment.freq_mask" not in names and "max_length" not in names  # fixed by the one pass
    assert {"augment.freq_mask", "augment.time_mask"} <= {p.name for p in space.space("lora")}


@pytest.mark.parametrize("trials", [0, -3, 5000, 2.5])
def test_trial_count_out_of_range_is_one_sentence(trials):
    with pytest.raises(TrainingError, match=r"from 1 to 1000"):
        space.check_counts(trials, 0, 0.2)


def test_numpy_scores_match_the_cv_scores():
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = rng.integers(0, 4, int(rng.integers(1, 30)))
        p = rng.random((len(y), 5))
        a, b = fold_scores(y, p, list("abcde")), clip_scores(y, p)
        assert a == pytest.approx(b)


def test_three_way_split_keeps_recordings_together():
    paths = [f"{c}/rec{r}_take{t}.wav" for c in "ab" for r in range(6) for t in range(2)]
    labels = [p[0] for p in paths]
    train, val, test = split_three(labels, paths, 0.2, 0.2, seed=0)
    assert not (set(train) & set(test)) and not (set(val) & set(test)) and not (set(train) & set(val))
    assert sorted(train + val + test) == list(range(len(paths)))
    rec = {i: paths[i].split("_")[0] for i in range(len(paths))}
    assert not {rec[i] for i in test} & {rec[i] for i in train + val}


@pytest.mark.slow
def test_search_writes_tune_json_and_child_runs(tmp_path, tiny_ast, small_dataset, monkeypatch):
    from astapp.tuning import trials

    seen_rows: list = []
    real_fit, tested = trials.fit, []
    monkeypatch.setattr(trials, "fit", lambda model, n, c, *a, **k: (seen_rows.append(c),
                                                                      real_fit(model, n, c, *a, **k))[1])
    real_test = trials.test_scores
    monkeypatch.setattr(trials, "test_scores", lambda net, c: (tested.append(1), real_test(net, c))[1])
    events: list[dict] = []
    out = tmp_path / "tune"
    result = search.run_tune(tune_cfg(out, tiny_ast, small_dataset), events=events.append)
    doc = json.loads((out / "tune.json").read_text())
    assert result.state == "finished" and doc["metric"] == "f1_macro"
    assert [t["number"] for t in doc["trials"]] == [0, 1, 2, 3]
    assert all(set(t) == {"number", "params", "value", "state"} for t in doc["trials"])
    assert set(doc["default"]) == {"params", "value"} and set(doc["test"]) >= {"default", "clips"}
    complete = [t["value"] for t in doc["trials"] if t["state"] == "complete"]
    assert doc["best"]["value"] == max(complete)
    if doc["kept_default"]:
        assert doc["best"]["value"] <= doc["default"]["value"] and "keeping the defaults" in doc["message"]
    else:
        assert doc["best"]["value"] > doc["default"]["value"] and "best" in doc["test"]
    folders = sorted((out / "trials").iterdir())
    assert len(folders) == 4
    for f, t in zip(folders, doc["trials"], strict=True):
        child = json.loads((f / "trial.json").read_text())
        assert child["params"] == t["params"] and child["config"]["task"] == "train"
        assert child["config"]["lr"] == t["params"]["lr"] and len(child["curve"]) >= 1
    # the held-back share: no trial trains on it and it is scored only at the end (default, best)
    test_clips = doc["clips"]["test"]
    assert test_clips == doc["test"]["clips"] and test_clips > 0 and len(tested) == 1 + (doc["best"] is not None)
    for c in seen_rows:  # every fit (trials, default, the final refits) trains on search rows only
        held = set(c.test_rows.tolist())
        assert not held & set(c.train_rows.tolist()) and not held & set(c.val_rows.tolist())
        assert not set(c.test_clips.tolist()) & set(c.val_clips.tolist())
    # the winner is the run's model: a normal exported folder Predict loads
    from astapp.predict.predictor import Predictor

    clip = next(small_dataset.rglob("*.wav"))
    assert Predictor(out / "model").predict(clip, top_k=1).probs.shape == (3,)
    trial_events = [e for e in events if e.get("stage") == "trial"]
    assert len(trial_events) == 4 and all("best" in e for e in trial_events)


@pytest.mark.slow
def test_stop_keeps_trials_and_a_rerun_continues(tmp_path, tiny_ast, small_dataset):
    out, stop = tmp_path / "tune", threading.Event()

    def on(ev: dict) -> None:
        if ev.get("stage") == "trial" and ev.get("trial") == 1:
            stop.set()

    first = search.run_tune(tune_cfg(out, tiny_ast, small_dataset), events=on, stop=stop)
    doc = json.loads((out / "tune.json").read_text())
    assert first.state == "stopped" and doc["stopped"] and len(doc["trials"]) == 2
    kept = {p.parent.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*/trial.json")}
    again = search.run_tune(tune_cfg(out, tiny_ast, small_dataset))
    doc2 = json.loads((out / "tune.json").read_text())
    assert again.state == "finished" and len(doc2["trials"]) == 4
    assert doc2["trials"][:2] == doc["trials"]  # replayed, not re-run
    assert {p.parent.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*/trial.json")
            if p.parent.name in kept} == kept
