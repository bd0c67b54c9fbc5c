#!/usr/bin/env python3
"""Issue 18, item 2 (threads): one process with 2 threads against 2 processes with 1 thread each.

On a 2-core CPU every torch op with 2 threads ends at a barrier; the GEMMs split well, the many small
ops (softmax, layer norm, GELU, AdamW, the Trainer's own work) do not. Two data-parallel processes
(`torchrun --nproc_per_node 2`, gloo, one thread each) never wait for each other inside an op, only at
the gradient all-reduce. Both run astapp's own CLI on the same data, checkpoint and effective batch
(8 = 1 x 8 or 2 x 4), alternated over `--rounds`; reported: train samples/s of each and the ratio.

    python bench/bench_processes.py --rounds 2 --out bench/out/processes.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from common import machine_facts, make_checkpoint, make_dataset, python, run, write_json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--per-class", type=int, default=24)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--batch-size", type=int, default=8, help="effective batch (split over the processes)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("bench/out/processes"))
    ap.add_argument("--out", type=Path, default=Path("bench/out/processes.json"))
    args = ap.parse_args()

    ckpt = make_checkpoint(args.workdir / "small_ast", "small")
    data = make_dataset(args.workdir / "data", args.classes, args.per_class, args.seconds)
    variants = {
        "1 process x 2 threads": ([python(), "-m", "astapp"], 2, args.batch_size),
        "2 processes x 1 thread": ([python(), "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                                    "-m", "astapp"], 1, args.batch_size // 2),
    }
    rates: dict[str, list[float]] = {k: [] for k in variants}
    accuracy: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        names = list(variants)
        for name in names[r % 2:] + names[:r % 2]:  # alternate who goes first
            launcher, threads, batch = variants[name]
            out = args.workdir / f"run_{threads}"
            shutil.rmtree(out, ignore_errors=True)
            run([*launcher, "train", "--data", str(data), "--model", str(ckpt), "--output", str(out), "--mode", "full",
                 "--epochs", f"{args.epochs:g}", "--batch-size", str(batch), "--lr", "5e-5", "--threads", str(threads),
                 "--precision", "fp32", "--seed", "0"], env={"OMP_NUM_THREADS": str(threads)},
                log=args.workdir / f"run_{threads}.log")
            m = json.loads((out / "metrics.json").read_text())
            rates[name].append(m["train_samples_per_second"])
            accuracy[name].append(m["accuracy"])
            print(name, round(m["train_samples_per_second"], 2), "samples/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    a, b = list(variants)
    result = {"benchmark": "processes_vs_threads", "machine": machine_facts(2), "clip_seconds": args.seconds,
              "samples_per_second": {k: [round(x, 3) for x in v] for k, v in rates.items()},
              "accuracy": accuracy, "median_ratio_2proc_vs_2threads": round(med[b] / med[a], 3)}
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
