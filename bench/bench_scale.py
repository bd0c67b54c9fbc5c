"""Issue 29: `detect --ray` on a local Ray of this machine's cores against the plain single-process run.

One invocation, the same model, recordings and settings throughout. A local Ray starts once
(`ray.init(num_cpus=2)`, timed apart); then rounds of four runs, interleaved so that the other work on a
shared machine weighs on plain and Ray alike (A B A B): plain at 1 torch thread, Ray with 1 worker of 1
thread, plain at 2 threads, Ray with 2 workers. Each run is split into its fixed start-up (plain: loading
the model; Ray: every worker loading its model) and the steady per-file part that follows, which is what
grows with the audio. Reported: the outputs' equality with the plain run (events.csv bytes, every record but
its timing), Ray's steady-state overhead against plain on the same cores (median of the rounds' ratios;
target <= 15 %), the fixed start-ups, the scaling from 1 to 2 workers, the load average before and after,
and (unless --no-window-cost) the cost of one window of the small and base AST for docs/SCALING.md's table.

    python bench/bench_scale.py --size small --files 8 --seconds 60 --no-window-cost   # BENCHMARKS §18
    python bench/bench_scale.py --size tiny --files 4 --seconds 20 --no-window-cost --rounds 1   # a quick look
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


def tree_cpu() -> dict[int, float]:
    """CPU seconds (user + system) used so far by this process and each live process under it (with a local
    Ray: its GCS, raylet and workers), by pid. CPU time, unlike wall time, hardly moves with the load other
    work puts on a shared machine."""
    import psutil

    out = {}
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def cpu_since(before: dict[int, float]) -> float:
    """CPU seconds the processes alive now used since `before` (a process started since: all of its time)."""
    return sum(t - before.get(pid, 0.0) for pid, t in tree_cpu().items())


def patient_raylet(seconds: float) -> None:
    """Bench only: let a local Ray's raylet take up to `seconds` to register (Ray 2.60 hard-codes 30 s in
    `ray._private.node`, which the shared machine at load 30-40 misses every time). The wait is in
    `services.get_node`, which that loop polls; nothing else changes, and ray.init's time is still reported."""
    import ray._private.services as services

    plain_get_node = services.get_node

    def get_node(gcs_address, node_id):
        deadline = time.monotonic() + seconds
        while True:
            try:
                return plain_get_node(gcs_address, node_id)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    services.get_node = get_node


def load_average() -> list[float]:
    return [round(x, 2) for x in __import__("os").getloadavg()]


def median(xs: list[float]) -> float:
    return float(np.median(xs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small", choices=["tiny", "small", "base"])
    ap.add_argument("--max-length", type=int, default=512, help="model input frames (512: 5.12 s windows)")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window-windows", type=int, default=4, help="windows per batch when costing base/small")
    ap.add_argument("--no-window-cost", action="store_true")
    ap.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds of plain 1, Ray 1, plain 2, Ray 2"
    )
    ap.add_argument("--work", default="/tmp/astapp-bench-scale")
    ap.add_argument("--out", default="bench/results/scale.json")
    args = ap.parse_args()

    import shutil

    import ray
    import torch

    from astapp.detection.detect import DetectSettings
    from astapp.detection.run import detect_files
    from astapp.predict.predictor import Predictor
    from astapp.scale.detect import detect_on_ray

    root = Path(args.work)
    model, folder = (
        exported(root, args.size, args.max_length),
        recordings(root / "rec", args.files, args.seconds),
    )
    settings = DetectSettings(threshold=0.34)
    res: dict = {
        "machine": machine_facts(2),
        "size": args.size,
        "max_length": args.max_length,
        "files": args.files,
        "seconds_per_file": args.seconds,
        "load_before": load_average(),
        "runs": [],
    }

    def plain(threads: int) -> tuple[float, float, float]:
        """(start-up: the model loaded, steady: every file analysed, steady CPU seconds) at `threads` threads."""
        torch.set_num_threads(threads)
        out = root / f"plain{threads}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        scorer = Predictor(model, backend="torch", threads=threads, batch_size=8)
        start = time.perf_counter() - t
        cpu = time.process_time()  # this process alone (the idle local Ray under it is not the plain run's)
        steady = timed(f"plain, {threads} thread(s)", lambda: detect_files(scorer, [folder], out, settings))
        return start, steady, time.process_time() - cpu

    def on_ray(workers: int) -> tuple[float, float, float]:
        """(start-up: every worker's model loaded, steady: the rest of the job, its CPU seconds: driver, Ray's
        own processes and the workers, sampled when the workers are ready and after the last file's record)."""
        out, ready, cpu = root / f"ray{workers}", [], []
        shutil.rmtree(out, ignore_errors=True)

        def up(pool) -> None:  # wait for every worker's model, so the rest is the per-file work alone
            ray.get([a.pid.remote() for a in pool])
            ready.append(time.perf_counter())
            cpu.append(tree_cpu())

        def on_file(event) -> None:  # after each record: the workers are still alive (killed at the end)
            cpu[1:] = [cpu_since(cpu[0])]

        start = time.perf_counter()
        wall = timed(
            f"ray, {workers} worker(s)",
            lambda: detect_on_ray(
                model,
                [folder],
                out,
                settings,
                threads=1,
                ray="",
                workers=workers,
                on_workers=up,
                events=on_file,
            ),
        )
        return ready[0] - start, start + wall - ready[0], cpu[1]

    patient_raylet(180.0)
    res["ray_init_failed_tries"] = 0
    while True:  # Ray gives its raylet 30 s to start: an overloaded machine can miss that; try again
        try:
            res["ray_init_s"] = timed(
                "ray.init(num_cpus=2)",
                lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False),
            )
            break
        except Exception:
            ray.shutdown()
            res["ray_init_failed_tries"] += 1
            if res["ray_init_failed_tries"] == 3:
                raise
    for r in range(args.rounds):  # A B A B: the machine's other load falls on both alike
        for kind, n, fn in (("plain", 1, plain), ("ray", 1, on_ray), ("plain", 2, plain), ("ray", 2, on_ray)):
            load = load_average()[0]
            start, steady, cpu = fn(n)
            res["runs"].append(
                {
                    "round": r,
                    "kind": kind,
                    "n": n,
                    "startup_s": round(start, 2),
                    "steady_s": round(steady, 2),
                    "steady_cpu_s": round(cpu, 2),
                    "load1_before": load,
                }
            )
            write_json(Path(args.out), res)
    ray.shutdown()
    res["load_after"] = load_average()
    summarise(res, root)
    write_json(Path(args.out), res)  # kept even if the window costs below run out of time
    if not args.no_window_cost:
        res["window_cost"] = []
        for size in ("small", "base"):
            res["window_cost"].append(window_cost(root, size, 2, args.window_windows))
            write_json(Path(args.out), res)
        eff = min(1.0, res["speedup_ray_1_to_2_workers_steady"] / 2)
        res["simulated_1000h"] = {"efficiency": eff, "rows": simulate(res["window_cost"], eff)}
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=2))
    write_json(Path(args.out), res)


