"""Issue 17: LoRA against full, last-2 and frozen, side by side in one run.

    python bench/bench_lora.py --out bench/out/lora.json            # ~12 min on 2 CPU cores

Part 1, step costs (small and base AST, 512 frames = 5 s clips, fp32): for each mode a child process
builds the model, runs warm-up and timed training steps on a batch of random features and reports the
median step time, the AdamW optimizer state after one step, the trainable parameters and its peak RSS.
What each mode trains is what astapp trains:
  full    every weight;
  lora    rank-8 adapters on attention.q_proj/v_proj plus the head (astapp.model.lora.LoraModule);
  last-2  the top 2 layers + final norm + head on cached hidden states (the one-off pass that caches them
          is timed per clip on its own);
  frozen  the head on cached pooled embeddings (one-off pass per clip likewise).
Part 2, equal wall-clock budgets (small AST): a backbone is first pretrained here on task A (5 synthetic
sound kinds, full fine-tuning), then each mode fine-tunes that checkpoint on task B (5 other kinds)
through astapp's own engine for the same number of seconds (a stop after the budget keeps the best
epoch reached), from the same data, split and seed. It also measures how far the merged LoRA export's
probabilities are from the unmerged model's on the validation clips.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import ROOT, SIZES, machine_facts, matmul_peak, mfu, python, write_json

FRAMES = 512
BATCH = {"small": 8, "base": 2}
MODES = ("full", "lora", "last-2", "frozen")
TASK_A = ("tone", "chirp", "noise", "clicks", "am")
TASK_B = ("harmonic", "sweep_down", "bursts", "fm", "square")


def cpu_facts() -> dict:
    flags = set()
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
        flags = set(line.split(":", 1)[1].split())
    except (OSError, StopIteration):
        pass
    return {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}


# --- part 1: one mode in a child process --------------------------------------------------------
def child(mode: str, size: str, steps: int) -> dict:
    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    from astapp.model.lora import LoraModule
    from astapp.training.fastmodes import HeadModel, TopLayersModel, cache_shape, freeze, frozen_part

    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = ASTConfig(max_length=FRAMES, num_labels=5, **SIZES[size])
    model = ASTForAudioClassification(cfg).float()
    b = BATCH[size]
    feats = torch.randn(b, FRAMES, 128)
    labels = torch.randint(0, 5, (b,))
    one_off = None
    if mode == "full":
        module, inputs = model, feats
    elif mode == "lora":
        module, inputs = LoraModule(model, 8, 16.0, 0.0, ["q_proj", "v_proj"]), feats  # astapp's defaults
    else:
        n = 0 if mode == "frozen" else int(mode.split("-")[1])
        freeze(model, n)
        fn = frozen_part(model, n)
        with torch.inference_mode():
            fn(feats[:1])
            t0 = time.perf_counter()
            fn(feats)
            one_off = (time.perf_counter() - t0) / b
        inputs = torch.randn(b, *cache_shape(model, n, FRAMES))
        module = HeadModel(model) if n == 0 else TopLayersModel(model, n)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        logits = module(input_values=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up (allocations, the optimizer's state)
            times.append(time.perf_counter() - t0)
    state = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
    return {"mode": mode, "size": size, "batch": b, "step_times": times,
            "trainable_parameters": sum(p.numel() for p in params),
            "optimizer_state_mib": state / 2**20, "one_off_seconds_per_clip": one_off,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def step_costs(steps: dict[str, int], rounds: int) -> list[dict]:
    """Each mode in its own process (its own peak RSS), the modes interleaved over `rounds` so a noisy
    neighbour on the machine hits all of them alike; the step time is the median over every round."""
    rows = []
    for size in ("small", "base"):
        seen: dict[str, list[dict]] = {m: [] for m in MODES}
        for _ in range(rounds):
            for mode in MODES:
                out = subprocess.run([python(), __file__, "--child", mode, size, str(steps[size])],
                                     capture_output=True, text=True, cwd=ROOT)
                if out.returncode != 0:
                    raise RuntimeError(out.stderr[-3000:])
                seen[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for mode in MODES:
            runs = seen[mode]
            times = [t for r in runs for t in r["step_times"]]
            row = {**runs[0], "step_seconds": statistics.median(times), "step_seconds_min": min(times),
                   "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "timed_steps": len(times)}
            row["samples_per_second"] = row["batch"] / row["step_seconds"]
            rows.append(row)
            print(f"  {size:5s} {mode:6s} {row['step_seconds']:.3f} s/step (min {row['step_seconds_min']:.3f})",
                  flush=True)
    return rows


def add_mfu(rows: list[dict], peak: float) -> None:
    """MFU of each mode's step (fp32 peak of this run). Training FLOPs per sample: full 3x forward; lora
    ~2x (the backward still carries activation gradients through every layer; adapter weight gradients
    are negligible); last-N 3x the top N layers + head; frozen 3x the head. The one-off pass: forward
    of the frozen part (`pass_flops`)."""
    from transformers import ASTConfig

    from astapp.model.loading import flops_breakdown, pass_flops

    for r in rows:
        cfg = ASTConfig(max_length=FRAMES, num_labels=5, **SIZES[r["size"]])
        parts = flops_breakdown(cfg, FRAMES)
        fwd = sum(parts.values())
        layer = (fwd - parts["patch_embedding"] - parts["head"]) / cfg.num_hidden_layers
        n = None if r["mode"] in ("full", "lora") else 0 if r["mode"] == "frozen" else int(r["mode"].split("-")[-1])
        train = {"full": 3 * fwd, "lora": 2 * fwd}.get(r["mode"], 3 * ((n or 0) * layer + parts["head"]))
        r["step_mfu"] = mfu(r["samples_per_second"], train, peak)
        if r["one_off_seconds_per_clip"]:
            one_off = pass_flops(cfg, FRAMES, cfg.num_hidden_layers - (n or 0))
            r["one_off_mfu"] = mfu(1 / r["one_off_seconds_per_clip"], one_off, peak)


# --- part 2: equal budgets ------------------------------------------------------------------------
def write_task(root: Path, kinds: tuple[str, ...], per_class: int, seconds: float, seed: int) -> Path:
    import numpy as np

    from astapp.data.synth import make_signal, write_wav

    if root.exists():
        return root
    rng = np.random.default_rng(seed)
    for kind in kinds:
        for j in range(per_class):
            wav = make_signal(kind, seconds * float(rng.uniform(0.9, 1.1)), rng=rng)
            wav = wav * float(rng.uniform(0.2, 1.0)) + rng.normal(0, 0.02, wav.size).astype("float32")
            write_wav(root / kind / f"{kind}_{j:03d}.wav", wav.astype("float32"))
    return root


def train_for(cfg, budget: float | None) -> dict:
    """astapp's engine (recorded like any run), stopped after `budget` seconds of training when given."""
    from astapp.jobs.record import run_job

    stop, started = threading.Event(), {}

    def events(ev: dict) -> None:
        if ev.get("type") == "stage" and ev.get("stage") == "training":
            started["t"] = time.perf_counter()
        if budget and "t" in started and time.perf_counter() - started["t"] > budget:
            stop.set()

    t0 = time.perf_counter()
    result = run_job(cfg, events, stop)
    m = result.metrics
    return {"mode": cfg.mode, "budget_seconds": budget, "epochs_done": m["epochs"], "accuracy": m["accuracy"],
            "f1_macro": m["f1_macro"], "best_epoch": m["best_epoch"], "train_seconds": m["train_seconds"],
            "trainable_parameters": m["trainable_parameters"], "wall_seconds": time.perf_counter() - t0,
            "output": str(result.output)}


