#!/usr/bin/env python3
"""Issue 18, item 2: the CPU levers, each against the default path, side by side and interleaved.

Small AST (hidden 192, 4 layers) at 544 frames (5 s clips), batch 8, the engine's step (forward,
cross-entropy, backward, AdamW), random features. Every round runs each variant of a lever once, in
rotating order, so a busy neighbour hits all alike; reported: medians over rounds, MFU against a
matmul peak measured in this run at the same threads.

  attention  sdpa (the engine's default) vs eager
  adamw      foreach (torch's default) vs fused vs for-loop; optimizer step alone, base AST's parameters
  threads    2 vs 1
  eval batch inference (no grad) at the training batch (8) vs 32
  compile    torch.compile (inductor, CPU): one-off compile seconds and the step afterwards (--compile)

    python bench/bench_levers.py --rounds 5 --compile --out bench/out/levers.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from common import SIZES, machine_facts, matmul_peak, mfu, write_json

FRAMES, BATCH = 544, 8


def timed(fn: Callable[[], None], repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench/out/levers.json"))
    args = ap.parse_args()

    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    from astapp.model.loading import model_flops_per_sample

    torch.set_num_threads(args.threads)
    facts = machine_facts(args.threads)
    x = torch.randn(BATCH, FRAMES, 128)
    y = torch.randint(0, 10, (BATCH,))

    def model_for(attn: str) -> ASTForAudioClassification:
        torch.manual_seed(0)
        cfg = ASTConfig(max_length=FRAMES, num_labels=10, **SIZES["small"])
        cfg._attn_implementation = attn
        return ASTForAudioClassification(cfg).train()

    def step_fn(model, opt) -> Callable[[], None]:
        def step() -> None:
            loss = torch.nn.functional.cross_entropy(model(input_values=x).logits, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    models = {a: model_for(a) for a in ("sdpa", "eager")}
    steps = {a: step_fn(m, torch.optim.AdamW(m.parameters(), lr=1e-5)) for a, m in models.items()}
    cfg = models["sdpa"].config
    train_flops = model_flops_per_sample(cfg, FRAMES)
    fwd_flops = model_flops_per_sample(cfg, FRAMES, training=False)
    eval_model = model_for("sdpa").eval()
    x32 = torch.randn(32, FRAMES, 128)

    def evaluate(batch: int) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for s in range(0, 32, batch):
                    eval_model(input_values=x32[s:s + batch])
        return run

    base = ASTForAudioClassification(ASTConfig(max_length=FRAMES, num_labels=10, **SIZES["base"]))
    params = [p for p in base.parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opts = {"foreach": torch.optim.AdamW(params, lr=1e-5, foreach=True),
            "fused": torch.optim.AdamW(params, lr=1e-5, fused=True),
            "for-loop": torch.optim.AdamW(params, lr=1e-5, foreach=False)}

    def with_threads(n: int, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            torch.set_num_threads(n)
            try:
                fn()
            finally:
                torch.set_num_threads(args.threads)
        return run

    levers: dict[str, dict[str, Callable[[], None]]] = {
        "attention": {"sdpa": steps["sdpa"], "eager": steps["eager"]},
        "adamw": {k: o.step for k, o in opts.items()},
        "threads": {str(args.threads): steps["sdpa"], "1": with_threads(1, steps["sdpa"])},
        "eval batch": {"8 (training batch)": evaluate(8), "32": evaluate(32)},
    }
    compile_seconds = None
    if args.compile:
        cm = model_for("sdpa")
        ccall = torch.compile(cm)
        cstep = step_fn(ccall, torch.optim.AdamW(cm.parameters(), lr=1e-5))
        t = time.perf_counter()
        cstep()  # compiles forward and backward
        compile_seconds = time.perf_counter() - t
        levers["compile"] = {"eager": steps["sdpa"], "inductor": cstep}
    for fns in levers.values():
        for fn in fns.values():
            fn()  # warm-up
    peak = matmul_peak("fp32", args.threads)
    seen: dict[str, dict[str, list[float]]] = {k: {v: [] for v in fns} for k, fns in levers.items()}
    for r in range(args.rounds):
        for lever, fns in levers.items():
            names = list(fns)
            for name in names[r % len(names):] + names[:r % len(names)]:
                seen[lever][name].append(timed(fns[name], 1))
        print(f"round {r + 1}/{args.rounds}", flush=True)
    peak = max(peak, matmul_peak("fp32", args.threads))
    rows = []
    for lever, variants in seen.items():
        first = None
        for name, times in variants.items():
            med = statistics.median(times)
            first = first or med
            row = {"lever": lever, "variant": name, "seconds": round(med, 4), "vs_first": round(first / med, 2)}
            if lever in ("attention", "threads", "compile"):
                row.update(mfu(BATCH / med, train_flops, peak))
            elif lever == "eval batch":
                row.update(mfu(32 / med, fwd_flops, peak))
            rows.append(row)
    result = {"benchmark": "cpu_levers", "machine": facts, "precision": "fp32", "frames": FRAMES, "batch": BATCH,
              "rounds": args.rounds, "compile_seconds": compile_seconds, "peak_gflops": round(peak / 1e9, 1),
              "results": rows}
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    print("\n| lever | variant | median s | speed vs first | MFU |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['lever']} | {r['variant']} | {r['seconds']:.3f} | {r['vs_first']:.2f}× | "
              f"{r['mfu']:.0%} |" if "mfu" in r else
              f"| {r['lever']} | {r['variant']} | {r['seconds']:.3f} | {r['vs_first']:.2f}× | – |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
