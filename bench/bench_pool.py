#!/usr/bin/env python3
"""Issue 27: a pool of unlabeled audio — labeling efficiency, label-next latency, search latency, disk size.

1. Labeling efficiency: a generated labelled dataset (`astapp.data.synth` kinds, one folder per class) is built
   into a pool with the tiny AST checkpoint the tests use (random weights: no Hub here), each window's true class is
   the oracle, and `astapp.pool.simulate` compares margin with random sampling over several seeds.
2. Latency of one label-next round (`astapp.pool.active.next_round`: head fit, probabilities of every window,
   proposals, 5-fold CV) at 20 000 windows of 768-d float16 unit vectors.
3. Search: exact numpy scan vs the faiss IVF index (`astapp.pool.search`) at 100 000 and 1 000 000 random 768-d
   float16 vectors (memmapped); queries are pool rows plus noise; recall@10 of the index against the exact scan.
4. Disk: bytes per window of the real pool (embeddings + windows table) x the windows of 100 h at a 1 s hop.

    python bench/bench_pool.py --out bench/out/pool.json [--sizes 100000,1000000]

Efficiency with a pretrained stand-in (issue 27, BENCHMARKS section 27; `--model pretrained` builds or reuses
bench/pretrained.py's checkpoint; the imbalanced pool is 70 % background noise and rare events at 3-8 %):

    python3 bench/bench_pool.py --model pretrained --pools balanced,imbalanced --seeds 0,1,2,3,4 \
        --skip label_next,search --work /tmp/strong_pool --out bench/out/pool_pretrained.json
    python3 bench/bench_pool.py --model tiny --pools imbalanced --seeds 0,1,2,3,4 \
        --skip label_next,search --work /tmp/strong_pool_tiny --out bench/out/pool_tiny_imbalanced.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


IMBALANCED = {"noise": 0.70, "tone": 0.08, "chirp": 0.06, "clicks": 0.05, "am": 0.04, "harmonic": 0.04, "fm": 0.03}
STRATEGIES = ("margin", "mix", "positives", "diverse", "random")


def imbalanced_folders(root: Path, total: int, seed: int = 0) -> dict[str, int]:
    """A realistic unlabeled pool: mostly background (the "noise" kind, 70 %) with rare events at 3-8 % each,
    one folder per class (the folder is only the oracle's answer; the pool never sees it)."""
    from astapp.data.synth import make_signal, write_wav

    rng = np.random.default_rng(seed)
    counts = {k: max(2, int(round(share * total))) for k, share in IMBALANCED.items()}
    for kind, n in counts.items():
        for j in range(n):
            write_wav(root / kind / f"{kind}_{j:04d}.wav", make_signal(kind, 1.0, 16_000, rng))
    return counts


def backbone(name: str, work: Path) -> str:
    """The pool's model: "tiny" (random weights, as the tests use) or "pretrained" (bench/pretrained.py's
    self-pretrained small AST, built once and cached) or a checkpoint folder."""
    if name == "tiny":
        from conftest import build_tiny_ast

        return str(build_tiny_ast(work / "ckpt"))
    if name == "pretrained":
        from pretrained import pretrained

        return str(pretrained())
    return name


def _ratio_summary(v: list[float]) -> dict:
    a = np.asarray(v, float)
    ok = ~np.isnan(a)
    return {"per_seed": [round(r, 3) for r in v], "mean": round(float(a[ok].mean()), 3) if ok.any() else None,
            "seeds_with_a_ratio": int(ok.sum())}


def efficiency(work: Path, classes: int, per_class: int, seeds: list[int], batch: int, model: str = "tiny",
               pool_kind: str = "balanced", total: int = 800) -> dict:
    """Every strategy of `astapp.pool.active` against random on a pool built by the product's `build_pool` with
    `model`; `pool_kind` "balanced" (classes x per_class) or "imbalanced" (IMBALANCED shares of `total` windows)."""
    import torch

    from astapp.data.synth import make_class_folders
    from astapp.pool.build import build_pool
    from astapp.pool.simulate import simulate
    from astapp.pool.store import Pool

    torch.set_num_threads(2)
    ckpt = backbone(model, work)
    data = work / "data"
    if pool_kind == "imbalanced":
        counts = imbalanced_folders(data, total)
    else:
        counts = dict.fromkeys(make_class_folders(data, n_classes=classes, per_class=per_class, seconds=1.0, seed=0),
                               per_class)
    t0 = time.time()
    meta = build_pool(data, ckpt, work / "pool")
    build_s = time.time() - t0
    pool = Pool(work / "pool")
    y = np.array([w.file.split("/", 1)[0] for w in pool.windows])
    out = simulate(np.asarray(pool.embeddings, np.float32), y, seeds, batch=batch, strategies=STRATEGIES)
    ratios: dict[str, list[float]] = {s: [] for s in STRATEGIES if s != "random"}
    for row in out["seeds"]:  # a curve that never stays at the target (None: noisy plateau) has no ratio: nan
        for s in ratios:
            a, b = row["needed"][s], row["needed"]["random"]
            ratios[s].append(a / b if a and b else float("nan"))
    out.update(model=model, checkpoint=ckpt, pool_kind=pool_kind, class_windows=counts, windows=len(pool),
               build_seconds=round(build_s, 1), pass_=meta["pass"], dim=meta["dim"],
               ratio_to_random={s: _ratio_summary(v) for s, v in ratios.items()},
               bytes_per_window=(pool.folder / "embeddings.npy").stat().st_size / len(pool),
               table_bytes_per_window=(pool.folder / "windows.csv").stat().st_size / len(pool),
               uptime=os.popen("uptime").read().strip())
    return out


def unit_f16(path: Path, n: int, d: int, seed: int = 0, clusters: int = 0) -> np.ndarray:
    """n random unit rows as a float16 .npy memmap, written in chunks (1 000 000 x 768 is 1.5 GB).

    clusters=0: isotropic (the worst case for an IVF index: a row's 10 nearest are near-ties scattered over all
    lists); clusters=C: C random centres, each row a centre plus noise (cosine ~0.5 to its centre), closer to what
    embeddings of recordings look like (sounds that recur), where "the 10 nearest" is a meaningful question."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(clusters, 1), d), dtype=np.float32) / np.sqrt(d)
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, d))
    for a in range(0, n, 100_000):
        x = rng.standard_normal((min(100_000, n - a), d), dtype=np.float32)
        if clusters:
            x = x / np.sqrt(d) + 1.7 * centres[rng.integers(0, clusters, len(x))]
        arr[a : a + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    arr.flush()
    return np.load(path, mmap_mode="r")


def exact_batch(emb: np.ndarray, qs: np.ndarray, k: int) -> list[np.ndarray]:
    """The exact top-k ids of several queries in one pass over the memmap (the recall reference)."""
    best = [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in qs]
    for a in range(0, len(emb), 65536):
        s = np.asarray(emb[a : a + 65536], np.float32) @ qs.T
        ids = np.arange(a, a + len(s))
        for j in range(len(qs)):
            sc, ii = np.r_[best[j][0], s[:, j]], np.r_[best[j][1], ids]
            top = np.argsort(-sc)[:k]
            best[j] = (sc[top], ii[top])
    return [b[1] for b in best]


def label_next_latency(work: Path, n: int = 20_000, d: int = 768, labels: int = 200, classes: int = 5) -> dict:
    from astapp.pool.active import next_round

    emb = unit_f16(work / "ln.npy", n, d)
    rng = np.random.default_rng(1)
    labelled = {int(i): f"c{k % classes}" for k, i in enumerate(rng.choice(n, labels, replace=False))}
    groups = np.arange(n) // 30
    next_round(emb, labelled, groups, n=10, strategy="mix", cv=False)  # imports (sklearn) out of the timing
    times, with_cv, cpu = [], [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        next_round(emb, labelled, groups, n=10, strategy="mix", cv=False)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # this process's CPU seconds: what a machine to itself would take
        t0 = time.perf_counter()
        next_round(emb, labelled, groups, n=10, strategy="mix")
        with_cv.append(time.perf_counter() - t0)
    return {"windows": n, "dim": d, "labels": labels, "classes": classes, "refit_proposals_s": times,
            "best_s": min(times), "cpu_s": cpu, "with_cv_s": with_cv, "best_with_cv_s": min(with_cv)}


def search_latency(work: Path, n: int, d: int = 768, queries: int = 20, clusters: int = 0) -> dict:
    """Median search time of the index (faiss part and exact re-scoring part) and the numpy scan, recall of the
    index against the exact scan at 10 (and at 1) over all `queries`."""
    from astapp.pool import search as S

    emb = unit_f16(work / f"s{n}.npy", n, d, seed=n, clusters=clusters)
    rng = np.random.default_rng(2)
    qs = np.stack(
        [
            np.asarray(emb[int(i)], np.float32) + rng.standard_normal(d).astype(np.float32) * 0.02
            for i in rng.choice(n, queries, replace=False)
        ]
    )
    out: dict = {"windows": n, "dim": d, "data": f"{clusters} clusters" if clusters else "isotropic"}
    exact = exact_batch(emb, qs, 10)
    t = []
    for q in qs[:3]:
        t0 = time.perf_counter()
        S.brute(emb, q, 10)
        t.append(time.perf_counter() - t0)
    out["numpy_exact_ms"] = 1000 * float(np.median(t))
    t0 = time.perf_counter()
    index = S.build_index(emb)
    out["index_build_s"] = time.perf_counter() - t0
    index.nprobe = S.nprobe(index.nlist)
    out.update(nlist=int(index.nlist), nprobe=int(index.nprobe), rerank=S.RERANK)

    class _P:  # the index's re-scoring reads the same memmap
        embeddings = emb

    pidx = S.PoolIndex.__new__(S.PoolIndex)
    pidx.pool, pidx.index = _P(), index
    out["probes"] = {}
    for probe in sorted({max(4, index.nprobe // 2), int(index.nprobe)}):  # the default and half of it
        index.nprobe = probe
        t, t_faiss, rec, rec1 = [], [], [], []
        for i, q in enumerate(qs):
            t0 = time.perf_counter()
            index.search(q.reshape(1, -1), max(10 * S.RERANK, 64))
            t_faiss.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _, ids = pidx.search(q, 10)
            t.append(time.perf_counter() - t0)
            rec.append(len(set(ids.tolist()) & set(exact[i].tolist())) / 10)
            rec1.append(float(ids[0] == exact[i][0]))
        out["probes"][probe] = {
            "index_ms": 1000 * float(np.median(t)),
            "faiss_ms": 1000 * float(np.median(t_faiss)),
            "recall_at_10": float(np.mean(rec)),
            "recall_at_1": float(np.mean(rec1)),
        }
    default = out["probes"][S.nprobe(index.nlist)]
    out.update(
        index_ms=default["index_ms"],
        index_recall_at_10=default["recall_at_10"],
        index_recall_at_1=default["recall_at_1"],
    )
    (work / f"s{n}.npy").unlink()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/pool.json")
    ap.add_argument("--work", default="/tmp/astapp-bench-pool")
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--per-class", type=int, default=60)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--model", default="tiny", help="efficiency backbone: tiny (random weights), pretrained "
                    "(bench/pretrained.py) or a checkpoint folder")
    ap.add_argument("--pools", default="balanced", help="efficiency pools: balanced,imbalanced")
    ap.add_argument("--total", type=int, default=800, help="windows of the imbalanced pool")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--clusters", default="2000,0", help="search data: cluster counts, 0 = isotropic")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: efficiency,label_next,search")
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    skip = set(a.skip.split(","))
    res: dict = {}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out.write_text(json.dumps(res, indent=1, default=float))

    if "efficiency" not in skip:
        for kind in a.pools.split(","):
            name = "efficiency" if kind == "balanced" and a.model == "tiny" else f"efficiency_{a.model}_{kind}"
            res[name] = efficiency(work / f"eff_{kind}", a.classes, a.per_class, [int(s) for s in a.seeds.split(",")],
                                   a.batch, a.model, kind, a.total)
            e = res[name]
            res["disk_100h_1s_hop_MB_at_768"] = 360_000 * (768 * 2 + e["table_bytes_per_window"]) / 1e6
            print(name, {s: r["mean"] for s, r in e["ratio_to_random"].items()},
                  [s["needed"] for s in e["seeds"]], flush=True)
            save()
    if "label_next" not in skip:
        res["label_next"] = label_next_latency(work)
        print("label next", res["label_next"]["best_s"], flush=True)
        save()
    if "search" not in skip:
        res["search"] = []
        for c in [int(x) for x in a.clusters.split(",")]:
            for n in [int(x) for x in a.sizes.split(",")]:
                res["search"].append(search_latency(work, n, clusters=c))
                res["search"][-1]["uptime"] = os.popen("uptime").read().strip()
                print("search", res["search"][-1], flush=True)
                save()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
