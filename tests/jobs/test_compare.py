"""Runs side by side: three real tiny runs, the table, its sort, exactly the changed settings, the split check,
curves, rename / delete / default and owners who never see each other's runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import cfg_for, one_thread  # noqa: F401 - autouse fixture

from astapp.core.errors import AccessError, UploadError
from astapp.jobs import compare
from astapp.jobs.manager import JobManager
from astapp.jobs.record import RunRecord, run_job
from astapp.jobs.sessions import Session
from astapp.service.runs import Runs, compare_runs, runs_in_folder
from astapp.service.state import StateStore

pytestmark = pytest.mark.slow  # four real (tiny) trainings: ~40 s on a shared CPU
ALICE, BOB = "alice-token-0001", "bob-token-00002"
TRIO = {"r1-base": {}, "r2-lr": {"lr": 5e-3}, "r3-epochs-wd": {"epochs": 2, "weight_decay": 0.01}}


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_ast, small_dataset) -> Path:
    """Three real frozen tiny runs of one owner (one setting changed in the 2nd, two in the 3rd), one of another."""
    root = tmp_path_factory.mktemp("runsroot")
    owners = [Session.open(t, root).owner for t in (ALICE, BOB)]
    for owner, runs in ((owners[0], TRIO), (owners[1], {"b1": {}})):
        for rid, over in runs.items():
            out = root / "runs" / owner / rid
            cfg = cfg_for(out, tiny_ast, small_dataset, **{"mode": "frozen", "epochs": 1, **over})
            RunRecord(out, enabled=True).create(cfg, rid, owner)
            run_job(cfg)
    return root


@pytest.fixture
def part(root, tmp_path):
    jm = JobManager(root)
    yield Runs(jm, StateStore()), Session.open(ALICE, root), Session.open(BOB, root)
    jm.shutdown(timeout=5)


def test_rows_read_scores_settings_size(root):
    rows = runs_in_folder(root / "runs" / Session.open(ALICE, root).owner)
    assert {r.id for r in rows} == set(TRIO)
    for r in rows:
        assert r.state == "finished" and r.mode == "frozen" and r.task == "train"
        assert r.dataset == "sounds" and 0 <= r.accuracy <= 1 and 0 <= r.f1_macro <= 1
        assert r.train_seconds and r.train_seconds > 0 and r.size_mb > 0.01
        assert r.settings["lr"] == {"r2-lr": 5e-3}.get(r.id, 1e-3)
    assert compare.sort_rows(rows, "name", descending=False)[0].id == "r1-base"
    by_f1 = compare.sort_rows(rows, "f1_macro")
    assert [r.f1_macro for r in by_f1] == sorted((r.f1_macro for r in rows), reverse=True)


def test_diff_is_exactly_the_changed_settings(root):
    rows = {r.id: r for r in runs_in_folder(root / "runs" / Session.open(ALICE, root).owner)}
    assert set(compare_runs([rows["r1-base"], rows["r2-lr"]]).differing) == {"lr"}
    cmp = compare_runs([rows["r1-base"], rows["r3-epochs-wd"]])
    assert cmp.differing == {"epochs": {"r1-base": 1, "r3-epochs-wd": 2},
                             "weight_decay": {"r1-base": 0.0, "r3-epochs-wd": 0.01}}
    assert cmp.comparable and "same settings" not in cmp.note()
    assert set(compare_runs(list(rows.values())).differing) == {"lr", "epochs", "weight_decay"}


def test_other_split_is_not_comparable(root):
    a, b = (compare.row_of(root / "runs" / Session.open(ALICE, root).owner / rid) for rid in ("r1-base", "r2-lr"))
    b.config = {**b.config, "val_split": 0.3}
    cmp = compare_runs([a, b])
    assert not cmp.comparable and "Not comparable" in cmp.note()
    assert compare.split_groups([a, b]) == {a.id: 1, b.id: 2}


def test_curves_from_history(root):
    xs, ys = compare.curve(root / "runs" / Session.open(ALICE, root).owner / "r3-epochs-wd", "accuracy")
    assert xs == [1.0, 2.0] and all(0 <= y <= 1 for y in ys)
    assert compare.curve(root / "nowhere") == ([], [])


def test_owner_sees_only_own_runs(part):
    runs, alice, bob = part
    assert {r.id for r in runs.table(alice)} == set(TRIO)
    assert [r.id for r in runs.table(bob)] == ["b1"]
    cmp = runs.compare(bob, ["r1-base", "b1"])
    assert [r.id for r in cmp.rows] == ["b1"] and cmp.missing == ["r1-base"]
    with pytest.raises(AccessError):
        runs.rename(bob, "r1-base", "mine now")
    with pytest.raises(AccessError):
        runs.delete(bob, "r1-base", confirmed=True)
    with pytest.raises(AccessError):
        runs.set_default(bob, "r1-base")


def test_rename_default_delete(part, root, tiny_ast, small_dataset):
    runs, alice, _ = part
    runs.rename(alice, "r2-lr", "  faster   lr ")
    assert {r.id: r.name for r in runs.table(alice)}["r2-lr"] == "faster lr"
    with pytest.raises(UploadError, match="1 to 80 characters"):
        runs.rename(alice, "r2-lr", "   ")
    # a throwaway run to delete (the module's trio stays for the other tests)
    out = root / "runs" / Session.open(ALICE, root).owner / "r9-gone"
    cfg = cfg_for(out, tiny_ast, small_dataset, mode="frozen", epochs=1)
    RunRecord(out, enabled=True).create(cfg, "gone", alice.owner)
    run_job(cfg)
    runs.set_default(alice, "r9-gone")
    assert runs.default_run(alice) == "r9-gone"
    with pytest.raises(UploadError, match="cannot be undone"):
        runs.delete(alice, "r9-gone", confirmed=False)
    assert out.is_dir()
    runs.delete(alice, "r9-gone", confirmed=True)
    assert not out.exists() and runs.default_run(alice) is None
    cmp = runs.compare(alice, ["r1-base", "r9-gone"])
    assert cmp.missing == ["r9-gone"] and "deleted" in cmp.note()
