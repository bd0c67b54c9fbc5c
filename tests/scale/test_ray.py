"""Real Ray on this machine (one local Ray for the module, 2 CPUs): the same records as one process, and a
worker killed with SIGKILL mid-job costs only its in-flight file, computed again; nothing written twice."""

from __future__ import annotations

import os
import signal

import pytest
from scale_helpers import export_tiny, recordings

from astapp.scale.records import RecordFolder
from astapp.scale.runner import run_files
from astapp.scale.scores import ScoreJob

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a local Ray starts in 10-40 s on the shared 2-core machine


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tiny_ast, tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    model = export_tiny(tiny_ast, root / "model")
    files = recordings(root / "rec", 8, 20.0)
    plain = run_files(ScoreJob(str(model)), files, str(root / "plain"))
    assert plain.done == 8 and list(plain.failed) == [files[0]]  # broken.wav
    return model, files, RecordFolder(root / "plain").merge(files).read_bytes()


def test_two_ray_workers_give_the_single_process_records(setup, tmp_path):
    model, files, expected = setup
    events = []
    summary = run_files(ScoreJob(str(model)), files, str(tmp_path), ray="", workers=2, events=events.append)
    assert (summary.workers, summary.done, list(summary.failed)) == (2, 8, [files[0]])
    assert {e["worker"] for e in events} == {0, 1}  # both did work
    assert RecordFolder(tmp_path).merge(files).read_bytes() == expected


def test_a_killed_worker_loses_only_its_file_which_runs_again(setup, tmp_path):
    model, files, expected = setup
    pids: list[int] = []
    killed: list[tuple[int, str]] = []
    events = []

    def on_progress(event):
        events.append(event)
        if not killed:  # the other worker is busy with its file: kill it there
            victim = 1 - event["worker"]
            os.kill(pids[victim], signal.SIGKILL)
            killed.append((victim, event["file"]))

    summary = run_files(ScoreJob(str(model)), files, str(tmp_path), ray="", workers=2, events=on_progress,
                        on_workers=lambda pool: pids.extend(ray.get([a.pid.remote() for a in pool])))
    assert killed and (summary.done, list(summary.failed)) == (8, [files[0]])
    with pytest.raises(ProcessLookupError):
        os.kill(pids[killed[0][0]], 0)  # it really died
    assert sorted(e["file"] for e in events) == files  # every file recorded exactly once
    assert not [p for p in (tmp_path / "files").iterdir() if p.suffix != ".json"]  # no half-written record
    assert RecordFolder(tmp_path).merge(files).read_bytes() == expected
    rerun = run_files(ScoreJob(str(model)), files, str(tmp_path), ray="", workers=2)
    assert (rerun.skipped, rerun.done) == (8, 0)  # only broken.wav is tried again
