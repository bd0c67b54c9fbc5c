#!/usr/bin/env python3
"""Issue 6, target 4: latency of one 5-second clip through `Predictor.predict`, side by side with
the bare model forward on ready-made features and with `transformers.pipeline` on the exported model.

    python bench/bench_infer.py --size base --out bench/out/infer.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import machine_facts, make_checkpoint, matmul_peak, mfu, write_json


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="base")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/out/infer.json"))
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import pipeline

    from astapp.data.synth import make_signal, write_wav
    from astapp.features.fbank import Fbank, choose_max_length
    from astapp.model.folder import export_model
    from astapp.model.loading import load_model
    from astapp.predict.predictor import Predictor

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="astapp_bench_infer_"))
    ckpt = make_checkpoint(work / "ckpt", args.size)
    labels = [f"class_{i}" for i in range(10)]
    frames = choose_max_length([args.seconds])
    model = load_model(str(ckpt), labels, frames)
    export_dir = work / "export"
    export_model(model, labels, frames, -4.27, 4.57, export_dir)

    wav = make_signal("chirp", args.seconds, rng=np.random.default_rng(0))
    clip = write_wav(work / "clip.wav", wav)

    predictor = Predictor(export_dir)
    bare = getattr(predictor.backend, "model", model)  # the torch backend's own AST
    bare.eval()
    feats = Fbank(max_length=frames, mean=-4.27, std=4.57)([wav])

    def forward() -> None:
        with torch.inference_mode():
            bare(input_values=feats)

    pipe = pipeline("audio-classification", model=str(export_dir), device="cpu")
    bare_ms = median_ms(forward, args.repeats)
    predict_wav_ms = median_ms(lambda: predictor.predict(wav, top_k=5), args.repeats)
    predict_file_ms = median_ms(lambda: predictor.predict(str(clip), top_k=5), args.repeats)
    # the pipeline decodes files with ffmpeg (absent here): give it the decoded array, as predict_array gets
    pipe_ms = median_ms(lambda: pipe({"raw": wav, "sampling_rate": 16000}, top_k=5), args.repeats)
    from astapp.model.loading import model_flops_per_sample

    peak = matmul_peak("fp32", args.threads)  # inference runs fp32 (the exported model)
    flops = model_flops_per_sample(bare.config, frames, training=False)
    result = {
        "benchmark": "inference_latency", "model": args.size, "clip_seconds": args.seconds,
        "machine": machine_facts(args.threads), "precision": "fp32", "forward_gflops": round(flops / 1e9, 1),
        "bare_forward_mfu": mfu(1000 / bare_ms, flops, peak),
        "predict_array_mfu": mfu(1000 / predict_wav_ms, flops, peak),
        "max_length": frames, "threads": args.threads,
        "bare_forward_ms": bare_ms,
        "predict_array_ms": predict_wav_ms,
        "predict_file_ms": predict_file_ms,
        "pipeline_array_ms": pipe_ms,
        "predict_overhead_vs_forward": round(predict_wav_ms / bare_ms - 1, 3),
        "predict_file_overhead_vs_forward": round(predict_file_ms / bare_ms - 1, 3),
        "pipeline_over_predict": round(pipe_ms / predict_wav_ms, 2),
    }
    write_json(args.out, result)
    import json

    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
