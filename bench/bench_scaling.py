#!/usr/bin/env python3
"""Issues 3 and 6 (target 5): ingestion and feature time, and peak memory, against dataset size.

Each size runs in its own process (so its peak RSS is its own): a generated zip of N one-second clips
(10 classes) is extracted and validated (`inspect_source`: the report the UI and `inspect` show),
decoded once and indexed into Arrow (`build_dataset`), then the training split's features are cached
(`FeatureCache`). Time per clip and peak memory must stay flat (or grow linearly in total),
never quadratically.

    python bench/bench_scaling.py --sizes 100 2000 10000 --out bench/out/scaling.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import make_dataset, write_json


def rss_parts() -> dict[str, float]:
    """Resident memory split (Linux): anonymous (heap: what the process really needs) and file-backed
    (memory-mapped Arrow and cache files: page cache the kernel can drop under pressure)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def worker(n: int, seconds: float, workdir: Path) -> dict:
    from astapp.config import AudioConfig, IngestLimits
    from astapp.dataset import build_dataset, inspect_source
    from astapp.featcache import FeatureCache
    from astapp.features import Fbank, choose_max_length

    data = make_dataset(workdir / f"data_{n}", 10, n // 10, seconds, seed=5)
    upload = workdir / f"upload_{n}.zip"
    if not upload.exists():
        shutil.make_archive(str(upload.with_suffix("")), "zip", data.parent, data.name)
    ws = Path(tempfile.mkdtemp(prefix=f"ws_{n}_", dir=workdir))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    report = inspect_source(upload, ws, AudioConfig(), IngestLimits())  # safe extraction + validation report
    t_validate = time.perf_counter() - t0
    assert report.trainable and report.total_clips == n, report.errors
    t0 = time.perf_counter()
    bundle = build_dataset(upload, ws, AudioConfig(), val_split=0.2, seed=0)  # decode once into Arrow
    t_ingest = time.perf_counter() - t0
    train = bundle.dataset["train"]
    frames = choose_max_length(list(train["duration"]))
    t0 = time.perf_counter()
    cache = FeatureCache(ws / "features", Fbank(max_length=frames), train)
    t_feat = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    parts = rss_parts()
    shutil.rmtree(ws, ignore_errors=True)
    return {
        "clips": n, "train_clips": len(cache), "max_length": frames,
        "validate_seconds": round(t_validate, 2), "validate_clips_per_second": round(n / t_validate, 1),
        "ingest_seconds": round(t_ingest, 2), "ingest_clips_per_second": round(n / t_ingest, 1),
        "features_seconds": round(t_feat, 2), "features_clips_per_second": round(len(cache) / t_feat, 1),
        "peak_rss_mib": round(rss, 1), "rss_before_mib": round(rss0, 1),
        "rss_anon_mib_at_end": parts.get("RssAnon"), "rss_file_mib_at_end": parts.get("RssFile"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 2000, 10000])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--workdir", type=Path, default=Path("bench/out/scaling"))
    ap.add_argument("--out", type=Path, default=Path("bench/out/scaling.json"))
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds, args.workdir)))
        return 0
    rows = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--seconds", str(args.seconds),
                              "--workdir", str(args.workdir)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for r in rows:
        r["time_per_clip_vs_smallest"] = round(
            (r["ingest_seconds"] / r["clips"]) / (base["ingest_seconds"] / base["clips"]), 2)
    write_json(args.out, {"benchmark": "scaling", "results": rows})
    print("\n| clips | validate clips/s | Arrow index clips/s | features clips/s | anonymous RSS MiB | "
          "file-backed RSS MiB | peak RSS MiB | time/clip vs smallest |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clips']} | {r['validate_clips_per_second']} | {r['ingest_clips_per_second']} | "
              f"{r['features_clips_per_second']} | {r['rss_anon_mib_at_end']} | {r['rss_file_mib_at_end']} | "
              f"{r['peak_rss_mib']} | {r['time_per_clip_vs_smallest']}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