def summarise(res: dict, root: Path) -> None:
    """Per round, Ray's steady time over plain's on the same cores; medians over the rounds."""

    def steady(kind: str, n: int, r: int) -> float:
        return next(x["steady_s"] for x in res["runs"] if (x["kind"], x["n"], x["round"]) == (kind, n, r))

    def cpu(kind: str, n: int, r: int) -> float:
        return next(x["steady_cpu_s"] for x in res["runs"] if (x["kind"], x["n"], x["round"]) == (kind, n, r))

    rounds = sorted({x["round"] for x in res["runs"]})
    for n in (1, 2):
        res[f"overhead_ray{n}_vs_plain{n}_steady"] = [
            round(steady("ray", n, r) / steady("plain", n, r) - 1, 4) for r in rounds
        ]
        res[f"overhead_ray{n}_vs_plain{n}_steady_median"] = median(res[f"overhead_ray{n}_vs_plain{n}_steady"])
        res[f"cpu_overhead_ray{n}_vs_plain{n}_steady"] = [
            round(cpu("ray", n, r) / cpu("plain", n, r) - 1, 4) for r in rounds
        ]
        res[f"cpu_overhead_ray{n}_vs_plain{n}_steady_median"] = median(
            res[f"cpu_overhead_ray{n}_vs_plain{n}_steady"]
        )
        res[f"ray{n}_startup_s_median"] = median(
            [x["startup_s"] for x in res["runs"] if (x["kind"], x["n"]) == ("ray", n)]
        )
    res["plain_startup_s_median"] = median([x["startup_s"] for x in res["runs"] if x["kind"] == "plain"])
    res["speedup_ray_1_to_2_workers_steady"] = median(
        [steady("ray", 1, r) / steady("ray", 2, r) for r in rounds]
    )
    res["speedup_plain_1_to_2_threads_steady"] = median(
        [steady("plain", 1, r) / steady("plain", 2, r) for r in rounds]
    )
    res["identical_to_plain_1_thread"] = {
        k: same(root / k, root / "plain1") for k in ("ray1", "ray2", "plain2")
    }
    audio_h = (
        sum(json.loads(p.read_text())["duration"] for p in (root / "plain1" / "records").glob("*.json"))
        / 3600
    )
    res["audio_hours"] = audio_h
    res["windows"] = sum(np.load(p)["times"].size for p in (root / "plain1" / "records").glob("*.npz"))
    res["x_real_time_steady_median"] = {
        f"{k}{n}": audio_h
        * 3600
        / median([x["steady_s"] for x in res["runs"] if (x["kind"], x["n"]) == (k, n)])
        for k in ("plain", "ray")
        for n in (1, 2)
    }


if __name__ == "__main__":
    main()
