#!/usr/bin/env python3
"""Issue 14: one 5-second clip through PyTorch fp32 (`Predictor`), onnxruntime fp32 and onnxruntime int8
(`Predictor(backend="onnx")`, numpy features), side by side in one run on the same clip, model and threads; the
file sizes; the top-1 agreement of the ONNX files with PyTorch over many clips (`astapp.export.to_onnx`'s
own check). The checkpoint is randomly initialised (no Hub); its head is scaled up so that its
predictions are not near-ties that any rounding flips (a trained head is similarly decisive).

    python bench/bench_onnx.py --size base --clips 200 --out bench/out/onnx.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from common import make_checkpoint, write_json


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    keep = [f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c", "vnni")]
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    return f"{model}; {' '.join(sorted(keep))}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="base")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clips", type=int, default=200, help="clips for the top-1 agreement")
    ap.add_argument("--clip-seconds", type=float, default=1.0, help="length of the agreement clips")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/out/onnx.json"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from astapp.data.synth import KINDS, make_signal
    from astapp.export.to_onnx import export_onnx
    from astapp.features.fbank import choose_max_length
    from astapp.model.folder import export_model
    from astapp.model.loading import load_model
    from astapp.predict.predictor import Predictor

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="astapp_bench_onnx_"))
    ckpt = make_checkpoint(work / "ckpt", args.size)
    labels = [f"class_{i}" for i in range(10)]
    frames = choose_max_length([args.seconds])
    torch.manual_seed(0)
    model = load_model(str(ckpt), labels, frames)
    with torch.no_grad():
        model.classifier.dense.weight.mul_(20.0)
    export_dir = work / "export"
    export_model(model, labels, frames, -4.27, 4.57, export_dir)

    rng = np.random.default_rng(1)
    clips = [make_signal(KINDS[i % len(KINDS)], args.clip_seconds, rng=rng) for i in range(args.clips)]
    t0 = time.perf_counter()
    check = export_onnx(export_dir, export_dir / "onnx", clips, source="generated")
    export_s = time.perf_counter() - t0

    wav = make_signal("chirp", args.seconds, rng=np.random.default_rng(0))
    pt = Predictor(export_dir)
    o32 = Predictor(export_dir, backend="onnx", threads=args.threads)
    o8 = Predictor(export_dir, backend="onnx", quantized=True, threads=args.threads)
    pt_ms = median_ms(lambda: pt.predict(wav, top_k=5), args.repeats)
    o32_ms = median_ms(lambda: o32.predict(wav, top_k=5), args.repeats)
    o8_ms = median_ms(lambda: o8.predict(wav, top_k=5), args.repeats)
    weights_mb = (export_dir / "model.safetensors").stat().st_size / 1e6
    result = {
        "benchmark": "onnx", "model": args.size, "clip_seconds": args.seconds, "max_length": frames,
        "threads": args.threads, "cpu": cpu_flags(), "torch": torch.__version__,
        "precision": "PyTorch fp32, ORT fp32, ORT int8 (dynamic, QInt8 weights)",
        "pytorch_fp32_ms": pt_ms, "ort_fp32_ms": o32_ms, "ort_int8_ms": o8_ms,
        "ort_fp32_speedup": round(pt_ms / o32_ms, 2), "ort_int8_speedup": round(pt_ms / o8_ms, 2),
        "size_mb": {"safetensors": round(weights_mb, 1), "onnx_fp32": check.get("fp32", {}).get("size_mb"),
                    "onnx_int8": check.get("int8", {}).get("size_mb")},
        "agreement_clips": check.get("clips"), "agreement_clip_seconds": args.clip_seconds,
        "fp32_top1_agreement": check.get("fp32", {}).get("top1_agreement"),
        "fp32_max_prob_diff": check.get("fp32", {}).get("max_prob_diff"),
        "int8_top1_agreement": check.get("int8", {}).get("top1_agreement"),
        "int8_max_prob_diff": check.get("int8", {}).get("max_prob_diff"),
        "check_passed": check.get("passed"), "export_and_check_seconds": round(export_s, 1),
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
