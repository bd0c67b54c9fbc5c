"""What a dataset version costs (issue 26, parts 2-3): making v2 = v1 + 50 added clips by hard links
(`astapp.data.versions`) against copying the dataset, and scanning the version's manifest against the
parent's class folders, for datasets of N one-second clips.

    python3 bench/bench_versions.py [--clips 1000 5000] [--out bench_versions.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from astapp.data.additions import PendingAdditions
from astapp.data.ingest import scan
from astapp.data.synth import write_wav
from astapp.data.versions import VersionStore


def _dataset(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_wav(root / f"class{i % 10}" / f"clip{i:06d}.wav", (rng.standard_normal(16000) * 0.1).astype(np.float32),
                  subtype="PCM_16")


def _bytes_not_linked(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.stat().st_nlink == 1)


def one(n: int, work: Path) -> dict[str, float]:
    data, ws = work / f"data{n}", work / f"ws{n}"
    _dataset(data, n)
    pending, store = PendingAdditions(ws), VersionStore(ws)
    for i in range(50):
        pending.add(np.full(16000, 0.01 * (i + 1), np.float32), "false_alarm", "", "night.wav", i, i + 1.0)
    t0 = time.perf_counter()
    listing = scan(data)
    scan_parent = time.perf_counter() - t0
    v1 = store.register("bench", data, len(listing.items))
    t0 = time.perf_counter()
    v2 = store.create(v1, listing, pending.list(), pending, "background")
    make = time.perf_counter() - t0
    t0 = time.perf_counter()
    shutil.copytree(data, work / f"copy{n}")
    copy = time.perf_counter() - t0
    t0 = time.perf_counter()
    items = len(scan(v2.root).items)
    scan_version = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    return {"clips": n, "items_v2": items, "make_s": round(make, 3), "copy_s": round(copy, 3),
            "make_over_copy": round(make / copy, 3), "dataset_mb": round(size / 1e6, 1),
            "v2_new_bytes": _bytes_not_linked(Path(v2.root)), "scan_parent_s": round(scan_parent, 3),
            "scan_v2_s": round(scan_version, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.clips:
            rows.append(one(n, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"cpu": os.cpu_count(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
