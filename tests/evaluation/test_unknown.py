"""The unknown score (issue 25): each candidate on synthetic embeddings, calibration, and the saved files."""

from __future__ import annotations

import numpy as np
import pytest

from astapp.core.errors import ModelLoadError
from astapp.evaluation import unknown


def gaussian_data(seed: int = 0, hidden: int = 16, per_class: int = 200):
    """Three known classes around separated centres, and an outlier cluster in a direction none uses."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, hidden))
    for c in range(3):
        centres[c, c] = 6.0
    labels = np.repeat(np.arange(3), per_class)
    train = centres[labels] + rng.standard_normal((len(labels), hidden))
    val_labels = np.repeat(np.arange(3), 50)
    val = centres[val_labels] + rng.standard_normal((len(val_labels), hidden))
    out_centre = np.zeros(hidden)
    out_centre[5] = 6.0
    other = out_centre + rng.standard_normal((100, hidden))
    w = np.eye(3, hidden) * 2.0  # a linear head: the logits of each clip

    return (train, labels), (val, val_labels), other, w


@pytest.mark.parametrize("method", unknown.METHODS)
def test_an_outlier_cluster_scores_higher_than_known_clips(method):
    (train, labels), (val, _), other, w = gaussian_data()
    stats = unknown.fit(train, labels, method=method)
    known = unknown.score(stats, val @ w.T, val)
    far = unknown.score(stats, other @ w.T, other)
    assert far.mean() > known.max() if method in unknown.EMBEDDING_METHODS else far.mean() > known.mean()
    assert unknown.auroc(known, far) > (0.99 if method in unknown.EMBEDDING_METHODS else 0.9)


def test_the_logit_scores_by_hand():
    logits = np.array([[10.0, 0.0], [0.0, 0.0]])
    assert unknown.msp_score(logits) == pytest.approx([1 / (1 + np.exp(10)), 0.5])
    assert unknown.energy_score(logits) == pytest.approx([-(10 + np.log1p(np.exp(-10))), -np.log(2)])


def test_the_threshold_keeps_the_chosen_share_of_known_clips():
    scores = np.random.default_rng(1).standard_normal(1000)
    for keep in (0.9, 0.95, 0.99):
        t = unknown.calibrate(scores, keep)
        assert abs((scores <= t).mean() - keep) < 0.005
    assert unknown.calibrate(np.array([]), 0.95) is None
    on_the_line = unknown.calibrate(np.array([1.0, 2.0, 12.394319368802435]), 1.0)
    assert 12.394319368802437 <= on_the_line < 12.3944  # the same clip scored again (last bits) stays known
    stats = unknown.set_threshold(unknown.UnknownStats(method="msp"), np.array([]), 0.95)
    assert stats.threshold is None and "No validation clips" in stats.reason


@pytest.mark.parametrize("method", unknown.METHODS)
def test_the_statistics_round_trip_through_their_files(tmp_path, method):
    (train, labels), (val, _), _, w = gaussian_data()
    stats = unknown.set_threshold(unknown.fit(train, labels, method=method, bank_size=64),
                                  unknown.score(unknown.fit(train, labels, method=method, bank_size=64),
                                                val @ w.T, val), 0.9)
    unknown.save(stats, tmp_path)
    back = unknown.load(tmp_path)
    assert back is not None and back.method == method and back.threshold == stats.threshold
    assert back.keep == 0.9 and back.known["count"] == len(val)
    assert np.allclose(unknown.score(back, val @ w.T, val), unknown.score(stats, val @ w.T, val), atol=1e-4)
    if method == "knn":
        assert back.arrays["bank"].shape == (64, train.shape[1])  # the bank is capped


def test_a_folder_without_statistics_or_with_broken_ones(tmp_path):
    assert unknown.load(tmp_path) is None
    (tmp_path / unknown.STATS_JSON).write_text("{not json")
    with pytest.raises(ModelLoadError, match="delete unknown.json"):
        unknown.load(tmp_path)


def test_an_embedding_score_needs_embeddings():
    (train, labels), _, _, _ = gaussian_data(hidden=8)
    with pytest.raises(ValueError, match="embeddings"):
        unknown.score(unknown.fit(train, labels, method="knn"), logits=np.zeros((2, 3)))