def merged_vs_unmerged(run: Path, data: Path) -> float:
    """Max |p_merged - p_logged| over the validation clips: the exported (merged) model on exactly the
    input the unmerged model was evaluated on (the clip cropped/padded to the input length)."""
    import torch
    from transformers import ASTForAudioClassification

    from astapp.data.audio import load_audio
    from astapp.features.fbank import Fbank

    m = json.loads((run / "metrics.json").read_text())
    settings = json.loads((run / "model" / "astapp.json").read_text())
    fbank = Fbank(settings["max_length"], settings["mean"], settings["std"])
    model = ASTForAudioClassification.from_pretrained(run / "model").eval()
    labels = settings["labels"]
    worst = 0.0
    with torch.no_grad():
        for p in m["predictions"]:
            probs = model(fbank([load_audio(data / p["path"])])).logits.softmax(-1)[0]
            worst = max(worst, abs(float(probs[labels.index(p["pred"])]) - p["prob"]))
    return worst


def equal_budgets(work: Path, budget: float, pretrain_epochs: float) -> dict:
    from astapp.core.config import TrainConfig

    task_a = write_task(work / "task_a", TASK_A, 40, 5.0, seed=1)
    task_b = write_task(work / "task_b", TASK_B, 24, 5.0, seed=2)
    base = dict(batch_size=8, seed=0, precision="fp32", threads=2, max_length=FRAMES)
    pre = train_for(TrainConfig(data=str(task_a), model="scratch:small", output=str(work / "pretrain"),
                                epochs=pretrain_epochs, lr=1e-3, **base), None)
    print(f"  pretrained on task A: accuracy {pre['accuracy']:.3f} in {pre['wall_seconds']:.0f} s", flush=True)
    rows = []
    for mode, lr in (("full", 5e-4), ("lora", 3e-3), ("last-2", 1e-3), ("frozen", 3e-3)):
        cfg = TrainConfig(data=str(task_b), model=str(work / "pretrain"), output=str(work / f"ft_{mode}"),
                          epochs=200, lr=lr, mode=mode, **base)
        rows.append(train_for(cfg, budget))
        print(f"  {mode:6s} {rows[-1]['epochs_done']:.0f} epochs in the budget, accuracy {rows[-1]['accuracy']:.3f}",
              flush=True)
    lora_run = Path(next(r["output"] for r in rows if r["mode"] == "lora"))
    return {"pretrain": pre, "budget_seconds": budget, "rows": rows,
            "lora_merged_max_prob_diff": merged_vs_unmerged(lora_run, task_b)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=3, metavar=("MODE", "SIZE", "STEPS"))
    ap.add_argument("--steps-small", type=int, default=6)
    ap.add_argument("--steps-base", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of training per mode in part 2")
    ap.add_argument("--pretrain-epochs", type=float, default=8)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "lora")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "lora.json")
    args = ap.parse_args()
    if args.child:
        mode, size, steps = args.child
        print(json.dumps(child(mode, size, int(steps))))
        return
    import torch

    print(f"CPU flags: {cpu_facts()}; torch {torch.__version__}, 2 threads, fp32", flush=True)
    print("Part 1: step costs at 512 frames", flush=True)
    costs = step_costs({"small": args.steps_small, "base": args.steps_base}, args.rounds)
    add_mfu(costs, matmul_peak("fp32", 2))
    print(f"Part 2: equal budgets of {args.budget:.0f} s (small AST pretrained on task A)", flush=True)
    budgets = equal_budgets(args.workdir, args.budget, args.pretrain_epochs)
    write_json(args.out, {"cpu": cpu_facts(), "machine": machine_facts(2), "precision": "fp32", "torch": torch.__version__, "frames": FRAMES, "step_costs": costs,
                          "equal_budgets": budgets})
    print("\n| size | mode | batch | s/step (median, min) | samples/s | vs full | trainable params | AdamW state MiB | "
          "peak RSS MiB | one-off s/clip | step MFU | one-off MFU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in costs:
        full = next(c for c in costs if c["size"] == r["size"] and c["mode"] == "full")
        one_off = f"{r['one_off_seconds_per_clip']:.3f}" if r["one_off_seconds_per_clip"] is not None else "–"
        one_off_mfu = f"{r['one_off_mfu']['mfu']:.0%}" if "one_off_mfu" in r else "–"
        print(f"| {r['size']} | {r['mode']} | {r['batch']} | {r['step_seconds']:.3f}, {r['step_seconds_min']:.3f} | "
              f"{r['samples_per_second']:.2f} | "
              f"{full['step_seconds'] / r['step_seconds']:.2f}× | {r['trainable_parameters']:,} | "
              f"{r['optimizer_state_mib']:.2f} | {r['peak_rss_mib']:.0f} | {one_off} | {r['step_mfu']['mfu']:.0%} | "
              f"{one_off_mfu} |")
    print(f"\n| mode | epochs in {args.budget:.0f} s | accuracy | macro F1 | best epoch | trainable params |")
    print("|---|---|---|---|---|---|")
    for r in budgets["rows"]:
        print(f"| {r['mode']} | {r['epochs_done']:.0f} | {r['accuracy']:.3f} | {r['f1_macro']:.3f} | "
              f"{r['best_epoch']} | {r['trainable_parameters']:,} |")
    print(f"\nLoRA merged export vs unmerged model: max probability difference "
          f"{budgets['lora_merged_max_prob_diff']:.2e}")


if __name__ == "__main__":
    sys.exit(main())
