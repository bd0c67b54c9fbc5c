"""Multi-label end to end: a manifest of mixed sounds -> BCE training -> mAP, tuned thresholds -> export
-> Predictor and the plain transformers pipeline returning every label over its threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import one_thread_fixture

from astapp.core.config import TrainConfig
from astapp.data.audio import load_audio
from astapp.data.synth import make_multilabel_dataset
from astapp.evaluation.multilabel import at_thresholds, mean_ap, tune_thresholds
from astapp.jobs.record import run_job

KINDS = ("noise", "chirp", "square")


one_thread = one_thread_fixture("astapp-cache-ml")  # autouse


def test_tuned_thresholds_beat_one_half_on_miscalibrated_scores():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 2)) < 0.4).astype(int)
    scores = np.where(y == 1, rng.uniform(0.25, 0.45, y.shape), rng.uniform(0.0, 0.2, y.shape))  # all under 0.5
    thresholds = tune_thresholds(y, scores)
    assert all(0.2 <= t <= 0.25 for t in thresholds)
    assert at_thresholds(y, scores, thresholds)["f1_macro"] == 1.0 > at_thresholds(y, scores, 0.5)["f1_macro"]
    assert mean_ap(y, scores) == (1.0, 1.0)


@pytest.mark.slow  # 12 epochs to a quality bar; the fast lane's multi-label run is test_multilabel_cli's
def test_mixed_sounds_train_to_high_map_and_predict_every_label(tmp_path, tiny_ast):
    data = make_multilabel_dataset(tmp_path / "mix", kinds=KINDS, per_combo=8, seconds=0.6, seed=3)
    cfg = TrainConfig.from_dict({"data": str(data), "model": str(tiny_ast), "output": str(tmp_path / "run"),
                                 "epochs": 12, "batch_size": 8, "lr": 1e-3, "max_length": 64, "seed": 0,
                                 "precision": "fp32"})
    result = run_job(cfg)
    assert result.state == "finished"
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["problem_type"] == "multi_label_classification" and m["selection_metric"] == "map"
    assert m["map"] >= 0.9, m["map"]
    assert m["f1_macro"] > m["f1_macro_at_0.5"]  # the tuned thresholds beat 0.5
    assert sorted(m["per_class"]) == sorted(KINDS) and all(0 < m["thresholds"][k] < 1 for k in KINDS)
    assert all(len(p["true"]) >= 1 for p in m["predictions"])

    model_dir = tmp_path / "run" / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["thresholds"] == m["thresholds"]
    from astapp.predict.predictor import Predictor

    pred = Predictor(model_dir)
    clip = data / m["predictions"][0]["path"]
    out = pred.predict(clip, top_k=3)
    expected = {k for k, p in m["predictions"][0]["probs"].items() if p >= m["thresholds"][k]}
    assert {lab for lab, _ in out.above} == expected
    row = pred.predict_many([clip])[0]
    assert set(filter(None, row["label"].split(";"))) == expected

    from transformers import pipeline

    clf = pipeline("audio-classification", model=str(model_dir), function_to_apply="sigmoid", top_k=3)
    got = {r["label"]: r["score"] for r in clf({"raw": load_audio(clip), "sampling_rate": 16_000})}
    assert got == pytest.approx(dict(out.top), abs=2e-3)  # plain transformers gives the same sigmoid scores


def test_mixup_and_specaugment_keep_multi_hot_targets():
    """The training collator mixes multi-hot rows (not one-hot of an id) and BCE takes the soft result."""
    from astapp.evaluation.multilabel import bce_loss
    from astapp.training.trainer_utils import Collator

    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32)
    items = [{"input_values": torch.randn(64, 128), "labels": targets[i]} for i in range(4)]
    batch = Collator(3, freq_mask=8, time_mask=8, mixup=0.4, seed=0)(items)
    soft = batch["labels"]
    assert soft.shape == (4, 3) and soft.dtype == torch.float32
    assert float(soft.min()) >= 0.0 and float(soft.max()) <= 1.0 and not torch.equal(soft, torch.from_numpy(targets))
    plain = Collator(3)(items)["labels"]
    assert torch.equal(plain, torch.from_numpy(targets))  # evaluation: the 0/1 rows as they are
    loss = bce_loss(torch.zeros(4, 3), soft)
    assert abs(float(loss) - float(np.log(2))) < 1e-6  # zero logits: BCE is log 2 whatever the targets
