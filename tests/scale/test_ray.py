"""Real Ray on this machine (one local Ray for the module, 2 CPUs): `detect --ray` gives the single-process
records and events, and a worker killed with SIGKILL mid-job costs only its in-flight file, done again."""

from __future__ import annotations

import os
import signal

import pytest
from scale_helpers import export_tiny, recordings, records
from train_helpers import one_thread  # noqa: F401 - autouse: one torch thread, shared cache

from astapp.detection.detect import DetectSettings
from astapp.detection.run import detect_files
from astapp.scale.detect import detect_on_ray

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a local Ray starts in 10-40 s on the shared 2-core machine
SETTINGS = DetectSettings(threshold=0.34)  # the random tiny model's scores hover around 1/3: some events


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def plain(tiny_ast, tmp_path_factory):
    """The single-process run (one torch thread, as each Ray worker gets) of 6 recordings and a broken file."""
    root = tmp_path_factory.mktemp("scale")
    model, folder = export_tiny(tiny_ast, root / "model"), recordings(root / "rec", 6, 20.0)
    summary = detect_files(model, [folder], root / "plain", SETTINGS, threads=1)
    assert len(summary.done) == 7 and [n for n, _ in summary.failed] == ["broken.wav"] and summary.events > 0
    return model, folder, root / "plain"


def test_two_ray_workers_give_the_single_process_records_and_events(plain, tmp_path):
    model, folder, expected = plain
    summary = detect_on_ray(model, [folder], tmp_path, SETTINGS, threads=1, ray="", workers=2)
    assert len(summary.done) == 7 and [n for n, _ in summary.failed] == ["broken.wav"]
    assert (tmp_path / "events.csv").read_bytes() == (expected / "events.csv").read_bytes()
    assert records(tmp_path) == records(expected)
    again = detect_on_ray(model, [folder], tmp_path, SETTINGS, threads=1, ray="", workers=2)
    assert (len(again.skipped), again.done) == (6, ["broken.wav"])  # only the failed file is tried again


def test_a_killed_worker_loses_only_its_file_which_runs_again(plain, tmp_path):
    model, folder, expected = plain
    pids: list[int] = []
    seen: list[str] = []

    def on_progress(event):
        if not seen:  # one worker just handed its file back; the other is busy with its own: kill both
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        seen.append(event["file"])

    summary = detect_on_ray(model, [folder], tmp_path, SETTINGS, events=on_progress, threads=1, ray="", workers=2,
                            on_workers=lambda pool: pids.extend(ray.get([a.pid.remote() for a in pool])))
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # both really died
    assert len(summary.done) == 7 and sorted(seen) == sorted(summary.done)  # every record written once
    assert not [p for p in (tmp_path / "records").iterdir() if p.name.startswith(".")]  # no half-written file
    assert (tmp_path / "events.csv").read_bytes() == (expected / "events.csv").read_bytes()
    assert records(tmp_path) == records(expected)
