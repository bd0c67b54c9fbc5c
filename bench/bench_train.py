#!/usr/bin/env python3
"""Issue 6, target 1: training throughput of astapp vs the reference recipe, side by side.

For each clip length, one generated dataset and one randomly initialised small AST (hidden 192,
4 layers; the cost of a pretrained one) are shared by both pipelines, which run one after the other
in this invocation with the same epochs, batch size, learning rate, threads and no augmentation
(`--augment` adds the classic-augmentation pair). Reported: train samples/s of each, their ratio,
validation accuracy of each, and where the time goes (decode, features, forward/backward).

    python bench/bench_train.py --lengths 1.5 5 --epochs 3 --out bench/out/train.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from common import (
    SEED_PIPELINE,
    machine_facts,
    make_checkpoint,
    make_dataset,
    matmul_peak,
    mfu,
    python,
    run,
    write_json,
)


def stage_seconds(history: Path) -> dict[str, float]:
    """Seconds between consecutive `stage` events of an astapp run (where its time went)."""
    events = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    marks = [(e.get("stage", "?"), float(e["time"])) for e in events if e.get("type") == "stage" and "time" in e]
    end = max((float(e.get("time", 0)) for e in events), default=0.0)
    out: dict[str, float] = {}
    for (name, t), nxt in zip(marks, [*marks[1:], ("end", end)], strict=True):
        out[name] = round(out.get(name, 0.0) + max(0.0, nxt[1] - t), 2)
    return out


def component_costs(data: Path, ckpt: Path, seconds: float, batch: int, threads: int) -> dict:
    """Per-clip cost of each stage, measured directly for both recipes' settings."""
    import numpy as np
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    from astapp.data.audio import load_audio
    from astapp.features.fbank import Fbank, choose_max_length

    torch.set_num_threads(threads)
    files = sorted(p for p in data.rglob("*.wav"))[:32]
    t0 = time.perf_counter()
    wavs = [load_audio(f) for f in files]
    decode = (time.perf_counter() - t0) / len(files)
    auto_len = choose_max_length([len(w) / 16000 for w in wavs])

    fe = ASTFeatureExtractor(max_length=1024)
    t0 = time.perf_counter()
    fe(wavs, sampling_rate=16000, return_tensors="pt")
    ref_feat = (time.perf_counter() - t0) / len(wavs)
    fb = Fbank(max_length=auto_len)
    t0 = time.perf_counter()
    fb(wavs)
    our_feat = (time.perf_counter() - t0) / len(wavs)

    def step_cost(frames: int) -> float:
        cfg = ASTConfig.from_pretrained(ckpt)
        cfg.max_length = frames
        cfg.num_labels = 5
        model = ASTForAudioClassification(cfg)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        x = torch.randn(batch, frames, 128)
        y = torch.randint(0, 5, (batch,))
        times = []
        for _ in range(3):
            t = time.perf_counter()
            loss = model(input_values=x, labels=y).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - t)
        return float(np.median(times[1:])) / batch

    from astapp.model.loading import model_flops_per_sample

    peak = matmul_peak("fp32", threads)
    cfg = ASTConfig.from_pretrained(ckpt)
    cfg.num_labels = 5
    steps = {frames: step_cost(frames) for frames in (1024, auto_len)}
    step_mfu = {f"train_step_mfu_fp32_{frames}": mfu(1 / sec, model_flops_per_sample(cfg, frames), peak)
                for frames, sec in steps.items()}
    return {
        "decode_s_per_clip": round(decode, 4),
        "reference_features_s_per_clip_1024": round(ref_feat, 4),
        "astapp_features_s_per_clip_auto": round(our_feat, 4),
        "astapp_auto_max_length": auto_len,
        "train_step_s_per_sample_1024": round(steps[1024], 4),
        f"train_step_s_per_sample_{auto_len}": round(steps[auto_len], 4),
        **step_mfu,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=float, nargs="+", default=[1.5, 5.0])
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--per-class", type=int, default=24)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--augment", action="store_true", help="also run both with classic augmentation")
    ap.add_argument("--precision", default="auto",
                    help="astapp's precision (auto = bf16 training steps on a bf16-capable CPU); the "
                         "reference always trains in fp32, the Trainer default on a CPU")
    ap.add_argument("--workdir", type=Path, default=Path("bench/out/train"))
    ap.add_argument("--out", type=Path, default=Path("bench/out/train.json"))
    args = ap.parse_args()

    ckpt = make_checkpoint(args.workdir / "small_ast", "small")
    from transformers import ASTConfig

    from astapp.model.loading import model_flops_per_sample
    from astapp.training.devices import resolve_precision

    facts = machine_facts(args.threads)
    ours_dtype = resolve_precision(args.precision, False)
    peaks = {d: matmul_peak(d, args.threads) for d in {"fp32", ours_dtype}}
    print(json.dumps({"machine": facts, "astapp_precision": ours_dtype,
                      "peak_gflops": {d: round(p / 1e9, 1) for d, p in peaks.items()}}), flush=True)

    def loop_mfu(sps: float, frames: int, dtype: str) -> dict:
        """MFU of a whole Trainer.train loop (per-epoch evaluation included, so a lower bound)."""
        cfg = ASTConfig.from_pretrained(ckpt)
        cfg.num_labels = args.classes
        return mfu(sps, model_flops_per_sample(cfg, frames), peaks[dtype])

    results = []
    for secs in args.lengths:
        data = make_dataset(args.workdir / f"data_{secs:g}s", args.classes, args.per_class, secs)
        for aug in ([False, True] if args.augment else [False]):
            tag = f"{secs:g}s{'_aug' if aug else ''}"
            ref_out = args.workdir / f"ref_{tag}"
            shutil.rmtree(ref_out, ignore_errors=True)
            ref_cmd = [python(), str(SEED_PIPELINE), "--data", str(data), "--model", str(ckpt),
                       "--output", str(ref_out), "--epochs", f"{args.epochs:g}", "--batch-size",
                       str(args.batch_size), "--lr", f"{args.lr:g}", "--threads", str(args.threads)]
            if aug:
                ref_cmd.append("--augment")
            ref_run = run(ref_cmd, log=args.workdir / f"ref_{tag}.log")
            ref_run.pop("peak_rss_mib_children")  # cumulative over children: not per pipeline
            ref = json.loads((ref_out / "metrics.json").read_text())

            our_out = args.workdir / f"astapp_{tag}"
            shutil.rmtree(our_out, ignore_errors=True)
            shutil.rmtree(args.workdir / ".cache", ignore_errors=True)  # cold: decode and stats included
            our_cmd = [python(), "-m", "astapp", "train", "--data", str(data), "--model", str(ckpt),
                       "--output", str(our_out), "--epochs", f"{args.epochs:g}", "--batch-size",
                       str(args.batch_size), "--lr", f"{args.lr:g}", "--threads", str(args.threads),
                       "--mode", "full", "--augment", "classic" if aug else "none", "--seed", "0",
                       "--precision", args.precision]
            our_run = run(our_cmd, log=args.workdir / f"astapp_{tag}.log")
            our_run.pop("peak_rss_mib_children")
            ours = json.loads((our_out / "metrics.json").read_text())

            row = {
                "clip_seconds": secs,
                "augment": "classic" if aug else "none",
                "train_clips": ref["clips_train"],
                "reference": {
                    "train_samples_per_second": ref["train_samples_per_second"],
                    "accuracy": ref["eval"].get("eval_accuracy"),
                    "f1_macro": ref["eval"].get("eval_f1"),
                    "max_length": ref["max_length"],
                    "stats_seconds": ref["stats_seconds"],
                    "train_seconds": ref["train_seconds"],
                    "total_seconds": ref["total_seconds"],
                    **ref_run,
                },
                "astapp": {
                    "train_samples_per_second": ours["train_samples_per_second"],
                    "accuracy": ours["accuracy"],
                    "f1_macro": ours["f1_macro"],
                    "max_length": ours.get("max_length"),
                    "train_seconds": ours["train_seconds"],
                    "stages": stage_seconds(our_out / "history.jsonl"),
                    **our_run,
                },
            }
            row["reference"]["train_loop_mfu"] = loop_mfu(ref["train_samples_per_second"], ref["max_length"], "fp32")
            row["astapp"]["train_loop_mfu"] = loop_mfu(ours["train_samples_per_second"], ours["max_length"], ours_dtype)
            row["throughput_ratio"] = round(
                row["astapp"]["train_samples_per_second"] / row["reference"]["train_samples_per_second"], 2)
            row["end_to_end_ratio"] = round(ref_run["wall_seconds"] / our_run["wall_seconds"], 2)
            if not aug:
                row["components"] = component_costs(data, ckpt, secs, args.batch_size, args.threads)
            results.append(row)
            print(json.dumps(row), flush=True)

    write_json(args.out, {"benchmark": "train_throughput", "machine": facts, "astapp_precision": ours_dtype,
                          "peak_gflops": {d: round(p / 1e9, 1) for d, p in peaks.items()}, "results": results,
                          "args": {k: str(v) for k, v in vars(args).items()}})
    print("\n| clips | aug | ref samples/s | astapp samples/s | ratio | ref acc | astapp acc | frames ref→astapp "
          "| loop MFU ref / astapp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['clip_seconds']:g} s | {r['augment']} | {r['reference']['train_samples_per_second']:.2f} | "
              f"{r['astapp']['train_samples_per_second']:.2f} | {r['throughput_ratio']:.1f}× | "
              f"{r['reference']['accuracy']:.3f} | {r['astapp']['accuracy']:.3f} | "
              f"{r['reference']['max_length']}→{r['astapp']['max_length']} | "
              f"{r['reference']['train_loop_mfu']['mfu']:.0%} / {r['astapp']['train_loop_mfu']['mfu']:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
