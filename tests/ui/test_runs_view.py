"""The Evaluate tab's Runs accordion through gradio_client: three real tiny runs of one client, sorted, compared
(only the changed settings), renamed, made the default for Predict and deleted; another client sees none of them."""

from __future__ import annotations

import pytest
from app_helpers import call, client, launched
from gradio_client.exceptions import AppError
from train_helpers import cfg_for, one_thread  # noqa: F401 - autouse fixture

from astapp.jobs.manager import JobManager
from astapp.jobs.record import RunRecord, run_job
from astapp.jobs.sessions import Session

pytestmark = pytest.mark.slow  # three real tiny trainings (~30 s on a shared CPU)
TRIO = {"r1": {}, "r2": {"lr": 5e-3}, "r3": {"epochs": 2}}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("runsapp")
    manager = JobManager(root=root)
    with launched(manager) as url:
        yield url, root
    manager.shutdown(timeout=10)


def test_runs_table_compare_rename_default_delete(app, tiny_ast, small_dataset):
    url, root = app
    c, other = client(url), client(url)
    owner = Session.open(c.session_hash, root).owner
    for rid, over in TRIO.items():
        out = root / "runs" / owner / rid
        cfg = cfg_for(out, tiny_ast, small_dataset, **{"mode": "frozen", "epochs": 1, **over})
        RunRecord(out, enabled=True).create(cfg, f"run {rid}", owner)
        run_job(cfg)

    sort, table, chosen, _target = call(c, api_name="/runs_table")
    assert sort == "created" and [row[0] for row in table["data"]] == ["r3", "r2", "r1"]
    _, table, *_ = call(c, "name", api_name="/runs_sort")
    assert [row[0] for row in table["data"]] == ["r1", "r2", "r3"]
    assert all(row[2] == "finished" and row[5] == "frozen" for row in table["data"])

    note, diff, _plot = call(c, ["r1", "r2"], "f1_macro", api_name="/runs_compare")
    assert [row[0] for row in diff["data"]] == ["lr"] and "1 setting" in note
    _, diff, _ = call(c, ["r1", "r2", "r3"], "accuracy", api_name="/runs_compare")
    assert sorted(row[0] for row in diff["data"]) == ["epochs", "lr"]
    assert call(c, api_name="/runs_table")[0] == "name"  # the sort survives a reload (kept server-side)

    _, table, *_ = call(c, "r2", "fast lr", False, api_name="/runs_rename")
    assert {row[0]: row[1] for row in table["data"]}["r2"] == "fast lr"
    _, table, *_ = call(c, "r1", "", False, api_name="/runs_default")
    assert {row[0]: row[-1] for row in table["data"]} == {"r1": "✓", "r2": "", "r3": ""}

    with pytest.raises(AppError, match="cannot be undone"):
        call(c, "r3", "", False, api_name="/runs_delete")
    call(c, ["r1", "r3"], "f1_macro", api_name="/runs_compare")  # r3 is being compared when it is deleted
    _, table, chosen, _ = call(c, "r3", "", True, api_name="/runs_delete")
    assert sorted(row[0] for row in table["data"]) == ["r1", "r2"] and not (root / "runs" / owner / "r3").exists()
    assert chosen["value"] == ["r1"]  # the comparison drops the deleted run (the service names it: tests/jobs/test_compare)

    assert call(other, api_name="/runs_table")[1]["data"] in ([], [[""] * 16], [[None] * 16])
    with pytest.raises(AppError, match="no run"):
        call(other, "r1", "mine", False, api_name="/runs_rename")
