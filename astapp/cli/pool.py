"""`pool`, `search`: unlabeled recordings embedded once into a pool, then searched by an example clip."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from astapp import service
from astapp.cli.common import print_json_lines, quiet_libraries
from astapp.cli.scaling import add_ray_arguments, pool_on_cluster


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    po = sub.add_parser("pool", help="cut unlabeled recordings into windows and embed them once (a pool to search)")
    po.add_argument("--data", required=True, nargs="+", metavar="PATH", help="audio files, folders or zips")
    po.add_argument("--model", required=True, help="the backbone: Hub id, checkpoint or run folder, scratch:SIZE")
    po.add_argument("--output", required=True, help="the pool folder (rebuilt in place; unchanged files reuse "
                                                     "their embeddings)")
    po.add_argument("--hop", type=float, help="seconds between window starts (default: half the model's window)")
    add_ray_arguments(po)  # --ray [ADDRESS], --workers N: the files embedded on Ray workers (docs/SCALING.md)
    po.add_argument("--threads", type=int, default=1, help="with --ray: each worker's CPUs (default 1)")

    se = sub.add_parser("search", help="the windows of a pool most like a query clip, best first")
    se.add_argument("--pool", required=True, help="a folder made by `pool`")
    se.add_argument("--query", required=True, help="an audio file (cut to the model's window)")
    se.add_argument("--top", type=int, default=10, help="how many hits (default 10)")
    se.add_argument("--json", action="store_true", help="one JSON object per line (file, start, end, score, ...)")
    return {"pool": build, "search": search}


def build(ns: argparse.Namespace) -> int:
    quiet_libraries()
    data = ns.data if len(ns.data) > 1 else ns.data[0]
    run = pool_on_cluster(ns) or service.build_pool_files  # --ray: the same pool, embedded on Ray workers
    meta = run(data, ns.model, ns.output, ns.hop,
               progress=lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr, flush=True))
    for f in meta["failed"]:
        print(f"Skipped {f['file']}: {f['reason']}", file=sys.stderr)
    print(f"{ns.output}: {meta['windows']} windows ({meta['window_seconds']:.2f} s, hop {meta['hop_seconds']:.2f} s) "
          f"of {meta['files']} file(s); {meta['embedded_files']} embedded now, the rest from the cache. "
          f"{meta['pass'].get('message', '')}".rstrip())
    return 0


def search(ns: argparse.Namespace) -> int:
    quiet_libraries()
    hits, note = service.search_pool(ns.pool, ns.query, ns.top)
    if note:
        print(f"Note: {note}", file=sys.stderr)
    if ns.json:
        print_json_lines(hits)
    else:
        for h in hits:
            print(f"{h['score']:.4f}  {h['file']}  {h['start']:.2f}-{h['end']:.2f} s")
    return 0
