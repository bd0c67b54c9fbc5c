"""`pool --ray`: the pool's embedding pass spread over Ray workers, the pool assembled as on one machine.

The single-machine pool (`astapp.pool.build`) embeds each file once into its cache (keyed by content,
model, windows and pass) and then assembles the pool from the cache. Here that cache is filled by Ray
actors holding one model each (`astapp.scale.runner`): the driver alone writes each file's cache entry,
atomically, as it comes back, so a rerun embeds only the files still missing and a killed worker costs
only its in-flight file. `build_pool` then assembles `embeddings.npy` and `windows.csv` from the cache,
row for row what the single-process pass gives.

One choice must be made once for the whole pool: int8 or fp32. On one machine it is made on the first
file embedded (int8 only when within `INT8_MAX_REL_ERROR` of fp32 on its first windows); workers deciding
alone could choose differently and mix passes in one pool. The driver decides on the same windows and
every worker uses its decision, which pool.json records as the single-machine pool does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.events import EventSink
from astapp.core.fsutil import atomic_write_bytes
from astapp.pool.build import Filler, Progress, build_pool, embed_file
from astapp.pool.embedder import BATCH, Embedder, ModelSpec, fixed_embedder
from astapp.pool.windows import PoolError
from astapp.scale.cluster import preflight
from astapp.scale.runner import FileFn, run_files


@dataclass(frozen=True)
class PoolJob:
    """What each worker needs (pickled to it): the model, the windows, the driver's pass, the files."""

    spec: ModelSpec
    int8: bool
    info: dict[str, Any]
    hop_n: int
    threads: int
    paths: dict[str, str]

    def open(self) -> FileFn:
        embedder = fixed_embedder(self.spec, self.int8, self.info)
        return lambda name: embed_file(embedder, self.spec, self.hop_n, Path(self.paths[name]),
                                       embedder.info.get("one_off_pass", ""))


@dataclass
class CacheStore:
    """The driver's side: a file is finished when its cache entry exists; entries are written here alone."""

    targets: dict[str, Path]
    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def pending(self, files: list[str]) -> list[str]:
        return [name for name in files if not self.targets[name].is_file()]

    def save(self, name: str, result: bytes) -> None:
        atomic_write_bytes(self.targets[name], result)
        self.written.append(name)

    def fail(self, name: str, sentence: str) -> None:
        self.failed[name] = sentence


def decide_pass(spec: ModelSpec, int8: bool, hop_n: int, todo: list[tuple[str, Path]]) -> dict[str, Any]:
    """The pass the single-process pool would choose: on the first batch of the first file to embed that
    decodes (`Embedder` decides on its first batch)."""
    embedder = Embedder(spec, int8)
    for _, path in todo:
        try:
            embed_file(lambda wavs: embedder(wavs[:BATCH]), spec, hop_n, path)
        except Exception:  # noqa: BLE001, S112 - a file that does not decode fails in its worker, said there
            continue
        return dict(embedder.info)
    return {"one_off_pass": "cached"}


def ray_filler(
    ray: str,
    workers: int = 0,
    threads: int = 1,
    events: EventSink | None = None,
    stop: threading.Event | None = None,
    on_workers: Callable[[list[Any]], None] | None = None,
) -> Filler:
    """`build_pool`'s `fill`: the files without a cache entry embedded by Ray workers."""

    def fill(files: list[tuple[str, Path]], pass_: Any) -> dict[str, str]:
        store = CacheStore({name: pass_.target(path) for name, path in files})
        todo = [(name, path) for name, path in files if name in store.pending([name])]
        if not todo:
            return {}
        info = pass_.cached or decide_pass(pass_.spec, pass_.int8, pass_.hop_n, todo)
        job = PoolJob(
            pass_.spec, pass_.int8, info, pass_.hop_n, max(1, threads), {n: str(p) for n, p in files}
        )
        ran = run_files(
            job,
            [name for name, _ in todo],
            store,
            ray=ray,
            workers=workers,
            events=events,
            stop=stop,
            on_workers=on_workers,
        )
        if ran.stopped:
            raise PoolError(
                f"Stopped after embedding {len(store.written)} of {len(todo)} file(s); the same command "
                "continues where it stopped (finished files are kept)."
            )
        pass_.filled, pass_.embedded = info, len(store.written)
        return store.failed

    return fill


def pool_on_ray(
    sources: str | Path | list[str | Path],
    model: str,
    out: str | Path,
    hop: float | None = None,
    int8: bool = True,
    progress: Progress | None = None,
    ray: str = "",
    workers: int = 0,
    threads: int = 1,
    stop: threading.Event | None = None,
    on_workers: Callable[[list[Any]], None] | None = None,
) -> dict[str, Any]:
    """`build_pool` with the embedding done by `workers` Ray actors of `threads` CPUs each (0: one per
    `threads` CPUs of the cluster), on a local Ray (`ray` '') or a cluster ('auto', HOST:PORT, ray://...)."""
    preflight(ray)  # Ray missing or the cluster unreachable: one sentence, nothing written

    def on_event(event: dict[str, Any]) -> None:
        if progress is None or event.get("type") != "progress":
            return
        what = "Embedded" if event["status"] == "ok" else "Could not embed"
        progress(
            event["done"] / max(event["total"], 1),
            f"{what} {event['file']} on Ray ({event['done']}/"
            f"{event['total']} files){'' if event['status'] == 'ok' else ': ' + str(event['error'])}",
        )

    fill = ray_filler(ray, workers, threads, on_event, stop, on_workers)
    return build_pool(sources, model, out, hop=hop, int8=int8, progress=progress, fill=fill)
