"""Issue 29: `detect --ray` on a local Ray of this machine's cores against the plain single-process run.

One invocation, the same model, recordings and settings throughout: the plain run at 1 and 2 torch threads,
then a local Ray (`ray.init(num_cpus=2)`, its start-up timed apart) with 1 and with 2 workers of 1 thread
each. Reported: the outputs' equality with the plain run (events.csv bytes, every record but its timing),
Ray's overhead against the plain run on the same cores (target <= 15 %), the scaling from 1 to 2 workers,
and the measured cost of one window (core-seconds) of the small AST and of base AST at their full input,
which the simulated table of docs/SCALING.md turns into hours per 1 000 hours of audio at 1, 8 and 64 cores.

    python bench/bench_scale.py --size small --files 8 --seconds 60          # the figures of BENCHMARKS §18
    python bench/bench_scale.py --size tiny --files 4 --seconds 20 --no-window-cost   # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from common import SIZES, machine_facts, write_json

SR = 16_000
LABELS = ["beep", "hum", "whistle"]
FREQS = (520.0, 1520.0, 3000.0)


def recordings(root: Path, count: int, seconds: float) -> Path:
    """`count` recordings of noise with tones (each a different length around `seconds`)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng(i)
        n = int(seconds * (0.8 + 0.4 * i / max(count - 1, 1)) * SR)
        x = (rng.standard_normal(n) * 0.01).astype(np.float32)
        t = np.arange(n) / SR
        for k in range(1, 4):
            on = (t >= n / SR * k / 4) & (t < n / SR * k / 4 + 2)
            x[on] += 0.3 * np.sin(2 * np.pi * FREQS[(i + k) % 3] * t[on])
        sf.write(root / f"rec{i:02d}.wav", x, SR, subtype="PCM_16")
    return root


def exported(root: Path, size: str, max_length: int) -> Path:
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    from astapp.model.folder import export_model
    from astapp.model.loading import load_model

    out = root / f"model-{size}-{max_length}"
    if (out / "config.json").is_file():
        return out
    torch.manual_seed(0)
    dims = SIZES.get(size) or dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    ASTForAudioClassification(ASTConfig(max_length=max_length, num_labels=3, **dims)).save_pretrained(root / "ckpt")
    ASTFeatureExtractor(max_length=max_length).save_pretrained(root / "ckpt")
    export_model(load_model(str(root / "ckpt"), LABELS, max_length), LABELS, max_length, -5.5, 3.25, out)
    return out


def records(output: Path) -> dict:
    out = {}
    for p in sorted((output / "records").glob("*.json")):
        rec = json.loads(p.read_text())
        rec.pop("seconds", None)
        out[p.name] = rec
    return out


def same(a: Path, b: Path) -> bool:
    return (a / "events.csv").read_bytes() == (b / "events.csv").read_bytes() and records(a) == records(b)


def timed(label: str, fn) -> float:
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    print(f"{label}: {wall:.1f} s", flush=True)
    return wall


def window_cost(root: Path, size: str, threads: int, windows: int) -> dict:
    """Core-seconds per window of `size` at 1024 frames (10.24 s), batched as detection batches them."""
    import torch

    from astapp.predict.predictor import Predictor

    torch.set_num_threads(threads)
    pred = Predictor(exported(root, size, 1024), batch_size=windows)
    wavs = [np.random.default_rng(i).standard_normal(pred.window_samples).astype(np.float32) * 0.1
            for i in range(windows)]
    pred.outputs(wavs[:1])  # warm-up
    best = min(timed(f"{size} x{windows} windows", lambda: pred.outputs(wavs)) for _ in range(2))
    return {"size": size, "window_seconds": pred.window_samples / SR, "seconds_per_window": best / windows,
            "core_seconds_per_window": best * threads / windows}


