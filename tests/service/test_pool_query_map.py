"""Search the pool by a clip of the labelled dataset, and the pool on the embedding map (click to hear)."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from fake_train import make_fake_train
from pool_helpers import CLASSES, class_of

from astapp.core.errors import AccessError
from astapp.data.synth import make_tone_classes
from astapp.evaluation.figures import MAP_PAD
from astapp.jobs.manager import JobManager
from astapp.service import Service
from astapp.service.pool_map import MAP_FILE, map_rows

pytest_plugins = ["pool_helpers"]


@pytest.fixture
def svc(tmp_path):
    manager = JobManager(tmp_path / "data", train_fn=make_fake_train(steps=2, hold=threading.Event()))
    yield Service(manager, hub_online=False)
    manager.shutdown(timeout=5)


@pytest.fixture
def sess(svc, built_pool):
    s = svc.open("owner-token-pool-map")
    shutil.copytree(built_pool, svc.pooling.folder(s))
    return s


@pytest.mark.slow
def test_a_clip_of_the_labelled_dataset_finds_its_class(svc, sess, tmp_path):
    folder = tmp_path / "labelled"
    make_tone_classes(folder, per_class=2, seconds=1.5, seed=11, classes=CLASSES)  # like the pool
    svc.datasets.choose(sess, svc.datasets.inspect("tones", "upload", folder, sess.workspace))
    choices = svc.datasets.clip_choices(sess)
    for name in ("high", "top"):
        clip = next(c for c in choices if c.startswith(f"{name}/"))
        hits, note = svc.pooling.search(sess, dataset_clip=clip, k=4)
        assert class_of(hits[0]["file"]) == name and "longer than the model's window" in note  # 1.5 s: cut
    with pytest.raises(AccessError):
        svc.pooling.search(sess, dataset_clip="../../pool/pool.json")


def _pixel(xy: np.ndarray, size: tuple[int, int]) -> tuple[float, float]:
    span = 1 + 2 * MAP_PAD
    return (xy[0] + MAP_PAD) / span * size[0], (1 + MAP_PAD - xy[1]) / span * size[1]


@pytest.mark.slow
def test_the_pool_on_the_map_recolours_with_labels_and_a_click_finds_the_window(svc, sess):
    pool = svc.pooling.pool(sess)
    before, caption = svc.pooling.map(sess)
    assert before.ndim == 3 and f"all {len(pool)} windows" in caption
    assert (svc.pooling.folder(sess) / MAP_FILE).is_file()
    highs = [i for i, w in enumerate(pool.windows) if class_of(w.file) == "high"]
    svc.pooling.label(sess, highs, "high")
    after, _ = svc.pooling.map(sess)
    assert after.shape == before.shape and (after != before).any()  # the labelled windows changed colour

    from astapp.service.pool_map import placed

    rows, xy, _ = placed(pool)
    target = highs[2]
    px, py = _pixel(xy[list(rows).index(target)], (after.shape[1], after.shape[0]))
    got = svc.pooling.map_click(sess, px, py, after.shape[1], after.shape[0])
    assert np.allclose(xy[list(rows).index(got)], xy[list(rows).index(target)], atol=2 / after.shape[0])
    ringed, _ = svc.pooling.map(sess, got)
    assert (ringed != after).any()


def test_a_big_pool_is_mapped_by_an_even_sample():
    rows = map_rows(100_000, limit=1500)
    assert len(rows) == 1500 and rows[0] == 0 and rows[-1] == 99_999 and (np.diff(rows) > 0).all()
    assert (map_rows(40, limit=1500) == np.arange(40)).all()
