"""Ray, only when asked: `--ray` (a local Ray on this machine), `--ray auto` (the cluster this machine joined
with `ray start`) or `--ray HOST:PORT` / `ray://HOST:PORT`.

Ray is an optional dependency, imported here and only here, when a job is given `--ray`; without it the
sentence says how to install it. An address is checked with a plain TCP connection before `ray.init`, so an
unreachable cluster is one sentence within seconds and nothing is started (Ray's own client would retry for
a long time, then fail with a traceback).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from astapp.core.errors import AstappError

INSTALL = 'pip install "ray[data]==2.60.0"'
GCS_PORT = 6379  # `ray start --head`'s default
CLIENT_PORT = 10001  # the Ray client server's default (ray://)


class ClusterError(AstappError):
    """Ray is missing, or the cluster named cannot be reached."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--ray needs Ray, which is not installed here: {INSTALL} (on every machine of the "
                           "cluster, the same version), or leave out --ray to run on this machine alone.") from None
    return ray


def host_port(address: str) -> tuple[str, int]:
    """('host', port) of 'host:port' or 'ray://host[:port]' (the default ports when none is given)."""
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://").rstrip("/")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not host or (port and not port.isdigit()):
        raise ClusterError(f"--ray {address!r} is not an address: use HOST:PORT (the head's `ray start --head` "
                           "address, port 6379 by default), ray://HOST:10001, auto, or --ray alone for this machine.")
    return host, int(port) if port else (CLIENT_PORT if client else GCS_PORT)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    host, port = host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as e:
        raise ClusterError(f"The Ray cluster at {host}:{port} cannot be reached ({e.strerror or e}); start it "
                           f"with `ray start --head` there, check the address and firewall, or leave out --ray. "
                           "Nothing was started.") from None


def preflight(address: str | None) -> None:
    """Before anything is written: Ray is installed, and a cluster's address answers (not for 'auto')."""
    import_ray()
    if address and address != "auto":
        check_reachable(address)


@contextmanager
def connected(address: str | None, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected: `address` None or '' starts a local Ray with `num_cpus` CPUs (shut down afterwards);
    'auto' or an address joins a running cluster (left running). An already connected Ray is reused as is."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if not address:
        try:
            ray.init(num_cpus=num_cpus, **kwargs)
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception when its processes start too slowly
            raise ClusterError(f"A local Ray could not start on this machine ({str(e).splitlines()[0][:200]}); "
                               "it is probably overloaded (Ray gives its raylet 30 s to start): try again when it is "
                               "less busy, or leave out --ray.") from None
    else:
        if address != "auto":
            check_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as e:
            raise ClusterError(f"No Ray cluster to join at {address!r} ({str(e).splitlines()[0][:200]}); run "
                               "`ray start --head` (or `ray start --address HEAD:6379`) on this machine first, "
                               "or leave out --ray. Nothing was started.") from None
    try:
        yield ray
    finally:
        ray.shutdown()
