"""The unknown score at the end of training (issue 25): fitted on the run's clips, calibrated on its validation
clips, saved with the export and used by the predictor; an export without it predicts as before."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from train_helpers import cfg_for, one_thread  # noqa: F401 - the fixture

from astapp.cli import main
from astapp.data.synth import make_tone_classes
from astapp.evaluation import unknown
from astapp.model.folder import zip_dir
from astapp.predict.predictor import Predictor
from astapp.training.pipeline import train


def load_wav(path):
    from astapp.data.audio import load_audio

    return load_audio(path, sr=16_000)


KNOWN = {"low": 300.0, "high": 3000.0}


def test_a_held_out_class_scores_higher_than_the_known_validation_clips(tmp_path, tiny_ast, capsys):
    data, other = tmp_path / "tones", tmp_path / "other"
    make_tone_classes(data, per_class=10, classes=KNOWN, seed=3)
    make_tone_classes(other, per_class=6, classes={"mid": 1200.0}, seed=4)
    res = train(cfg_for(tmp_path / "run", tiny_ast, data, mode="full", val_split=0.4, unknown_keep=0.9,
                          max_length=128))  # 1 s clips: one window, as in training
    assert res.state == "finished"
    model_dir = res.model_dir
    saved = json.loads((model_dir / unknown.STATS_JSON).read_text())
    assert saved["method"] == unknown.DEFAULT_METHOD and saved["keep"] == 0.9 and saved["threshold"] is not None
    assert saved["known_scores"]["count"] == res.metrics["num_validation"] == 8
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["unknown"]["threshold"] == saved["threshold"]

    pred = Predictor(model_dir)
    assert pred.unknown is not None and pred.unknown_note == ""
    val = [data / p["path"] for p in res.metrics["predictions"]]
    known = pred.predict_many(val)
    odd = pred.predict_many(sorted(other.rglob("*.wav")))
    assert not known[0]["error"], known[0]
    k, o = np.array([r["unknown"] for r in known]), np.array([r["unknown"] for r in odd])
    assert o.mean() > k.mean(), (o, k)
    assert np.mean(k <= saved["threshold"]) >= 0.85  # the calibration clips themselves: ~90 % kept
    assert all(r["unknown_threshold"] == saved["threshold"] for r in known + odd)
    assert all((r["label"] == "unknown") == (r["unknown"] > saved["threshold"]) for r in known + odd)
    assert all(r["top"] and r["top"][0][0] in KNOWN for r in odd)  # the forced answer stays visible

    zipped = Predictor(zip_dir(model_dir, tmp_path / "m.zip", top="m"))  # the statistics travel in the zip
    assert zipped.unknown is not None and zipped.unknown.threshold == saved["threshold"]
    assert zipped.predict_many(val[:1])[0]["unknown"] == pytest.approx(known[0]["unknown"], rel=1e-4)

    low = Predictor(model_dir, unknown_threshold=-1.0)  # the override: every clip is unknown
    assert {r["label"] for r in low.predict_many(val[:2])} == {"unknown"}

    assert main(["predict", "--model", str(model_dir), str(val[0])]) == 0  # the CLI's JSON lines
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["unknown"] == pytest.approx(known[0]["unknown"], rel=1e-4) and line["label"] == known[0]["label"]
    assert main(["predict", "--model", str(model_dir), "--unknown-threshold", "-1", str(val[0])]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["label"] == "unknown" and line["unknown_threshold"] == -1 and line["top"][0][0] == known[0]["top"][0][0]

    class LogitsOnly:  # what the ONNX backend offers: logits, no embeddings
        mixes_clips = True

        def __init__(self, inner):
            self.logits = inner.logits

    maha = tmp_path / "maha_model"  # an embedding score, whatever the default is
    shutil.copytree(model_dir, maha, ignore=shutil.ignore_patterns("unknown*"))
    emb, _ = pred.backend.embed_logits([load_wav(p) for p in val])
    unknown.save(unknown.fit(emb, np.arange(len(val)) % 2, method="mahalanobis"), maha)
    onnx_like = Predictor(maha)
    onnx_like.backend = LogitsOnly(onnx_like.backend)
    onnx_like.unknown, onnx_like.unknown_note = onnx_like._load_unknown(None)
    assert onnx_like.unknown is None and "needs the model's embeddings" in onnx_like.unknown_note
    rows = onnx_like.predict_many(val[:2])
    assert all("unknown" not in r and r["label"] in KNOWN for r in rows)  # predicts as before, no score
    energy = unknown.set_threshold(unknown.UnknownStats(method="energy"), np.array([0.0]))
    unknown.save(energy, tmp_path / "energy_model")  # a logit score works without embeddings
    shutil.copytree(model_dir, tmp_path / "energy_model", dirs_exist_ok=True, ignore=shutil.ignore_patterns("unknown*"))
    onnx_like.folder = tmp_path / "energy_model"
    onnx_like.unknown, _ = onnx_like._load_unknown(None)
    assert onnx_like.predict_many(val[:1])[0]["unknown"] == pytest.approx(
        float(unknown.energy_score(onnx_like.backend.logits([load_wav(val[0])]))[0]), rel=1e-4)

    old = tmp_path / "old"  # an export from before the feature: today's rows exactly, and a note
    shutil.copytree(model_dir, old)
    (old / unknown.STATS_JSON).unlink()
    (old / unknown.STATS_NPZ).unlink()
    before = Predictor(old)
    rows = before.predict_many(val[:3])
    assert before.unknown is None and "before unknown scores" in before.unknown_note
    assert all("unknown" not in r and r["label"] in KNOWN for r in rows)
    assert [r["top"] for r in rows] == [r["top"] for r in known[:3]]


def test_a_run_without_validation_clips_scores_but_has_no_threshold(tmp_path, tiny_ast):
    from astapp.core.config import TrainConfig
    from astapp.data.dataset import build_dataset
    from astapp.training.embed import fit_unknown

    data = tmp_path / "tones"
    make_tone_classes(data, per_class=4, classes=KNOWN, seed=5)
    res = train(cfg_for(tmp_path / "run", tiny_ast, data, mode="frozen", epochs=1))

    bundle = build_dataset(str(data), tmp_path / "ws", TrainConfig().audio, 0.25, 0)
    split = bundle.dataset["train"]  # the pipeline's prepared split, with every clip training the model
    prep = SimpleNamespace(train_split=split, val_split=split.select([]), max_length=64,
                           train_labels=[int(x) for x in split["label"]], mean=res.metrics["mean"],
                           std=res.metrics["std"])
    summary = fit_unknown(res.model, prep, tmp_path / "feats", TrainConfig(), res.model_dir)
    assert summary["threshold"] is None and "No validation clips" in summary["reason"]
    pred = Predictor(res.model_dir)
    row = pred.predict_many([data / bundle.dataset["train"]["path"][0]])[0]
    assert row["unknown"] is not None and row["unknown_threshold"] is None and row["label"] in KNOWN
    assert "No validation clips" in pred.unknown_note


def test_frozen_mode_fits_the_unknown_score_on_its_cached_pass(tmp_path, tiny_ast, monkeypatch):
    """Mode frozen runs no second forward pass for the unknown score (its one-off fp32 pass already has every
    pooled embedding), and fits exactly the statistics a forward pass over the same clips gives."""
    from astapp.core.config import TrainConfig
    from astapp.data.dataset import build_dataset
    from astapp.training import embed

    data = tmp_path / "tones"
    make_tone_classes(data, per_class=8, classes=KNOWN, seed=6)
    calls = []
    real = embed.embed_rows
    monkeypatch.setattr(embed, "embed_rows", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = train(cfg_for(tmp_path / "run", tiny_ast, data, mode="frozen", epochs=1, int8_pass=False))
    assert res.state == "finished" and calls == []
    saved = unknown.load(res.model_dir)
    assert saved.threshold is not None and len(saved.calibration["known"]) == res.metrics["num_validation"]

    bundle = build_dataset(str(data), tmp_path / "ws", TrainConfig().audio, 0.25, 0)  # the run's split
    split = bundle.dataset
    prep = SimpleNamespace(train_split=split["train"], val_split=split["validation"], max_length=64,
                           train_labels=[int(x) for x in split["train"]["label"]], mean=res.metrics["mean"],
                           std=res.metrics["std"])
    (tmp_path / "fresh").mkdir()
    fresh = fit_unknown_by_forward_pass(res.model, prep, tmp_path)
    assert calls, "the reference ran the forward pass"
    assert fresh["threshold"] == pytest.approx(saved.threshold, rel=1e-4)
    np.testing.assert_allclose(fresh["calibration"]["known"], saved.calibration["known"], rtol=1e-4, atol=1e-5)


def fit_unknown_by_forward_pass(model, prep, tmp_path):
    from astapp.core.config import TrainConfig
    from astapp.training.embed import fit_unknown

    return fit_unknown(model, prep, tmp_path / "feats", TrainConfig(), tmp_path / "fresh")
