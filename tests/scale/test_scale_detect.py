"""detect (plain and on Ray), the checks that come before anything runs: another model's outputs, an unreachable
cluster."""

from __future__ import annotations

import pytest
from scale_helpers import export_tiny, recordings
from train_helpers import one_thread  # noqa: F401 - autouse: one torch thread, shared cache

from astapp.core.errors import explain
from astapp.detection.detect import DetectSettings
from astapp.detection.run import ModelMismatchError, detect_files
from astapp.scale.cluster import ClusterError
from astapp.scale.detect import detect_on_ray

pytest.importorskip("ray")


@pytest.mark.parametrize("on_ray", [False, True])
def test_an_output_folder_of_another_model_is_refused_before_anything_runs(tiny_ast, tmp_path, on_ray):
    first, other = export_tiny(tiny_ast, tmp_path / "m1"), export_tiny(tiny_ast, tmp_path / "m2", seed=1, max_length=64)
    folder = recordings(tmp_path / "rec", 1, 3.0)
    detect_files(first, [folder], tmp_path / "out", DetectSettings())
    before = sorted(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    with pytest.raises(ModelMismatchError) as err:
        if on_ray:
            detect_on_ray(other, [folder], tmp_path / "out", DetectSettings(), ray="")
        else:
            detect_files(other, [folder], tmp_path / "out", DetectSettings())
    msg = explain(err.value)
    assert f"holds detections made by another model ({first} (torch), id " in msg and f"not by {other} (torch)" in msg
    assert "use a new --output folder for this model, or give the model that made them" in msg
    assert len(msg.strip().splitlines()) == 1
    assert sorted(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()) == before
    detect_files(first, [folder], tmp_path / "out", DetectSettings())  # the same model finishes it


def test_an_unreachable_cluster_starts_nothing_and_writes_nothing(tiny_ast, tmp_path):
    import ray

    with pytest.raises(ClusterError, match="cannot be reached"):
        detect_on_ray(tmp_path / "no-model", [tmp_path], tmp_path / "out", ray="127.0.0.1:1")
    assert not ray.is_initialized() and not (tmp_path / "out").exists()
