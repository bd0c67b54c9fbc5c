"""--ray's bad input: Ray not installed, an address that is not one, a cluster that does not answer."""

from __future__ import annotations

import sys
import time

import pytest

from astapp.core.errors import explain
from astapp.scale.cluster import INSTALL, ClusterError, host_port
from astapp.scale.runner import run_files


class NeverOpened:
    """A job and store the runner must not get to: the checks come before any model loads or record is read."""

    threads = 1

    def open(self):
        raise AssertionError("the job was started")

    def pending(self, files):
        raise AssertionError("the records were read")

    save = fail = pending


def test_without_ray_installed_one_sentence_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ClusterError) as err:
        run_files(NeverOpened(), ["a.wav"], NeverOpened(), ray="")
    assert INSTALL in explain(err.value) and "leave out --ray" in str(err.value)


def test_an_unreachable_cluster_is_one_sentence_within_seconds_and_nothing_starts():
    pytest.importorskip("ray")
    import ray

    start = time.monotonic()
    with pytest.raises(ClusterError) as err:
        run_files(NeverOpened(), ["a.wav"], NeverOpened(), ray="127.0.0.1:1")
    assert time.monotonic() - start < 10
    msg = explain(err.value)
    assert msg.startswith("The Ray cluster at 127.0.0.1:1 cannot be reached") and "Nothing was started." in msg
    assert not ray.is_initialized()


@pytest.mark.parametrize(("address", "expected"), [("head:6379", ("head", 6379)), ("10.0.0.5", ("10.0.0.5", 6379)),
                                                   ("ray://head", ("head", 10001)), ("ray://h:20001/", ("h", 20001))])
def test_addresses(address, expected):
    assert host_port(address) == expected


@pytest.mark.parametrize("address", ["ray://", ":6379", "head:port"])
def test_addresses_that_are_not_one(address):
    with pytest.raises(ClusterError, match="is not an address: use HOST:PORT"):
        host_port(address)


def test_a_local_ray_that_cannot_start_is_one_sentence(monkeypatch):
    import types

    from astapp.scale.cluster import connected

    def init(**kwargs):
        raise Exception("The current node timed out during startup.")  # what Ray raises on an overloaded machine

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init, shutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(ClusterError) as err, connected(""):
        pass
    assert "could not start on this machine (The current node timed out" in explain(err.value)
