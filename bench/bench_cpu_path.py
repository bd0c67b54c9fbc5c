#!/usr/bin/env python3
"""Issue 6, target 3: the free-Space CPU path, from uploaded zip to trained model.

A 400-clip, 5-second, 10-class dataset is zipped (the upload) and trained with base AST (768 hidden,
12 layers; random weights cost exactly what pretrained ones do) in a fast mode. Reports total wall
time and each stage's share from the run's history.

    python bench/bench_cpu_path.py --mode frozen --out bench/out/cpu_path.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench_train import stage_seconds
from common import make_checkpoint, make_dataset, python, run, write_json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--mode", default="frozen")
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="base")
    ap.add_argument("--workdir", type=Path, default=Path("bench/out/cpu_path"))
    ap.add_argument("--out", type=Path, default=Path("bench/out/cpu_path.json"))
    args = ap.parse_args()

    ckpt = make_checkpoint(args.workdir / f"{args.size}_ast", args.size)
    data = make_dataset(args.workdir / "data", args.classes, args.clips // args.classes, args.seconds, seed=3)
    upload = args.workdir / "upload.zip"
    if not upload.exists():
        shutil.make_archive(str(upload.with_suffix("")), "zip", data.parent, data.name)
    out = args.workdir / f"run_{args.mode}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(args.workdir / ".cache", ignore_errors=True)  # measure extraction and decoding too
    cmd = [python(), "-m", "astapp", "train", "--data", str(upload), "--model", str(ckpt), "--output", str(out),
           "--mode", args.mode, "--epochs", f"{args.epochs:g}", "--batch-size", str(args.batch_size),
           "--lr", f"{args.lr:g}", "--threads", str(args.threads), "--max-length", "auto"]
    timing = run(cmd, log=args.workdir / f"run_{args.mode}.log")
    metrics = json.loads((out / "metrics.json").read_text())
    result = {
        "benchmark": "cpu_path",
        "clips": args.clips, "classes": args.classes, "seconds": args.seconds, "model": args.size,
        "mode": args.mode, "epochs": args.epochs,
        "total_wall_seconds": timing["wall_seconds"],
        "within_10_minutes": timing["wall_seconds"] <= 600,
        "stages": stage_seconds(out / "history.jsonl"),
        "accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"],
        "max_length": metrics.get("max_length"),
        "peak_rss_mib": timing["peak_rss_mib_children"],
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
