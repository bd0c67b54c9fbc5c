"""Issue 12: cross-validation cost, label-issue recall and the embedding map's speed, in one run.

    python bench/bench_cv.py --out bench/out/cv.json                   # the issue's 400 x 5 s, base AST
    python bench/bench_cv.py --clips 120 --out bench/out/cv.json       # a shorter run (same ratio)

Part 1, time (both through the CLI, each with a cold cache of its own, base-size AST randomly
initialised, 5 s clips, frozen mode): one frozen training (`astapp train --mode frozen`) against a
5-fold frozen cross-validation (`astapp cv --mode frozen --folds 5`) on the same data. The goal:
CV <= 1.2 x the training.
Part 2, label issues: clearly separable classes (`synth.make_tone_classes`, a tone per class) with
10 % of the files moved into another class's folder, and the example dataset (spoken words and
everyday sounds made offline) with 10 % of its labels flipped the same way; `astapp label-issues`
(frozen, scratch:tiny: random weights, weak embeddings) ranks the suspects; we report precision and
recall in the top 2 x (number flipped).
Part 3, the map: 2-D reduction of 2,000 768-d embeddings (PCA, the default above 600 clips, and
t-SNE) and drawing the map image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from common import ROOT, make_checkpoint, python, run, write_json


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return sorted(f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"))


def make_clips(root: Path, n: int, seconds: float) -> Path:
    from astapp.data.synth import make_class_folders

    if not root.exists():
        make_class_folders(root, n_classes=5, per_class=n // 5, seconds=(seconds * 0.9, seconds * 1.1), seed=3)
    return root


def part_time(work: Path, n: int, seconds: float, rounds: int = 2) -> dict:
    """Both commands, cold caches, in alternating order per round (train-cv, then cv-train, ...)."""
    data = make_clips(work / f"clips-{n}", n, seconds)
    ckpt = make_checkpoint(work / "base-ckpt", "base", max_length=1024)
    common = ["--data", str(data), "--model", str(ckpt), "--mode", "frozen", "--precision", "fp32"]
    cmds = {"frozen_training": ["train", *common, "--epochs", "5"],
            "cv_5_fold": ["cv", *common, "--folds", "5", "--json"]}
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    for r in range(rounds):
        for name in (list(cmds) if r % 2 == 0 else list(cmds)[::-1]):
            cache = work / f"cache-{name}"
            shutil.rmtree(cache, ignore_errors=True)
            res = run([python(), "-m", "astapp", *cmds[name], "--output", str(work / f"run-{name}")],
                      env={"ASTAPP_CACHE_DIR": str(cache)}, log=work / f"{name}.log")
            walls[name].append(res["wall_seconds"])
    doc = json.loads((work / "run-cv_5_fold" / "cv.json").read_text())
    train_m = json.loads((work / "run-frozen_training" / "metrics.json").read_text())
    ratios = [c / t for c, t in zip(walls["cv_5_fold"], walls["frozen_training"], strict=True)]
    return {"clips": n, "seconds_per_clip": seconds, "rounds": rounds, "wall_seconds": walls,
            "cv_backbone_seconds_last": round(float(doc.get("backbone_seconds") or 0), 2),
            "cv_accuracy_mean": doc["mean"]["accuracy"], "training_accuracy": train_m["accuracy"],
            "ratio_cv_over_training_per_round": [round(x, 3) for x in ratios],
            "ratio_cv_over_training_median": round(float(np.median(ratios)), 3)}


def flip_example(work: Path, share: float = 0.1) -> tuple[Path, list[str]]:
    """The example zip extracted, then `share` of its files moved into another class's folder."""
    from astapp.data.examples import example_zip_path
    from astapp.data.ingest import scan

    root = work / "example-flipped"
    shutil.rmtree(root, ignore_errors=True)
    with zipfile.ZipFile(example_zip_path()) as z:
        z.extractall(root)
    listing = scan(root)
    rng = np.random.default_rng(0)
    items = listing.items
    classes = sorted({i.label for i in items})
    moved = []
    for k in rng.choice(len(items), size=int(round(share * len(items))), replace=False):
        item = items[int(k)]
        other = [c for c in classes if c != item.label][int(rng.integers(len(classes) - 1))]
        dest = Path(item.path).parent.parent / other / Path(item.path).name
        Path(item.path).rename(dest)
        moved.append(dest.relative_to(listing.root).as_posix())
    return listing.root, moved


def recall(work: Path, name: str, data: Path, flipped: list[str], model: str = "scratch:tiny") -> dict:
    t0 = time.perf_counter()
    out = work / f"issues-{name}"
    cmd = [python(), "-m", "astapp", "label-issues", "--data", str(data), "--model", model, "--mode", "frozen",
           "--output", str(out), "--json"]
    res = run(cmd, env={"ASTAPP_CACHE_DIR": str(work / f"cache-issues-{name}")}, log=work / f"issues-{name}.log")
    issues = json.loads((out / "label_issues.json").read_text())
    top = {d["path"] for d in issues[: 2 * len(flipped)]}
    hits = len(top & set(flipped))
    return {"clips_flipped": len(flipped), "suspects_listed": len(issues), "top_n": 2 * len(flipped),
            "recall_top_2n": round(hits / max(1, len(flipped)), 3), "precision_top_2n": round(hits / max(1, len(top)), 3),
            "cv_accuracy": json.loads((out / "cv.json").read_text())["mean"]["accuracy"],
            "seconds": round(time.perf_counter() - t0, 1), **res}


def part_map(n: int = 2000) -> dict:
    from astapp.evaluation.embedmap import reduce_2d
    from astapp.evaluation.figures import embedding_map

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (10, 768))
    emb = (centres[rng.integers(10, size=n)] + rng.normal(0, 1, (n, 768))).astype(np.float32)
    labels = [f"c{i % 10}" for i in range(n)]
    out = {"clips": n}
    for method in ("auto", "t-SNE"):
        t0 = time.perf_counter()
        xy, used = reduce_2d(emb, method=method)
        out[f"reduce_{method}_seconds"] = round(time.perf_counter() - t0, 2)
        out[f"reduce_{method}_method"] = used
        if method == "auto":
            t0 = time.perf_counter()
            embedding_map(xy, labels, [""] * n, 5)
            out["draw_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "cv.json")
    ap.add_argument("--skip-time", action="store_true")
    ap.add_argument("--only-time", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="astapp-bench-cv-"))
    from astapp.data.synth import make_tone_classes

    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "flags": cpu_flags(), "precision": "fp32"}}
    if not a.only_time:
        tones = work / "tones"
        flipped = make_tone_classes(tones, per_class=50, flip=0.1, seed=0)
        result["label_issues_tones"] = recall(work, "tones", tones, flipped)
        ex_root, ex_flipped = flip_example(work)
        result["label_issues_example"] = recall(work, "example", ex_root, ex_flipped)
        result["map"] = part_map()
    if not a.skip_time:
        result["time"] = part_time(work, a.clips, a.seconds, a.rounds)
    write_json(a.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
