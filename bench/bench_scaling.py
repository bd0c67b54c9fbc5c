#!/usr/bin/env python3
"""Issues 3 and 6 (target 5): ingestion and feature time, and peak memory, against dataset size.

Each size runs in its own process (so its peak RSS is its own): a generated zip of N one-second clips
(10 classes) is extracted and validated (`inspect_source`: the report the UI and `inspect` show),
decoded once and indexed into Arrow (`build_dataset`), then the training split's features are cached
(`FeatureCache`). Time per clip and peak memory must stay flat (or grow linearly in total),
never quadratically.

    python bench/bench_scaling.py --sizes 100 2000 10000 --out bench/out/scaling.json
    python bench/bench_scaling.py --sizes 2000 --formats zip parquet   # issue 16: Hub-layout Parquet zip
"""

from __future__ import annotations

import argparse
import json
import os
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


def parquet_zip(data: Path, upload: Path, n: int) -> None:
    """The same clips as the Hub ships them: data/train-0000k-of-0000m.parquet (audio {bytes, path}, category,
    fold), row groups of 100 like `datasets` writes audio, zipped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p for p in data.rglob("*.wav"))
    out = upload.parent / f"hub_{n}" / "data"
    out.mkdir(parents=True, exist_ok=True)
    shards = max(1, n // 1000)
    for k in range(shards):
        part = files[k::shards]
        table = pa.table({"audio": [{"bytes": f.read_bytes(), "path": f.name} for f in part],
                          "category": [f.parent.name for f in part], "fold": [1 + i % 5 for i in range(len(part))]})
        pq.write_table(table, out / f"train-{k:05d}-of-{shards:05d}.parquet", row_group_size=100)
    shutil.make_archive(str(upload.with_suffix("")), "zip", out.parent.parent, out.parent.name)


def prepare(n: int, seconds: float, workdir: Path, fmt: str = "zip") -> Path:
    """The upload for one size and format (run in its own process, so the worker's memory is only ingestion's)."""
    data = make_dataset(workdir / f"data_{n}", 10, n // 10, seconds, seed=5)
    upload = workdir / (f"upload_{n}.zip" if fmt == "zip" else f"parquet_{n}.zip")
    if not upload.exists() and fmt == "zip":
        shutil.make_archive(str(upload.with_suffix("")), "zip", data.parent, data.name)
    elif not upload.exists():
        parquet_zip(data, upload, n)
    return upload


def worker(n: int, seconds: float, workdir: Path, fmt: str = "zip") -> dict:
    from astapp.core.config import AudioConfig, IngestLimits
    from astapp.data.dataset import build_dataset, inspect_source
    from astapp.features.cache import FeatureCache
    from astapp.features.fbank import Fbank, choose_max_length

    upload = prepare(n, seconds, workdir, fmt)
    import datasets  # noqa: F401  # start-up imports (the app has them loaded) are not throughput:
    import torch  # noqa: F401  # a streamed datasets.IterableDataset imports torch on creation
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
        "format": fmt, "clips": n, "train_clips": len(cache), "max_length": frames,
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
    ap.add_argument("--formats", nargs="+", default=["zip"], choices=["zip", "parquet"],
                    help="zip: a zip of class folders; parquet: the same clips as Hub-layout Parquet in a zip")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--format", default="zip", help=argparse.SUPPRESS)
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.worker and args.prepare:
        prepare(args.worker, args.seconds, args.workdir, args.format)
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds, args.workdir, args.format)))
        return 0
    rows = []
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    print(json.dumps({"cpus": os.cpu_count(), "precision": "float32 (decoding, features)",
                      **{f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}}), flush=True)
    for n in args.sizes:
        for fmt in args.formats:
            subprocess.run([sys.executable, __file__, "--worker", str(n), "--seconds", str(args.seconds),
                            "--workdir", str(args.workdir), "--format", fmt, "--prepare"], check=True)
            out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--seconds", str(args.seconds),
                                  "--workdir", str(args.workdir), "--format", fmt], capture_output=True, text=True,
                                 check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for r in rows:
        r["time_per_clip_vs_smallest"] = round(
            (r["ingest_seconds"] / r["clips"]) / (base["ingest_seconds"] / base["clips"]), 2)
        z = next(b for b in rows if b["clips"] == r["clips"] and b["format"] == rows[0]["format"])
        secs = r["validate_seconds"] + r["ingest_seconds"]
        r["inspect_plus_decode_vs_zip"] = round((z["validate_seconds"] + z["ingest_seconds"]) / secs, 2)
    write_json(args.out, {"benchmark": "scaling", "results": rows})
    print("\n| format | clips | validate clips/s | Arrow index clips/s | features clips/s | anonymous RSS MiB | "
          "file-backed RSS MiB | peak RSS MiB | time/clip vs smallest | throughput vs zip |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['format']} | {r['clips']} | {r['validate_clips_per_second']} | {r['ingest_clips_per_second']} | "
              f"{r['features_clips_per_second']} | {r['rss_anon_mib_at_end']} | {r['rss_file_mib_at_end']} | "
              f"{r['peak_rss_mib']} | {r['time_per_clip_vs_smallest']}× | {r['inspect_plus_decode_vs_zip']}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
