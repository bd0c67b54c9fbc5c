"""Cluster runs for the CLI: `detect --ray` and `pool --ray` (the headless side; the app runs on one machine).

The same arguments as the single-machine `detect_files`, plus where Ray is (`ray`: '' a local Ray, 'auto'
the cluster this machine joined, HOST:PORT or ray://HOST:PORT) and how many workers (0: one per `threads`
CPUs of the cluster). Ray itself is imported only inside, when this runs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astapp.core.errors import ModelLoadError
from astapp.core.events import EventSink


def detect_on_cluster(model: str, files: Sequence[str], output: str, settings: Any = None, backend: str = "torch",
                      int8: bool = False, events: EventSink | None = None, stop: threading.Event | None = None,
                      shard: str | tuple[int, int] | None = None, fmt: str = "csv", threads: int = 0,
                      ray: str = "", workers: int = 0) -> Any:
    """`astapp.scale.detect.detect_on_ray`: the same summary and output folder as the single-machine run."""
    from astapp.detection.run import parse_shard
    from astapp.scale.detect import detect_on_ray

    if not Path(model).expanduser().exists():
        raise ModelLoadError(f"The model {model!r} does not exist. Give a trained model: a run folder (what "
                             "`astapp train --output` wrote) or an exported model folder (an unzipped "
                             "`astapp export` zip), at the same path on every machine of the cluster.")
    if workers < 0:
        raise ModelLoadError(f"--workers must be 0 (one per --threads CPUs of the cluster) or more (got {workers}).")
    part = parse_shard(shard) if isinstance(shard, str) else shard
    return detect_on_ray(model, list(files), output, settings, backend=backend, int8=int8, events=events, stop=stop,
                         shard=part, fmt=fmt, threads=threads, ray=ray, workers=workers)


def pool_on_cluster(data: str | list[str], model: str, output: str, hop: float | None = None, progress: Any = None,
                    ray: str = "", workers: int = 0, threads: int = 1) -> dict[str, Any]:
    """`astapp.scale.pool.pool_on_ray`: the pool `build_pool_files` builds, embedded by Ray workers."""
    from astapp.scale.pool import pool_on_ray

    if workers < 0 or threads < 1:
        raise ModelLoadError(f"--workers must be 0 or more and --threads 1 or more (got {workers} and {threads}).")
    return pool_on_ray(data, model, output, hop=hop, progress=progress, ray=ray, workers=workers, threads=threads)