def simulate(costs: list[dict], efficiency: float, cores=(1, 8, 64), audio_hours: float = 1000.0) -> list[dict]:
    """Wall hours for `audio_hours` of audio at the detect default hop (half a window), from the measured
    core-seconds per window, at `efficiency` of linear scaling (the measured 1 -> 2 worker figure)."""
    rows = []
    for c in costs:
        windows = audio_hours * 3600 / (c["window_seconds"] / 2)
        core_hours = windows * c["core_seconds_per_window"] / 3600
        rows.append({"size": c["size"], "core_hours": round(core_hours, 1),
                     **{f"{n}_cores_h": round(core_hours / (n * (efficiency if n > 1 else 1.0)), 1) for n in cores}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small", choices=["tiny", "small", "base"])
    ap.add_argument("--max-length", type=int, default=512, help="model input frames (512: 5.12 s windows)")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window-windows", type=int, default=4, help="windows per batch when costing base/small")
    ap.add_argument("--no-window-cost", action="store_true")
    ap.add_argument("--repeats", type=int, default=2, help="plain runs per thread count (the best is kept)")
    ap.add_argument("--work", default="/tmp/astapp-bench-scale")
    ap.add_argument("--out", default="bench/results/scale.json")
    args = ap.parse_args()

    import ray
    import torch

    from astapp.detection.detect import DetectSettings
    from astapp.detection.run import detect_files
    from astapp.scale.detect import detect_on_ray

    root = Path(args.work)
    model, folder = exported(root, args.size, args.max_length), recordings(root / "rec", args.files, args.seconds)
    settings = DetectSettings(threshold=0.34)
    res: dict = {"machine": machine_facts(2), "size": args.size, "max_length": args.max_length,
                 "files": args.files, "seconds_per_file": args.seconds}

    import shutil

    def plain(threads: int) -> float:
        torch.set_num_threads(threads)
        out, times = root / f"plain{threads}", []
        for _ in range(args.repeats):  # the best of several: the shared machine's load drifts
            shutil.rmtree(out, ignore_errors=True)
            times.append(timed(f"plain, {threads} thread(s)",
                               lambda: detect_files(model, [folder], out, settings, threads=threads)))
        return min(times)

    def on_ray(workers: int) -> tuple[float, float]:
        """(whole job, the part after every worker has loaded its model)."""
        out, ready = root / f"ray{workers}", []
        shutil.rmtree(out, ignore_errors=True)

        def up(pool) -> None:  # wait for every worker's model, so the rest is the per-file work alone
            ray.get([a.pid.remote() for a in pool])
            ready.append(time.perf_counter())

        start = time.perf_counter()
        wall = timed(f"ray, {workers} worker(s)", lambda: detect_on_ray(model, [folder], out, settings, threads=1,
                                                                         ray="", workers=workers, on_workers=up))
        return wall, start + wall - ready[0]

    res["plain_1_thread_s"], res["plain_2_threads_s"] = plain(1), plain(2)
    res["ray_init_s"] = timed("ray.init(num_cpus=2)", lambda: ray.init(num_cpus=2, include_dashboard=False,
                                                                      log_to_driver=False))
    res["ray_1_worker_s"], res["ray_1_worker_steady_s"] = on_ray(1)
    res["ray_2_workers_s"], res["ray_2_workers_steady_s"] = on_ray(2)
    ray.shutdown()
    res["identical_to_plain_1_thread"] = {k: same(root / k, root / "plain1") for k in ("ray1", "ray2", "plain2")}
    res["overhead_ray2_vs_plain2_steady"] = res["ray_2_workers_steady_s"] / res["plain_2_threads_s"] - 1
    res["overhead_ray1_vs_plain1_steady"] = res["ray_1_worker_steady_s"] / res["plain_1_thread_s"] - 1
    res["worker_startup_s"] = res["ray_2_workers_s"] - res["ray_2_workers_steady_s"]
    res["speedup_ray_1_to_2_workers_steady"] = res["ray_1_worker_steady_s"] / res["ray_2_workers_steady_s"]
    audio_h = sum(json.loads(p.read_text())["duration"] for p in (root / "plain1" / "records").glob("*.json")) / 3600
    windows = sum(np.load(p)["times"].size for p in (root / "plain1" / "records").glob("*.npz"))
    res["audio_hours"], res["windows"] = audio_h, windows
    res["x_real_time"] = {k: audio_h * 3600 / res[k] for k in ("plain_1_thread_s", "plain_2_threads_s",
                                                               "ray_2_workers_steady_s")}
    write_json(Path(args.out), res)  # kept even if the window costs below run out of time
    if not args.no_window_cost:
        res["window_cost"] = []
        for size in ("small", "base"):
            res["window_cost"].append(window_cost(root, size, 2, args.window_windows))
            write_json(Path(args.out), res)
        eff = min(1.0, res["speedup_ray_1_to_2_workers_steady"] / 2)
        res["simulated_1000h"] = {"efficiency": eff, "rows": simulate(res["window_cost"], eff)}
    print(json.dumps(res, indent=2))
    write_json(Path(args.out), res)


if __name__ == "__main__":
    main()
