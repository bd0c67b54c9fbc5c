#!/usr/bin/env python3
"""Issue 28 at the right scale: what a student costs against a base-size teacher, side by side in one run.

Latency per clip and file size are architectural: they do not depend on how well the teacher is trained, so
this measures them with randomly initialised weights (no Hub): the teacher is `ASTConfig()`'s defaults (hidden
768, 12 layers, 86 M parameters, as AST base), the students are `astapp.distill.sizes.student_config` of it
("tiny" 192x4, "small" 384x6, the sizes `distill` builds). Per input length (`--lengths`, frames): each model
exported as a run's model folder, its checked int8 ONNX file (`astapp.export.bundle.ensure_onnx`), ms per clip
through `Predictor(backend="onnx", quantized=True, threads=2)` (numpy features included) with the models timed
in turn within each repeat (so the machine's load falls on all alike), the file-size ratio; then Listen live
with each student at a `--hop` hop (the app's `Listener`, torch backend as the app runs it): model ms per hop
and the worst delay. Agreement and F1 need a trained teacher: `bench/bench_distill.py`.

    python bench/bench_distill_speed.py --out bench/out/distill_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import write_json

MODELS = ("teacher", "tiny", "small")


def build_models(work: Path, frames: int) -> dict[str, Path]:
    """Run folders (model/ only) of the base teacher and its two students at `frames` input frames."""
    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    from astapp.distill.sizes import student_config
    from astapp.model.folder import export_model

    labels = ["a", "b", "c", "d"]
    teacher_cfg = ASTConfig(max_length=frames, num_labels=len(labels))
    runs = {}
    for name in MODELS:
        cfg = teacher_cfg if name == "teacher" else student_config(teacher_cfg, name)
        torch.manual_seed(0)
        run = work / f"{name}_{frames}"
        if not (run / "model").is_dir():
            export_model(ASTForAudioClassification(cfg).eval(), labels, frames, -4.27, 4.57, run / "model")
        runs[name] = run
    return runs


def onnx_side_by_side(runs: dict[str, Path], clip, threads: int, repeats: int) -> dict[str, dict]:
    from transformers import ASTConfig

    from astapp.distill.sizes import parameters
    from astapp.export.bundle import ensure_onnx
    from astapp.predict.predictor import Predictor

    facts, predictors = {}, {}
    for name, run in runs.items():
        check = ensure_onnx(run / "model", run / "onnx")
        predictors[name] = Predictor(run, backend="onnx", quantized=True, threads=threads)
        predictors[name].predict(clip)  # warm-up
        facts[name] = {"parameters": parameters(ASTConfig.from_pretrained(run / "model")),
                       "int8_mb": round((run / "onnx" / "model_quantized.onnx").stat().st_size / 1e6, 3),
                       "fp32_mb": round((run / "onnx" / "model.onnx").stat().st_size / 1e6, 3),
                       "onnx_check_passed": bool(check.get("passed")), "ms": []}
    for _ in range(repeats):
        for name, predictor in predictors.items():
            t = time.perf_counter()
            predictor.predict(clip)
            facts[name]["ms"].append(1000 * (time.perf_counter() - t))
    teacher = statistics.median(facts["teacher"]["ms"])
    for f in facts.values():
        ms = f.pop("ms")
        f.update(int8_ms_median=round(statistics.median(ms), 2), int8_ms_min=round(min(ms), 2),
                 speedup=round(teacher / statistics.median(ms), 1),
                 size_ratio=round(f["int8_mb"] / facts["teacher"]["int8_mb"], 4))
    return facts


def listen(run: Path, hop: float, seconds: float) -> dict:
    """Listen live with this model (torch, as the app runs it): model ms per hop, worst delay."""
    import numpy as np

    from astapp.data.synth import make_signal
    from astapp.predict.predictor import Predictor
    from astapp.service.listening import Listener, ListenSettings

    predictor = Predictor(run)
    listener = Listener(lambda w: predictor.predict(w, top_k=3).probs, predictor.labels, predictor.window_samples,
                        ListenSettings(hop=hop))
    audio = (0.5 * make_signal("chirp", seconds, sr=48_000) * 32767).astype(np.int16)
    for start in range(0, len(audio), 24_000):  # the browser's 0.5 s chunks
        listener.feed((48_000, audio[start:start + 24_000]))
    ms = [s * 1000 for s in listener.compute_seconds[1:]]
    return {"hop_s": hop, "predictions": len(ms), "model_ms_median": round(statistics.median(ms), 1),
            "model_ms_max": round(max(ms), 1), "worst_delay_s": round(0.5 + hop + max(ms) / 1000, 2),
            "keeps_up": bool(max(ms) / 1000 < hop)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[100, 1024], help="input frames (100 = 1 s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--hop", type=float, default=0.25)
    ap.add_argument("--listen-seconds", type=float, default=8.0)
    ap.add_argument("--teacher-listen-seconds", type=float, default=3.0, help="the teacher is slow: less audio")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/out/distill_speed.json"))
    args = ap.parse_args()

    import torch

    from astapp.data.synth import make_signal

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="astapp_bench_distill_speed_"))
    result: dict = {"benchmark": "distill_speed", "threads": args.threads, "torch": torch.__version__,
                    "weights": "random (architectural: speed and size only)", "cpu": os.uname().machine,
                    "load_start": os.getloadavg(), "lengths": {}}
    for frames in args.lengths:
        runs = build_models(work, frames)
        clip = make_signal("chirp", frames / 100, sr=16_000).astype("float32")
        row = onnx_side_by_side(runs, clip, args.threads, args.repeats)
        row["load"] = os.getloadavg()
        result["lengths"][str(frames)] = row
        write_json(args.out, result)
        print(frames, json.dumps(row), flush=True)
    window = min(args.lengths)
    runs = build_models(work, window)
    result["listen"] = {"window_frames": window}
    for name in ("tiny", "small", "teacher"):
        seconds = args.teacher_listen_seconds if name == "teacher" else args.listen_seconds
        result["listen"][name] = listen(runs[name], args.hop, seconds)
        result["listen"][name]["load"] = os.getloadavg()
        write_json(args.out, result)
        print("listen", name, json.dumps(result["listen"][name]), flush=True)
    result["load_end"] = os.getloadavg()
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
