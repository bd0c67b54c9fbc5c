"""Benchmark: validate and index a generated N-clip zip; print clips/s and peak memory.

Each size runs in a fresh subprocess so peak RSS is per size; memory should not grow with the
dataset (clips stream from the decoder into Arrow). Usage:

    python bench/bench_ingest.py                 # 500 and 2000 clips
    python bench/bench_ingest.py --sizes 2000 --seconds 1.0
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_zip(path: Path, n: int, seconds: float, n_classes: int = 10) -> None:
    import io

    import numpy as np
    import soundfile as sf

    from astapp.synth import KINDS, make_signal

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for i in range(n):
            kind = KINDS[i % n_classes]
            buf = io.BytesIO()
            sf.write(buf, make_signal(kind, seconds, 16_000, rng), 16_000, format="WAV", subtype="PCM_16")
            zf.writestr(f"dataset/{kind}/{i:05d}.wav", buf.getvalue())


def run_one(n: int, seconds: float) -> dict:
    from astapp.config import AudioConfig, IngestLimits
    from astapp.dataset import build_dataset, inspect_source

    with tempfile.TemporaryDirectory() as tmp:
        z = Path(tmp) / "bench.zip"
        make_zip(z, n, seconds)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        report = inspect_source(z, Path(tmp) / "ws", AudioConfig(), IngestLimits())  # extract + validate
        t1 = time.perf_counter()
        bundle = build_dataset(z, Path(tmp) / "ws", AudioConfig(), 0.2, 0)  # decode once + index into Arrow
        t2 = time.perf_counter()
        rows = bundle.dataset["train"].num_rows + bundle.dataset["validation"].num_rows
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"clips": n, "seconds_per_clip": seconds, "zip_mb": round(z.stat().st_size / 2**20, 1),
                "rows": rows, "trainable": report.trainable,
                "inspect_s": round(t1 - t0, 2), "inspect_clips_per_s": round(n / (t1 - t0), 1),
                "build_s": round(t2 - t1, 2), "build_clips_per_s": round(n / (t2 - t1), 1),
                "peak_rss_mb_before": round(rss_before / 1024, 1), "peak_rss_mb": round(rss_after / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.seconds)))
        return
    results = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--seconds", str(args.seconds)],
                             check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    if len(results) > 1:
        small, big = results[0], results[-1]
        growth = big["peak_rss_mb"] - small["peak_rss_mb"]
        print(f"peak RSS {small['peak_rss_mb']} MB at {small['clips']} clips vs {big['peak_rss_mb']} MB at "
              f"{big['clips']} clips (growth {growth:+.1f} MB for {big['clips'] / small['clips']:.0f}x the data)")


if __name__ == "__main__":
    main()
