"""The CLI side of --ray: the flags parse as documented, and Ray is imported only when --ray is given."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from astapp.cli.scaling import add_ray_arguments, detect_on_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("argv", "ray", "workers"), [([], None, 0), (["--ray"], "", 0), (["--ray", "auto"], "auto", 0),
                                                      (["--ray", "head:6379", "--workers", "8"], "head:6379", 8)])
def test_flags(argv, ray, workers):
    p = argparse.ArgumentParser()
    add_ray_arguments(p)
    ns = p.parse_args(argv)
    assert (ns.ray, ns.workers) == (ray, workers)
    assert (detect_on_cluster(ns) is None) == (ray is None)


def test_the_cli_and_the_service_load_without_ray():
    code = ("import sys; import astapp.cli, astapp.service, astapp.scale.detect, astapp.scale.pool, "
            "astapp.service.scaling; "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_the_service_checks_the_model_before_ray(tmp_path):
    from astapp import service
    from astapp.core.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="does not exist"):
        service.detect_on_cluster(str(tmp_path / "missing"), [str(tmp_path)], str(tmp_path / "out"), ray="")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("ray_args", "words"), [(["--ray", "127.0.0.1:1"], "The Ray cluster at 127.0.0.1:1 cannot be reached"),
                                                 (["--ray"], 'pip install "ray[data]==2.60.0"')])
def test_detect_ray_bad_input_is_one_sentence_and_nothing_is_written(tmp_path, capsys, monkeypatch, ray_args, words):
    from astapp.cli import main

    if len(ray_args) == 1:
        monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    code = main(["detect", "--model", str(tmp_path), str(tmp_path), "--output", str(tmp_path / "o"), *ray_args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("ray_args", "words"), [(["--ray", "127.0.0.1:1"], "The Ray cluster at 127.0.0.1:1 cannot be reached"),
                                                 (["--ray"], 'pip install "ray[data]==2.60.0"')])
def test_pool_ray_bad_input_is_one_sentence_and_nothing_is_written(tmp_path, capsys, monkeypatch, ray_args, words):
    from astapp.cli import main

    if len(ray_args) == 1:
        monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    code = main(["pool", "--data", str(tmp_path), "--model", str(tmp_path), "--output", str(tmp_path / "o"), *ray_args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
