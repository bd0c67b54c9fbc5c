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
import re
import shutil
from pathlib import Path

from bench_train import stage_seconds
from common import machine_facts, make_checkpoint, make_dataset, matmul_peak, mfu, python, run, write_json


def pass_rates(history: Path) -> dict[str, float]:
    """Clips per second of the frozen one-off pass per split, from its progress events ("train 48/320 clips")."""
    seen: dict[str, list[tuple[float, int]]] = {}
    last = None  # the event before a split's first batch ends marks when its pass began
    for line in history.read_text().splitlines():
        e = json.loads(line)
        m = re.search(r"Running the frozen layers once: (\w+) (\d+)/\d+", e.get("message") or "")
        if m:
            seen.setdefault(m.group(1), [(last, 0)] if last is not None else []).append(
                (float(e["time"]), int(m.group(2))))
        last = float(e.get("time", last or 0))
    return {k: (v[-1][1] - v[0][1]) / (v[-1][0] - v[0][0]) for k, v in seen.items()
            if len(v) > 1 and v[-1][0] > v[0][0]}


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
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--int8-pass", action=argparse.BooleanOptionalAction, default=True,
                    help="the engine's default int8 pass for the training split (where bf16 is not native)")
    ap.add_argument("--pair", action="store_true",
                    help="run --no-int8-pass and --int8-pass one after the other (before/after in one invocation)")
    ap.add_argument("--workdir", type=Path, default=Path("bench/out/cpu_path"))
    ap.add_argument("--out", type=Path, default=Path("bench/out/cpu_path.json"))
    args = ap.parse_args()
    results = [one(args, int8) for int8 in ([False, True] if args.pair else [args.int8_pass])]
    if args.pair:
        a, b = results
        summary = {"fp32_pass_total_s": a["total_wall_seconds"], "default_total_s": b["total_wall_seconds"],
                   "speedup": round(a["total_wall_seconds"] / b["total_wall_seconds"], 2),
                   "accuracy_fp32_pass": a["accuracy"], "accuracy_default": b["accuracy"]}
        write_json(args.out, {"benchmark": "cpu_path_pair", "runs": results, "summary": summary})
        print(json.dumps(summary, indent=2))
    else:
        write_json(args.out, results[0])
    return 0


def one(args: argparse.Namespace, int8: bool) -> dict:
    """One upload-to-model run through the CLI, with its stages, pass rates and MFU."""
    ckpt = make_checkpoint(args.workdir / f"{args.size}_ast", args.size)
    data = make_dataset(args.workdir / "data", args.classes, args.clips // args.classes, args.seconds, seed=3)
    upload = args.workdir / "upload.zip"
    if not upload.exists():
        shutil.make_archive(str(upload.with_suffix("")), "zip", data.parent, data.name)
    tag = f"{args.mode}_{args.precision}{'_int8' if int8 else '_fp32pass'}"
    out = args.workdir / f"run_{tag}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(args.workdir / ".cache", ignore_errors=True)  # measure extraction and decoding too
    cmd = [python(), "-m", "astapp", "train", "--data", str(upload), "--model", str(ckpt), "--output", str(out),
           "--mode", args.mode, "--epochs", f"{args.epochs:g}", "--batch-size", str(args.batch_size),
           "--lr", f"{args.lr:g}", "--threads", str(args.threads), "--max-length", "auto",
           "--precision", args.precision, "--int8-pass" if int8 else "--no-int8-pass"]
    timing = run(cmd, log=args.workdir / f"run_{tag}.log")
    metrics = json.loads((out / "metrics.json").read_text())

    import torch
    from transformers import ASTConfig

    from astapp.model.loading import pass_flops
    from astapp.training.devices import resolve_precision

    torch.set_num_threads(args.threads)
    dtype = resolve_precision(args.precision, False)
    train_dtype = metrics.get("one_off_pass") or dtype  # what the engine chose (int8 only where its probe allowed)
    peaks = {d: matmul_peak(d, args.threads) for d in {"fp32", train_dtype}}  # right after the run, same threads
    cfg = ASTConfig.from_pretrained(ckpt)
    n = 0 if args.mode == "frozen" else int(args.mode.split("-")[1])
    flops = pass_flops(cfg, metrics.get("max_length"), None if n == 0 else cfg.num_hidden_layers - n)
    rates = pass_rates(out / "history.jsonl")
    pass_mfu = {split: {"clips_per_second": round(rate, 3), "dtype": train_dtype if split == "train" else "fp32",
                        **mfu(rate, flops, peaks[train_dtype if split == "train" else "fp32"])}
                for split, rate in rates.items()}
    result = {
        "benchmark": "cpu_path",
        "clips": args.clips, "classes": args.classes, "seconds": args.seconds, "model": args.size,
        "mode": args.mode, "epochs": args.epochs, "precision": dtype, "int8_pass": int8,
        "train_pass_dtype": train_dtype, "int8_rel_error": metrics.get("int8_rel_error"),
        "machine": machine_facts(args.threads), "pass_gflops_per_clip": round(flops / 1e9, 1),
        "one_off_pass": pass_mfu,
        "total_wall_seconds": timing["wall_seconds"],
        "within_10_minutes": timing["wall_seconds"] <= 600,
        "stages": stage_seconds(out / "history.jsonl"),
        "accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"],
        "max_length": metrics.get("max_length"),
        "peak_rss_mib": timing["peak_rss_mib_children"],
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
