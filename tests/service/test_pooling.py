"""The session's pool through the Service: build, search, label, label next, restart, use the labels."""

from __future__ import annotations

import csv
import shutil
import threading

import pytest
from fake_train import make_fake_train
from pool_helpers import CLASSES, class_of, tone

from astapp.core.errors import UploadError
from astapp.data.folds import grouped_holdout, source_groups
from astapp.data.synth import write_wav
from astapp.jobs.manager import JobManager
from astapp.pool.labels import NONE
from astapp.service import Service

pytest_plugins = ["pool_helpers"]  # the fixtures pool_data and built_pool, shared by the session


@pytest.fixture
def svc(tmp_path):
    manager = JobManager(tmp_path / "data", train_fn=make_fake_train(steps=2, hold=threading.Event()))
    yield Service(manager, hub_online=False)
    manager.shutdown(timeout=5)

@pytest.mark.slow
def test_the_pool_loop_survives_a_restart_and_becomes_the_dataset(svc, built_pool, pool_data, tiny_ast, tmp_path):
    s = svc.open("owner-token-pool-1")
    with pytest.raises(UploadError, match="pool is empty"):
        svc.pooling.start_build(s, str(tiny_ast), wait=True)
    assert svc.pooling.summary(s)["ready"] is False
    # the build runs where the app runs it (background thread); here we take the session's copy of a built pool
    svc.pooling.add_sources(s, [pool_data / "top" / "top_000.wav"])
    status = svc.pooling.start_build(s, str(tiny_ast), hop=0.5)
    for _ in range(600):
        if not status.running:
            break
        threading.Event().wait(0.1)
    assert status.error == "" and "Pool: " in status.message and svc.pooling.has_pool(s)
    shutil.rmtree(svc.pooling.folder(s))
    shutil.copytree(built_pool, svc.pooling.folder(s))

    pool = svc.pooling.pool(s)
    windows = pool.windows
    query = tmp_path / "q.wav"
    write_wav(query, tone(CLASSES["high"], 1.2, 7))
    hits, note = svc.pooling.search(s, clip=query, k=6)
    assert note == "" and class_of(hits[0]["file"]) == "high" and {"file", "start", "end", "score"} <= set(hits[0])
    by_class = {c: [i for i, w in enumerate(windows) if class_of(w.file) == c] for c in CLASSES}
    text = svc.pooling.label(s, by_class["low"][:6], "low")
    assert text == "Labelled 6 window(s) 'low'."
    svc.pooling.label(s, by_class["high"][:4], "high")
    text = svc.pooling.label(s, [by_class["high"][0]], "top")
    assert "was 'high'" in text and "latest label wins" in text
    assert svc.pooling.undo(s) == "Undid the last labelling (1 window(s))."
    svc.pooling.label(s, by_class["top"][:4], "top")
    svc.pooling.label(s, [by_class["top"][5]], NONE)
    hits, _ = svc.pooling.search(s, window=by_class["low"][0], k=3)
    assert by_class["low"][0] not in [h["index"] for h in hits]

    again = Service(JobManager(svc.root, train_fn=make_fake_train(), start=False), hub_online=False)  # a restart
    s2 = again.open("owner-token-pool-1")
    summary = again.pooling.summary(s2, selected_model=str(tiny_ast))
    assert summary["counts"] == {NONE: 1, "high": 4, "low": 6, "top": 4} and summary["model_note"] is None
    rnd, rows = again.pooling.next_round(s2, n=5, strategy="mix")
    assert len(rows) == 5 and rnd.labels_used == 14 and rnd.cv_accuracy is not None
    assert rnd.message == "Not in the head yet (fewer than 2 labels): (none of these)."
    given = set(by_class["low"][:6] + by_class["high"][:4] + by_class["top"][:4] + [by_class["top"][5]])
    assert not {r["index"] for r in rows} & given

    view = again.pooling.use_labels(s2)
    assert view.trainable and sorted(view.labels) == ["high", "low", "top"]
    assert again.datasets.current(s2).root == view.root
    counts = {c["name"]: c["clips"] for c in view.report["classes"]}
    assert counts == {"high": 4, "low": 6, "top": 4}
    with open(f"{view.root}/labels.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {"file", "label", "source", "start", "end", "labelled_at"} <= set(rows[0])
    groups = source_groups([r["file"] for r in rows])
    by_source = {}
    for r, g in zip(rows, groups.ids, strict=True):
        by_source.setdefault(r["source"], set()).add(g)
    assert groups.grouped and all(len(g) == 1 for g in by_source.values())
    assert len({g for gs in by_source.values() for g in gs}) == len(by_source)
    train, val = grouped_holdout([r["label"] for r in rows], groups.ids, 0.3, 0)
    assert not {groups.ids[i] for i in train} & {groups.ids[i] for i in val}
    zip_path, csv_path = again.pooling.download(s2)
    assert zip_path.is_file() and ",none," in csv_path.read_text()
