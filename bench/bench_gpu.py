#!/usr/bin/env python3
"""Issue 6, target 6: training samples/s and model-FLOPs utilisation (MFU) of base AST on a GPU.

For each input length (512 and 1024 frames) it times full training steps (forward, backward, AdamW)
of a randomly initialised base AST under bf16 autocast, and measures the device's own dense bf16
matmul rate in the same run, so MFU = achieved model FLOP/s / measured matmul FLOP/s (not a
datasheet number). `--device cpu` runs the same code on the CPU (a smoke test, or CPU MFU).

    python bench/bench_gpu.py --out bench/out/gpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import SIZES, machine_facts, write_json


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device, dtype, n: int, repeats: int) -> float:
    """Dense matmul FLOP/s of this device for n x n operands."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def step_rate(device, size: str, frames: int, batch: int, steps: int, bf16: bool) -> float:
    """Training samples per second of full steps."""
    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    cfg = ASTConfig(max_length=frames, num_labels=10, **SIZES[size])
    cfg._attn_implementation = "sdpa"
    model = ASTForAudioClassification(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    x = torch.randn(batch, frames, 128, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def one() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_values=x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        one()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        one()
    sync(device)
    return batch * steps / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="base")
    ap.add_argument("--frames", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--matmul-n", type=int, default=8192)
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    ap.add_argument("--out", type=Path, default=Path("bench/out/gpu.json"))
    args = ap.parse_args()

    import torch
    from transformers import ASTConfig

    from astapp.model.loading import model_flops_per_sample

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA GPU here; run with --device cpu for a CPU measurement.")
    bf16 = not args.fp32
    peak = matmul_rate(device, torch.bfloat16 if bf16 else torch.float32, args.matmul_n,
                       repeats=20 if device.type == "cuda" else 2)
    rows = []
    for frames in args.frames:
        sps = step_rate(device, args.size, frames, args.batch_size, args.steps, bf16)
        flops = model_flops_per_sample(ASTConfig(max_length=frames, **SIZES[args.size]), frames, training=True)
        rows.append({"frames": frames, "train_samples_per_second": round(sps, 2),
                     "model_tflops_per_second": round(sps * flops / 1e12, 2),
                     "mfu": round(sps * flops / peak, 3)})
        print(json.dumps(rows[-1]), flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"benchmark": "gpu_mfu", "device": name, "machine": machine_facts(), "size": args.size, "bf16": bf16,
              "batch_size": args.batch_size, "measured_matmul_tflops": round(peak / 1e12, 1), "results": rows}
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
