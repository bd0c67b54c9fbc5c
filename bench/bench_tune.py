"""Issue 30: the settings search's cost and what it gains, in one run.

    python bench/bench_tune.py --out bench/out/tune.json                 # 400 clips, small AST, 50 trials
    python bench/bench_tune.py --clips 100 --trials 10 --seeds 1 --out /tmp/t.json   # a quick look
    python bench/bench_tune.py --parts time --modes frozen,last-1 --clips 200 --trials 20   # frozen vs last-N

Part 1, time (both through the CLI, each with a cold cache of its own, 2 torch threads, mode frozen, a
randomly initialised small AST: hidden 192, 4 layers, 128 frames): one default training
(`astapp train --mode frozen` with the app's defaults for that model) against `astapp tune --trials 50`
(the one pass, the default scored, 50 trials, the winner and the default refitted once for the test share).
The goal: the search <= 2x the training. Time per trial comes from the trials' own clocks (trial.json).
Part 2, gain: tuned vs default macro F1 on the held-back test clips (never seen by the search) over seeds, on
two generated datasets: five sound types (`synth.make_class_folders`) and four close tones with 10 % of the
labels flipped (`synth.make_tone_classes`, flip 0.1). A gain that does not hold on the test share is reported as
such (the search's validation share is small, so a validation gain may be noise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import machine_facts, make_checkpoint, make_dataset, python, run, write_json

THREADS = 2


def part_time(work: Path, clips: int, trials: int, ckpt: Path, mode: str = "frozen") -> dict:
    """One default training against one search, both in `mode`, back to back under the same load."""
    data = make_dataset(work / f"sounds-{clips}", n_classes=5, per_class=clips // 5, seconds=1.0, seed=3)
    common = ["--data", str(data), "--model", str(ckpt), "--mode", mode, "--max-length", "128",
              "--threads", str(THREADS), "--precision", "fp32"]
    walls = {}
    for name, cmd in (("default_training", ["train", *common, "--output", str(work / f"train-{mode}")]),
                      ("tune", ["tune", *common, "--trials", str(trials), "--output", str(work / f"tune-{mode}"),
                                "--quiet"])):
        cache = work / f"cache-{name}-{mode}"
        shutil.rmtree(cache, ignore_errors=True)
        walls[name] = run([python(), "-m", "astapp", *cmd], env={"ASTAPP_CACHE_DIR": str(cache)},
                          log=work / f"{name}-{mode}.log")["wall_seconds"]
    doc = json.loads((work / f"tune-{mode}" / "tune.json").read_text())
    per_trial = [json.loads(p.read_text())["seconds"]
                 for p in sorted((work / f"tune-{mode}" / "trials").glob("*/trial.json"))]
    states = [t["state"] for t in doc["trials"]]
    return {"mode": mode, "clips": clips, "trials": trials, "wall_seconds": walls,
            "ratio_tune_over_training": round(walls["tune"] / walls["default_training"], 2),
            "pass_seconds": doc["pass_seconds"], "search_seconds_in_engine": doc["seconds"],
            "seconds_per_trial": {"mean": round(statistics.mean(per_trial), 3),
                                  "median": round(statistics.median(per_trial), 3), "max": round(max(per_trial), 3)},
            "pruned": states.count("pruned"), "complete": states.count("complete")}


def one_search(data: Path, ckpt: Path, out: Path, trials: int, seed: int) -> dict:
    import torch

    from astapp.core.config import TrainConfig
    from astapp.tuning.search import run_tune

    torch.set_num_threads(THREADS)
    cfg = TrainConfig.from_dict({"data": str(data), "model": str(ckpt), "output": str(out), "mode": "frozen",
                                 "max_length": 128, "precision": "fp32", "seed": seed, "tune_trials": trials,
                                 "task": "tune"})
    t0 = time.time()
    run_tune(cfg)
    doc = json.loads((out / "tune.json").read_text())
    test = doc["test"]
    best = test["default"] if doc["kept_default"] else test["best"]  # the winner: the default when nothing beat it
    return {"seed": seed, "seconds": round(time.time() - t0, 1), "kept_default": doc["kept_default"],
            "val_default": round(doc["default"]["value"], 4), "val_best": round(doc["best"]["value"], 4),
            "test_default": round(test["default"]["f1_macro"], 4), "test_best": round(best["f1_macro"], 4),
            "test_gain": round(best["f1_macro"] - test["default"]["f1_macro"], 4), "test_clips": test["clips"],
            "best_params": doc["best"]["params"]}


def part_gain(work: Path, clips: int, trials: int, seeds: int, ckpt: Path) -> dict:
    from astapp.data.synth import make_tone_classes

    tones = work / f"tones-{clips}"
    if not tones.exists():
        make_tone_classes(tones, per_class=clips // 4, flip=0.1, seed=5,
                          classes={"a": 600.0, "b": 640.0, "c": 680.0, "d": 720.0})
    sets = {"five_sounds": make_dataset(work / f"sounds-{clips}", 5, clips // 5, 1.0, seed=3),
            "close_tones_10pct_flipped": tones}
    out: dict = {}
    for name, data in sets.items():
        rows = [one_search(data, ckpt, work / f"gain-{name}-{s}", trials, s) for s in range(seeds)]
        gains = [r["test_gain"] for r in rows]
        out[name] = {"runs": rows, "test_gain_mean": round(statistics.mean(gains), 4),
                     "test_gain_std": round(statistics.pstdev(gains), 4),
                     "val_gain_mean": round(statistics.mean(r["val_best"] - r["val_default"] for r in rows), 4),
                     "gain_held_on_test": sum(g > 0 for g in gains)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--size", default="small")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/out/tune.json"))
    ap.add_argument("--parts", default="time,gain", help="time, gain or both (comma-separated)")
    ap.add_argument("--modes", default="frozen", help="the time part's modes, side by side (e.g. frozen,last-1)")
    args = ap.parse_args()
    os.environ.setdefault("ASTAPP_CACHE_DIR", tempfile.mkdtemp(prefix="astapp-bench-tune-cache-"))
    work = args.work or Path(tempfile.mkdtemp(prefix="astapp-bench-tune-"))
    ckpt = make_checkpoint(work / f"{args.size}-ckpt", args.size, max_length=128)
    result = {"machine": machine_facts(THREADS), "model": args.size}
    if "time" in args.parts:
        result["time"] = [part_time(work, args.clips, args.trials, ckpt, mode) for mode in args.modes.split(",")]
        print(json.dumps(result["time"], indent=1), flush=True)
    if "gain" in args.parts:
        result["gain"] = part_gain(work, args.clips, args.trials, args.seeds, ckpt)
        print(json.dumps(result["gain"], indent=1), flush=True)
    write_json(args.out, result)


if __name__ == "__main__":
    main()
