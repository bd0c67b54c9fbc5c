"""Real Ray on this machine (one local Ray for the module, 2 CPUs): `detect --ray` gives the single-process
records and events, `pool --ray` the single-process pool, and a worker killed with SIGKILL mid-job costs
only its in-flight file, done again."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from scale_helpers import export_tiny, recordings, records
from train_helpers import one_thread  # noqa: F401 - autouse: one torch thread, shared cache

from astapp.detection.detect import DetectSettings
from astapp.detection.run import detect_files
from astapp.scale.detect import detect_on_ray
from astapp.scale.pool import pool_on_ray

ray = pytest.importorskip("ray")
pytest_plugins = ["pool_helpers"]  # pool_data and built_pool: the single-process pool of the pool tests
pytestmark = pytest.mark.slow  # a local Ray starts in 10-40 s on the shared 2-core machine
SETTINGS = DetectSettings(threshold=0.34)  # the random tiny model's scores hover around 1/3: some events


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    for attempt in range(3):  # Ray gives its raylet 30 s to start; a shared 2-core machine at load 25 can miss that
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
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


def same_pool(a, b) -> None:
    assert (a / "windows.csv").read_bytes() == (b / "windows.csv").read_bytes()
    assert np.array_equal(np.load(a / "embeddings.npy"), np.load(b / "embeddings.npy"))
    meta, expected = (json.loads((p / "pool.json").read_text()) for p in (a, b))
    keys = ("windows", "dim", "files", "failed", "pass", "hop_seconds", "model_identity")
    assert {k: meta[k] for k in keys} == {k: expected[k] for k in keys}


def test_pool_on_two_ray_workers_is_the_single_process_pool_even_when_they_are_killed(built_pool, pool_data,
                                                                                       tiny_ast, tmp_path):
    pids: list[int] = []
    embedded: list[str] = []

    def progress(fraction, message):
        if message.startswith("Embedded "):  # the driver wrote one file's cache entry
            if not embedded:  # one worker just handed its file back; the other is busy with its own: kill both
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
            embedded.append(message.split(" on Ray")[0])

    meta = pool_on_ray(pool_data, str(tiny_ast), tmp_path, hop=0.5, progress=progress, ray="", workers=2, threads=1,
                       on_workers=lambda pool: pids.extend(ray.get([a.pid.remote() for a in pool])))
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # both really died
    assert len(pids) == 2 and meta["embedded_files"] == 19 and len(embedded) == len(set(embedded)) == 19
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no half-written entry
    same_pool(tmp_path, built_pool)
    again = pool_on_ray(pool_data, str(tiny_ast), tmp_path, hop=0.5, ray="", workers=2)
    assert again["embedded_files"] == 0  # all cached: nothing embedded (one worker starts, to retry notes.wav)
    assert (tmp_path / "windows.csv").read_bytes() == (built_pool / "windows.csv").read_bytes()
    assert np.array_equal(np.load(tmp_path / "embeddings.npy"), np.load(built_pool / "embeddings.npy"))
