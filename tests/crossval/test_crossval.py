"""Cross-validation, source grouping, label issues and the embedding map (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from astapp.core.errors import DatasetError
from astapp.data.dataset import split_files
from astapp.data.folds import grouped_holdout, plan_folds, source_groups
from astapp.data.synth import make_tone_classes
from astapp.evaluation.embedmap import nearest, reduce_2d

ROOT = Path(__file__).resolve().parents[2]


def esc_names(n_sources: int = 12, takes: int = 3) -> tuple[list[str], list[str]]:
    paths, labels = [], []
    for s in range(n_sources):
        for t in "ABC"[:takes]:
            target = s % 3
            paths.append(f"audio/{1 + s % 5}-{1000 + s}-{t}-{target}.wav")
            labels.append(f"c{target}")
    return paths, labels


def test_source_groups_follow_known_conventions_and_leave_other_names_alone():
    paths, _ = esc_names()
    g = source_groups(paths)
    assert g.grouped and "ESC-50" in g.how and len(set(g.ids)) == 12
    assert source_groups(["a/100263-2-0-117.wav", "a/100263-2-0-121.wav", "b/7061-6-0-0.wav"]).how.startswith(
        "by UrbanSound8K")
    assert source_groups(["yes/0a7c2a8d_nohash_0.wav", "no/0a7c2a8d_nohash_1.wav", "no/ffd2ba2f_nohash_0.wav"]
                         ).ids[:2] == ["0a7c2a8d", "0a7c2a8d"]  # one speaker across classes: one group
    plain = source_groups(["dog/bark1.wav", "dog/bark2.wav", "cat/meow.wav"])
    assert not plain.grouped and plain.how == "by file"


def test_the_single_split_keeps_takes_of_one_source_together_and_is_unchanged_without_groups():
    paths, labels = esc_names()
    train, val, how = split_files(labels, [None] * len(labels), 0.25, 0, paths=paths)
    ids = source_groups(paths).ids
    assert how.startswith("stratified by ESC-50") and val
    assert not {ids[i] for i in train} & {ids[i] for i in val}  # no source straddles the split
    assert {labels[i] for i in train} == set(labels)
    plain = [f"x/clip{i}.wav" for i in range(len(labels))]
    assert split_files(labels, [None] * len(labels), 0.25, 3, paths=plain) == split_files(
        labels, [None] * len(labels), 0.25, 3)  # names without a convention: exactly the by-file split
    tr, va = grouped_holdout(labels, ids, 0.25, 1)
    assert sorted(tr + va) == list(range(len(labels)))


def test_fold_plans_and_the_messages_for_impossible_ones():
    paths, labels = esc_names()
    folds = [p.split("/")[1].split("-")[0] for p in paths]
    plan = plan_folds(labels, folds, paths, "auto", 0)
    assert plan.names == ["1", "2", "3", "4", "5"] and plan.grouping.startswith("leave-one-fold-out")
    k = plan_folds(labels, [None] * len(labels), paths, "3", 0)
    ids = source_groups(paths).ids
    for f in range(3):
        tr, va = k.split(f)
        assert va and not {ids[i] for i in tr} & {ids[i] for i in va}
    with pytest.raises(DatasetError, match="single fold"):
        plan_folds(labels, ["1"] * len(labels), paths, "auto", 0)
    with pytest.raises(DatasetError, match="too few for 9-fold"):
        plan_folds(labels, [None] * len(labels), paths, "9", 0)  # 4 sources per class
    lonely = [("9" if lab == "c0" else f) for lab, f in zip(labels, folds, strict=True)]
    with pytest.raises(DatasetError, match="would train without them"):
        plan_folds(labels, lonely, paths, "auto", 0)
    with pytest.raises(DatasetError, match="'auto' or a whole number"):
        plan_folds(labels, folds, paths, "many", 0)


def test_the_map_is_normalised_and_points_can_be_picked():
    rng = np.random.default_rng(0)
    emb = np.r_[rng.normal(0, 1, (30, 16)), rng.normal(6, 1, (30, 16))]
    xy, method = reduce_2d(emb)
    assert xy.shape == (60, 2) and method in ("umap", "t-SNE", "PCA")
    assert xy.min() >= 0 and xy.max() <= 1
    assert nearest(xy, *xy[17]) == 17


class Out:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """`python -m astapp ...` in this process (the same main(); no second torch import)."""
    from transformers.utils import logging as hf_logging

    from astapp.cli import main

    def run(*args: str) -> Out:
        capsys.readouterr()
        level = hf_logging.get_verbosity()
        try:
            code = main(list(args))
        finally:  # the CLI quiets transformers for its process; later tests expect its warnings
            hf_logging.set_verbosity(level)
            hf_logging.enable_progress_bar()
        got = capsys.readouterr()
        return Out(code, got.out, got.err)

    return run


@pytest.mark.slow
def test_cli_cv_and_label_issues_find_flipped_labels(tmp_path, cli):
    data = tmp_path / "tones"
    flipped = make_tone_classes(data, per_class=20, flip=0.1, seed=0)
    out = cli("label-issues", "--data", str(data), "--model", "scratch:tiny", "--mode", "frozen",
              "--output", str(tmp_path / "run"), "--json")
    assert out.returncode == 0, out.stderr
    issues = json.loads(out.stdout)
    assert issues and {"path", "given", "suggested", "score"} <= set(issues[0])
    assert [d["score"] for d in issues] == sorted((d["score"] for d in issues), reverse=True)
    top = {d["path"] for d in issues[: 2 * len(flipped)]}
    assert len(top & set(flipped)) / len(flipped) >= 0.8  # the issue's recall target
    moved = next(d for d in issues if d["path"] in flipped)
    assert moved["given"] == moved["path"].split("/")[0] and moved["suggested"] != moved["given"]

    # cv reuses the embeddings (same data, model, features) and prints the JSON contract
    cv = cli("cv", "--data", str(data), "--model", "scratch:tiny", "--mode", "frozen", "--folds", "4",
             "--final", "--output", str(tmp_path / "cv"), "--json")
    assert cv.returncode == 0, cv.stderr
    doc = json.loads(cv.stdout)
    assert [f["fold"] for f in doc["folds"]] == ["1", "2", "3", "4"]
    assert sum(f["clips"] for f in doc["folds"]) == 80 and doc["grouping"].startswith("stratified 4-fold by file")
    assert abs(doc["mean"]["accuracy"] - np.mean([f["accuracy"] for f in doc["folds"]])) < 1e-9
    assert doc["mean"]["accuracy"] >= 0.7 and doc["std"]["accuracy"] >= 0
    cvdoc = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert len(cvdoc["clips"]) == 80 and np.load(tmp_path / "cv" / "embeddings.npy").shape[0] == 80
    assert len(json.loads((tmp_path / "cv" / "map.json").read_text())["xy"]) == 80
    status = json.loads((tmp_path / "cv" / "status.json").read_text())
    assert status["state"] == "finished"

    # the final model (a head fitted on every clip) is a plain transformers model
    from astapp.predict.predictor import Predictor

    row = Predictor(str(tmp_path / "cv")).predict_many([str(data / "top" / "top_000.wav")], top_k=1)[0]
    assert row["label"] == "top" if "label" in row else row["predictions"][0]["label"] == "top"

    bad = cli("cv", "--data", str(data), "--model", "scratch:tiny", "--mode", "frozen", "--folds", "50",
              "--output", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "too few for 50-fold" in bad.stderr and "Traceback" not in bad.stderr


def test_cv_progress_moves_through_the_backbone_pass_and_across_folds(tmp_path, tiny_ast):
    """A CV job's bar moves during frozen CV's one backbone pass (it stayed at 0 %), and a trained CV's folds
    each take their share of it instead of starting again from 0. The trained CV is also the check that
    full-mode CV trains every fold (one tiny 2-fold run serves both: CV runs are the suite's costly part)."""
    from astapp.core.config import TrainConfig
    from astapp.crossval.task import run_cv
    from astapp.service import cv_run, cv_summary

    data = tmp_path / "tones"
    make_tone_classes(data, per_class=4, classes={"low": 300.0, "high": 3000.0}, seed=2)
    base = {"data": str(data), "model": str(tiny_ast), "cv_folds": "2", "max_length": 128, "batch_size": 2}
    events: list[dict] = []
    assert run_cv(TrainConfig(**base, output=str(tmp_path / "frozen"), mode="frozen"), events.append).state \
        == "finished"
    moved = [e["progress"] for e in events if e.get("stage") == "features" and "progress" in e]
    assert moved and moved == sorted(moved) and 0 < moved[-1] <= 0.9
    events.clear()
    result = cv_run(TrainConfig(**base, output=str(tmp_path / "full"), mode="full", epochs=1), events.append)
    assert result.state == "finished"
    by_fold = [(e["fold"], e["progress"]) for e in events if e.get("type") == "log" and "progress" in e]
    assert {f for f, _ in by_fold} == {"1", "2"}
    assert [p for _, p in by_fold] == sorted(p for _, p in by_fold)
    assert max(p for f, p in by_fold if f == "1") <= 0.5 < max(p for f, p in by_fold if f == "2") <= 1.0

    # full-mode CV trains every fold: each has its model and metrics, and every clip is validated once
    doc = cv_summary(result.output)
    assert len(doc["folds"]) == 2 and sum(f["clips"] for f in doc["folds"]) == 8
    for name in ("1", "2"):
        fold = tmp_path / "full" / "folds" / name
        assert (fold / "model" / "config.json").is_file() and (fold / "metrics.json").is_file()
        assert json.loads((fold / "metrics.json").read_text())["num_validation"] == 4
    clips = json.loads((tmp_path / "full" / "cv.json").read_text())["clips"]
    assert all(abs(sum(c["probs"]) - 1) < 1e-4 for c in clips)


def test_the_map_legend_leaves_the_dots_visible():
    from astapp.evaluation.figures import embedding_map, map_figure

    rng = np.random.default_rng(0)
    xy = np.vstack([rng.uniform(0.55, 1.0, (40, 2)), rng.uniform(0.0, 0.3, (10, 2)) * [1, 0] + [0, 0.7]])
    labels = ["dog"] * 25 + ["rain"] * 25
    fig = map_figure(xy.tolist(), labels, [""] * 50)
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_legend().get_window_extent()
    covered = [p for p in ax.transData.transform(xy) if box.contains(*p)]
    assert covered == []  # the upper right (a fixed corner before) is full of dots: the legend goes elsewhere
    assert embedding_map(xy.tolist(), labels, [""] * 50, size=200).shape == (200, 200, 3)
