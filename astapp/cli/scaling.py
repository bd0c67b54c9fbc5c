"""`--ray [ADDRESS]` and `--workers N` for the per-file commands (detect, pool), and the call they pick.

Ray is an optional dependency: nothing here imports it; the service does, only when `--ray` is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from astapp import service

RAY_HELP = ("analyse the files on Ray workers (pip install \"ray[data]==2.60.0\"): alone, a local Ray on this "
            "machine; auto, the cluster this machine joined with `ray start`; or the head's HOST:PORT / "
            "ray://HOST:10001. Model, input and --output must be at the same paths on every machine")


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS", help=RAY_HELP)
    p.add_argument("--workers", type=int, default=0,
                   help="with --ray: how many workers, each holding one model and --threads CPUs "
                        "(0: as many as the cluster's CPUs allow)")


def detect_on_cluster(ns: argparse.Namespace) -> Callable[..., Any] | None:
    """With `--ray`: `service.detect_on_cluster` with `--ray`/`--workers` bound, to be called with the
    arguments of the single-machine `service.detect_files`; without it None (that call runs as is)."""
    if getattr(ns, "ray", None) is None:
        return None

    def on_cluster(*args: Any, **kwargs: Any) -> Any:
        return service.detect_on_cluster(*args, ray=ns.ray, workers=ns.workers, **kwargs)

    return on_cluster


def pool_on_cluster(ns: argparse.Namespace) -> Callable[..., Any] | None:
    """With `--ray`: `service.pool_on_cluster` with `--ray`/`--workers`/`--threads` bound, called with the
    arguments of `service.build_pool_files`; without it None."""
    if getattr(ns, "ray", None) is None:
        return None

    def on_cluster(*args: Any, **kwargs: Any) -> Any:
        return service.pool_on_cluster(*args, ray=ns.ray, workers=ns.workers, threads=ns.threads, **kwargs)

    return on_cluster
