"""Labels (time, undo, latest wins, restart), label next (head, proposals, CV) and the simulation."""

from __future__ import annotations

import numpy as np
import pytest

from astapp.pool.active import STRATEGIES, cv_accuracy, next_round, propose
from astapp.pool.labels import NONE, SKIP, LabelStore
from astapp.pool.simulate import simulate
from astapp.pool.windows import PoolError


def test_labels_keep_time_latest_wins_undo_and_survive_a_restart(tmp_path):
    store = LabelStore(tmp_path)
    assert store.add(["a|0.000", "b|0.000"], "dog") == []
    changes = store.add(["b|0.000", "c|0.000"], "cat")
    assert [(c.key, c.old, c.new) for c in changes] == [("b|0.000", "dog", "cat")]
    store.add(["d|0.000"], SKIP)
    again = LabelStore(tmp_path)  # a restart: only the file
    assert again.labelled() == {"a|0.000": "dog", "b|0.000": "cat", "c|0.000": "cat"}
    assert again.current()["d|0.000"] == SKIP
    assert all(e["time"].endswith("Z") for e in again.log())
    assert again.undo() == 1 and again.undo() == 2  # the skip, then both windows of the "cat" act
    assert again.labelled() == {"a|0.000": "dog", "b|0.000": "dog"}
    assert again.counts() == {"dog": 2}
    for bad in ("", "a/b", ".hidden", "x" * 65):
        with pytest.raises(PoolError, match="cannot be a class name"):
            store.add(["a|0.000"], bad)
    store.add(["e|0.000"], NONE)
    assert store.labelled()["e|0.000"] == NONE


def _blobs(n_per: int = 60, classes: int = 3, dim: int = 16, spread: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 2.2
    x = np.concatenate([c + rng.standard_normal((n_per, dim)) * spread for c in centres])
    y = np.repeat([f"c{i}" for i in range(classes)], n_per)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16), y


def test_next_round_spreads_first_then_proposes_unlabelled_windows_with_cv():
    x, y = _blobs()
    groups = np.repeat(np.arange(36), 5)
    first = next_round(x, {0: "c0"}, groups, n=6)
    assert first.message.startswith("Label at least") and len(first.proposals) == 6 and 0 not in first.proposals
    labelled = {i: str(y[i]) for i in [0, 1, 2, 60, 61, 62, 120, 121, 122]}
    for strategy in STRATEGIES:
        rnd = next_round(x, labelled, groups, n=8, strategy=strategy, exclude={3})
        assert len(rnd.proposals) == 8 and not set(rnd.proposals) & (set(labelled) | {3})
        assert rnd.labels_used == 9 and rnd.classes == ["c0", "c1", "c2"] and rnd.cv_folds == 3
        assert 0.0 <= rnd.cv_accuracy <= 1.0
    mix = next_round(x, labelled, groups, n=8, strategy="mix")
    assert {"uncertain", "likely c0", "likely c1", "likely c2"} <= set(mix.reasons)
    pos = next_round(x, labelled, groups, n=6, strategy="positives")
    assert all(str(y[i]) == r.removeprefix("likely ") for i, r in zip(pos.proposals, pos.reasons, strict=True))


def test_margin_picks_the_most_uncertain_and_cv_needs_two_per_class():
    p = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.5, 0.5]])
    assert propose(p, ["a", "b"], np.arange(4), 2, "margin")[0] == [3, 1]
    assert cv_accuracy(np.zeros((3, 2)), np.array(["a", "a", "b"]), np.arange(3)) == (None, 0)


def test_diverse_spreads_the_uncertain_picks_over_the_map():
    # windows 0-3 are the most uncertain but the same spot (near-duplicates); 4-5 are a little less uncertain
    # and elsewhere: margin takes three duplicates, diverse one duplicate and the two other spots
    emb = np.array([[1, 0], [1, 0.01], [1, 0.02], [1, 0.03], [0, 1], [-1, 0], [0.7, 0.7]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    p = np.array([[0.5, 0.5]] * 4 + [[0.55, 0.45], [0.6, 0.4], [0.95, 0.05]])
    assert propose(p, ["a", "b"], np.arange(7), 3, "margin")[0] == [0, 1, 2]
    picks, why = propose(p, ["a", "b"], np.arange(7), 3, "diverse", emb)
    assert picks == [0, 5, 4] and why == ["uncertain, spread"] * 3


def line_classes(n: int = 240, classes: int = 4, dims: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Classes as adjacent stretches of one direction (plus noise dims): where each boundary lies is what the
    labels must find, the textbook case where uncertainty sampling saves labels."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, classes, n)
    x = np.c_[t - classes / 2, rng.standard_normal((n, dims - 1)) * 0.3]
    return x.astype(np.float32), np.array([f"c{int(v)}" for v in t])


@pytest.mark.slow
def test_margin_needs_fewer_labels_than_random_on_generated_data():
    x, y = line_classes()
    out = simulate(x, y, seeds=[0, 1], batch=8, start_per_class=2)
    assert out["ratio_margin_to_random"] is not None and out["ratio_margin_to_random"] < 1.0
    for s in out["seeds"]:
        m, r = s["curves"]["margin"], s["curves"]["random"]
        assert m["labels"][0] == r["labels"][0] == 8 and m["labels"][-1] == r["labels"][-1] == s["pool"]
