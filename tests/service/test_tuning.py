"""Find good settings through the service: a search queued like a run, read back from its folder, then its best
settings trained as a normal run; out-of-range trial counts are one sentence."""

from __future__ import annotations

import json
import shutil

import pytest
from train_helpers import one_thread  # noqa: F401 - autouse fixture

from astapp.core.errors import TrainingError
from astapp.jobs.manager import JobManager
from astapp.service import Service


@pytest.fixture
def svc_session(tmp_path, tiny_ast, small_dataset):
    manager = JobManager(tmp_path / "root")
    svc = Service(manager, hub_online=False)
    sess = svc.open("tuner-token-0001")
    upload = shutil.make_archive(str(tmp_path / "sounds"), "zip", small_dataset.parent, small_dataset.name)
    svc.datasets.upload(sess, upload)
    values = {**svc.training.form_defaults(str(tiny_ast)), "model": str(tiny_ast), "mode": "frozen",
              "max_length": 64, "val_split": 0.2}
    yield svc, sess, values
    manager.shutdown(timeout=10)


def test_bad_counts_are_refused(svc_session):
    svc, sess, values = svc_session
    for trials in (0, 5000):
        with pytest.raises(TrainingError, match="from 1 to 1000"):
            svc.tuning.start(sess, values, trials)
    assert svc.tuning.view(sess).run_id is None and svc.runs(sess) == []


@pytest.mark.slow
def test_search_then_train_the_best(svc_session):
    svc, sess, values = svc_session
    run_id = svc.tuning.start(sess, values, 3)
    assert svc.manager.wait(run_id, timeout=300) == "finished"
    v = svc.tuning.view(sess)
    assert v.run_id == run_id and v.state == "finished" and len(v.trials) == 3 and v.planned == 3
    assert v.best is not None and v.default_value is not None and v.test["clips"] > 0 and v.message
    assert len(v.best_so_far()) == 3
    doc = json.loads((svc.manager.get_run(sess.owner, run_id).path / "tune.json").read_text())
    child = svc.tuning.train_best(sess)
    cfg = json.loads((svc.manager.get_run(sess.owner, child).path / "config.json").read_text())
    chosen = doc["default"]["params"] if doc["kept_default"] else doc["best"]["params"]
    assert cfg["task"] == "train" and cfg["lr"] == chosen["lr"] and cfg["epochs"] == chosen["epochs"]
    assert cfg["head_dropout"] == chosen["head_dropout"] and cfg["augment"]["mixup"] == chosen["augment.mixup"]
    assert svc.manager.wait(child, timeout=300) == "finished"
    rows = {r.id: r for r in svc.runs_table.table(sess)}
    assert rows[run_id].task == "tune" and rows[child].task == "train"
