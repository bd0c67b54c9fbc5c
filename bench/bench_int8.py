#!/usr/bin/env python3
"""Issue 18: the frozen one-off pass in int8 (dynamic quantisation) vs fp32 (and bf16 where native), side by side.

Base AST (random weights: the cost of a pretrained one), generated 5 s clips of 10 sound kinds, the
engine's own pieces (`Fbank`, `fastmodes.frozen_part`, `fastmodes.quantize_int8`, `HeadModel`). Timing:
every training batch goes through each variant in turn (rotating order), so a busy neighbour on the
CPU hits all of them alike; medians per clip. Accuracy: one head per variant, trained the same way
(same seed, order, epochs) on that variant's training embeddings, evaluated on the fp32 validation
embeddings -- exactly what the engine does with `--int8-pass` (validation stays fp32).

    python bench/bench_int8.py --clips 200 --out bench/out/int8.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from common import SIZES, machine_facts, matmul_peak, mfu, write_json


def train_head(model, x, y, xv, yv, epochs: int, seed: int) -> tuple[float, list[int]]:
    """The engine's frozen recipe in miniature: AdamW lr 1e-3, batch 16, `epochs`; best validation accuracy."""
    import torch

    from astapp.training.fastmodes import HeadModel

    torch.manual_seed(seed)
    head = HeadModel(model)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    best, best_pred = -1.0, []
    for _ in range(epochs):
        head.train()
        for idx in torch.randperm(len(x)).split(16):
            loss = torch.nn.functional.cross_entropy(head(x[idx]).logits, y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad()
        head.eval()
        with torch.no_grad():
            pred = head(xv).logits.argmax(-1)
        acc = float((pred == yv).float().mean())
        if acc > best:
            best, best_pred = acc, pred.tolist()
    head.load_state_dict(state)  # the next variant starts from the same head
    return best, best_pred


def repeated_splits(model, emb: dict, y, n_val: int, splits: int, epochs: int) -> dict:
    """Head accuracy with each variant's training embeddings, over many random splits of the same clips.

    One split's validation set is too small to resolve 1 point (1 clip of 50 is 2); the mean paired
    difference over `splits` splits, with its 95 % interval, is. Validation is always fp32 (what the
    engine does); "int8_val" also validates on int8 embeddings, what an all-int8 pass would report.
    """
    import numpy as np
    import torch

    diffs: dict[str, list[float]] = {k: [] for k in emb if k != "fp32"}
    diffs["int8_val"] = []
    changed: dict[str, list[float]] = {k: [] for k in diffs}
    base_acc = []
    for s in range(splits):
        order = torch.from_numpy(np.random.default_rng(1000 + s).permutation(len(y)))
        va, tr = order[:n_val], order[n_val:]
        acc0, pred0 = train_head(model, emb["fp32"][tr], y[tr], emb["fp32"][va], y[va], epochs, seed=s)
        base_acc.append(acc0)
        for k in diffs:
            src = "int8" if k == "int8_val" else k
            val = emb["int8" if k == "int8_val" else "fp32"][va]
            acc, pred = train_head(model, emb[src][tr], y[tr], val, y[va], epochs, seed=s)
            diffs[k].append(100 * (acc - acc0))
            changed[k].append(float(np.mean([a != b for a, b in zip(pred, pred0, strict=True)])))
    out = {"splits": splits, "fp32_accuracy_mean": round(float(np.mean(base_acc)), 4)}
    for k, d in diffs.items():
        half = 1.96 * float(np.std(d, ddof=1)) / len(d) ** 0.5 if len(d) > 1 else float("nan")
        out[k] = {"accuracy_points_mean": round(float(np.mean(d)), 2), "ci95_points": round(half, 2),
                  "val_predictions_changed_mean": round(float(np.mean(changed[k])), 4)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--size", default="base")
    ap.add_argument("--val-share", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--splits", type=int, default=40, help="random train/validation splits for the accuracy estimate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--emulate-avx2", action="store_true",
                    help="restrict MKL, oneDNN, FBGEMM and ATen kernels to AVX2 (an AVX2-only CPU; no bf16 row)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/int8.json"))
    args = ap.parse_args()
    if args.emulate_avx2:  # read when the libraries load: set before torch is imported
        os.environ.update(MKL_ENABLE_INSTRUCTIONS="AVX2", ONEDNN_MAX_CPU_ISA="AVX2",
                          FBGEMM_ENABLE_INSTRUCTIONS="AVX2", ATEN_CPU_CAPABILITY="avx2")

    import numpy as np
    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    from astapp.data.synth import KINDS, make_signal
    from astapp.features.fbank import Fbank, choose_max_length, compute_stats
    from astapp.model.loading import pass_flops
    from astapp.training.fastmodes import frozen_part, quantize_int8

    torch.set_num_threads(args.threads)
    facts = machine_facts(args.threads)
    rng = np.random.default_rng(0)
    labels = [i % len(KINDS) for i in range(args.clips)]
    wavs = [make_signal(KINDS[c], args.seconds * rng.uniform(0.9, 1.1), rng=rng) for c in labels]
    frames = choose_max_length([len(w) / 16000 for w in wavs])
    stats = compute_stats(wavs, Fbank(frames))
    feats = Fbank(frames, mean=stats[0], std=stats[1])(wavs)
    n_val = int(round(args.clips * args.val_share))
    order = rng.permutation(args.clips)
    val_idx, train_idx = order[:n_val], order[n_val:]

    torch.manual_seed(0)
    model = ASTForAudioClassification(ASTConfig(max_length=frames, num_labels=len(KINDS), **SIZES[args.size])).eval()
    variants = {"fp32": frozen_part(model, 0), "int8": frozen_part(quantize_int8(model), 0)}
    bf16 = (facts["flags"]["avx512_bf16"] or facts["flags"]["amx_bf16"]) and not args.emulate_avx2
    if bf16:
        variants["bf16"] = variants["fp32"]
    peaks = {k: [] for k in variants}

    def measure_peaks() -> None:
        for k in variants:
            peaks[k].append(matmul_peak(k, args.threads))

    def run(name: str, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
            return variants[name](batch).float()

    measure_peaks()
    for name in variants:
        run(name, feats[:2])  # warm-up
    # every clip through every variant (train and validation alike), so that many random splits can be drawn
    emb = {k: torch.zeros(args.clips, model.config.hidden_size) for k in variants}
    per_clip: dict[str, list[float]] = {k: [] for k in variants}
    batch_mfu: dict[str, list[float]] = {k: [] for k in variants}  # against the peak measured next to it
    names = list(variants)
    flops = pass_flops(model.config, frames)
    for b, start in enumerate(range(0, args.clips, args.batch_size)):
        idx = np.arange(start, min(args.clips, start + args.batch_size))
        for name in names[b % len(names):] + names[:b % len(names)]:  # rotate who goes first
            t = time.perf_counter()
            emb[name][idx] = run(name, feats[idx])
            per_clip[name].append((time.perf_counter() - t) / len(idx))
            peak = matmul_peak(name, args.threads, repeats=2)  # the neighbours' load of this very moment
            peaks[name].append(peak)
            batch_mfu[name].append(flops / per_clip[name][-1] / peak)
    measure_peaks()

    y_all = torch.tensor(labels)
    rows = {}
    for name in variants:
        sec = statistics.median(per_clip[name])
        acc, pred = train_head(model, emb[name][train_idx], y_all[train_idx], emb["fp32"][val_idx], y_all[val_idx],
                               args.epochs, seed=0)
        rel = float((emb[name] - emb["fp32"]).norm() / emb["fp32"].norm())
        rows[name] = {"seconds_per_clip": round(sec, 4), "val_accuracy": round(acc, 4), "_pred": pred,
                      "embedding_rel_error_vs_fp32": round(rel, 4), **mfu(1 / sec, flops, statistics.median(peaks[name])),
                      "mfu_median_per_batch": round(statistics.median(batch_mfu[name]), 3)}
    ref_pred = rows["fp32"]["_pred"]
    for name in variants:
        r = rows[name]
        r["speedup_vs_fp32"] = round(rows["fp32"]["seconds_per_clip"] / r["seconds_per_clip"], 2)
        r["accuracy_points_vs_fp32"] = round(100 * (r["val_accuracy"] - rows["fp32"]["val_accuracy"]), 1)
        r["val_predictions_differing_from_fp32"] = sum(a != b for a, b in zip(r["_pred"], ref_pred, strict=True))
    for r in rows.values():
        r.pop("_pred")
    splits = repeated_splits(model, emb, y_all, n_val, args.splits, args.epochs)
    result = {"benchmark": "int8_frozen_pass", "machine": facts, "emulated_avx2_only": args.emulate_avx2, "model": args.size, "frames": frames,
              "clips_train": len(train_idx), "clips_val": n_val, "pass_gflops_per_clip": round(flops / 1e9, 1),
              "repeated_splits": splits, "peaks_gflops_median_min_max": {k: [round(f(v) / 1e9, 1) for f in (statistics.median, min, max)]
                                             for k, v in peaks.items()}, "results": rows}
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    print("repeated splits:", json.dumps(splits))
    print("\n| pass | s/clip | speed-up | MFU per batch (median; own-dtype peak) | head val acc | Δ points "
          "| val preds differing | rel. error |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['seconds_per_clip']:.3f} | {r['speedup_vs_fp32']:.2f}× | {r['mfu_median_per_batch']:.0%} "
              f"(peak {r['peak_gflops_per_second']:.0f} GFLOP/s) | {r['val_accuracy']:.3f} | "
              f"{r['accuracy_points_vs_fp32']:+.1f} | {r['val_predictions_differing_from_fp32']}/{n_val} | "
              f"{r['embedding_rel_error_vs_fp32']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
