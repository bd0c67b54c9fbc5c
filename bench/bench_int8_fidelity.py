#!/usr/bin/env python3
"""Issue 24 item 5: which onnxruntime dynamic-quantization options keep the int8 ONNX model faithful to PyTorch.

A weak model (scratch:small trained a few steps on generated classes, small logit margins), the same with
outlier LayerNorm channels (as a pretrained AST has) and one trained longer (`--strong-steps`; 60 steps on a
loaded 2-core CPU still leave small margins: raise it where there is time) are exported to fp32 ONNX by
`astapp.export.to_onnx`; each quantization variant (per-tensor/per-channel, reduce_range, QUInt8/QInt8
weights, layers kept in fp32) is then measured on the same features against PyTorch: top-1 agreement over `--clips` clips per seed, max probability difference, file size
and ms per clip at batch 1 on `--threads` threads, with ORT fp32 timed in the same run (ratios, not absolute
times, are what compares across machines). `--scan` quantizes one layer group at a time (patch embedding,
each encoder layer, head) to show where the agreement is lost.

    python bench/bench_int8_fidelity.py --scan --out bench/out/int8_fidelity.json  # docs/BENCHMARKS.md section 13
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine_facts, write_json

MEAN, STD, LR = -4.27, 4.57, 3e-4
CURRENT = "int8 (current: QInt8 per-tensor)"


def add_outliers(model: Any, scale: float = 30.0) -> Any:
    """Scale 2 LayerNorm channels per encoder layer by `scale`: the outlier activation channels a pretrained
    transformer has and a briefly trained scratch model lacks; per-tensor int8 activations handle them badly."""
    import torch

    with torch.no_grad():
        for layer in model.audio_spectrogram_transformer.layers:
            for norm in (layer.layernorm_before, layer.layernorm_after):
                norm.weight[:2] *= scale
    return model


def train(labels: list[str], frames: int, steps: int, seed: int = 0) -> Any:
    """scratch:small trained `steps` AdamW steps (batch 8) on fresh generated clips of each label's kind."""
    import numpy as np
    import torch

    from astapp.data.synth import make_signal
    from astapp.features.fbank_numpy import features
    from astapp.model.loading import load_model

    torch.manual_seed(seed)
    model = load_model("scratch:small", labels, frames)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        y = rng.integers(0, len(labels), 8)
        x = np.stack([features(make_signal(labels[i], 1.0, rng=rng), frames, MEAN, STD) for i in y])
        loss = model(input_values=torch.from_numpy(x), labels=torch.from_numpy(y)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def eval_set(labels: list[str], frames: int, clips: int, seed: int) -> tuple[Any, Any]:
    import numpy as np

    from astapp.data.synth import make_signal
    from astapp.features.fbank_numpy import features

    rng = np.random.default_rng(1000 + seed)
    y = np.arange(clips) % len(labels)
    return np.stack([features(make_signal(labels[i], 1.0, rng=rng), frames, MEAN, STD) for i in y]), y


def layer_groups(fp32: Path) -> dict[str, list[str]]:
    """The nodes dynamic quantization touches, by name: the patch embedding Conv, each encoder layer's weight
    MatMuls (the exporter's names carry no layer number, so they are split in graph order, one share per
    Softmax) and the classifier head Gemm (quantized as a MatMul). The attention MatMuls (QK^T, softmax x V)
    have no weight input and stay fp32 in every variant."""
    import onnx

    graph = onnx.load(str(fp32), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    matmuls = [n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & weights]
    per = len(matmuls) // max(1, sum(n.op_type == "Softmax" for n in graph.node))
    groups = {"embed": [n.name for n in graph.node if n.op_type == "Conv"]}
    for i in range(0, len(matmuls), per):
        groups[f"layer{i // per}"] = matmuls[i:i + per]
    groups["head"] = [n.name for n in graph.node if n.op_type == "Gemm"]
    return groups


def variants(groups: dict[str, list[str]], scan: bool) -> dict[str, dict[str, Any]]:
    from onnxruntime.quantization import QuantType

    layers = sorted(k for k in groups if k.startswith("layer"))
    edge = groups["embed"] + groups["head"]
    out: dict[str, dict[str, Any]] = {
        CURRENT: {},
        "per_channel": {"per_channel": True},
        "reduce_range": {"reduce_range": True},
        "per_channel + reduce_range": {"per_channel": True, "reduce_range": True},
        "QUInt8 weights": {"weight_type": QuantType.QUInt8},
        "head fp32": {"nodes_to_exclude": groups["head"]},
        "patch Conv + head fp32": {"nodes_to_exclude": edge},
        "per_channel, Conv + head fp32": {"per_channel": True, "nodes_to_exclude": edge},
        "first+last layer fp32": {"nodes_to_exclude": groups[layers[0]] + groups[layers[-1]]},
    }
    if scan:
        for key, names in groups.items():
            out[f"only {key} int8"] = {"nodes_to_quantize": names}
    return out


def quantize(src: Path, dst: Path, opts: dict[str, Any]) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(src), str(dst), **{"weight_type": QuantType.QInt8, **opts})


def fidelity(path: Path, sets: list[tuple[Any, Any]], ref: list[Any], threads: int) -> tuple[dict[str, Any], Any]:
    """Agreement with the PyTorch probabilities `ref` on each set; and the session's run function."""
    import numpy as np

    from astapp.core.scores import softmax
    from astapp.predict.onnx_backend import ort_session

    sess = ort_session(path, threads)

    def run(x: Any) -> Any:
        return sess.run(None, {"input_values": np.ascontiguousarray(x)})[0]

    agree, diff = [], 0.0
    for (x, _), r in zip(sets, ref, strict=True):
        p = softmax(np.concatenate([run(x[b:b + 16]) for b in range(0, len(x), 16)]))
        agree.append(float((p.argmax(1) == r.argmax(1)).mean()))
        diff = max(diff, float(np.abs(p - r).max()))
    return {"top1_agreement": round(statistics.mean(agree), 4), "worst_seed": round(min(agree), 4),
            "max_prob_diff": round(diff, 4), "size_mb": round(path.stat().st_size / 1e6, 2)}, run


def timings(runs: dict[str, Any], clip: Any, repeats: int, rounds: int = 5) -> dict[str, float]:
    """ms per clip at batch 1: the variants take turns in `rounds` rounds (a busy neighbour slows all alike);
    each variant's figure is its best round's median."""
    best = {k: float("inf") for k in runs}
    for run in runs.values():
        run(clip)
    for _ in range(rounds):
        for k, run in runs.items():
            times = []
            for _ in range(max(1, repeats // rounds)):
                t = time.perf_counter()
                run(clip)
                times.append(time.perf_counter() - t)
            best[k] = min(best[k], statistics.median(times))
    return {k: round(v * 1000, 2) for k, v in best.items()}


def bench_model(name: str, steps: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import numpy as np
    import torch

    from astapp.core.scores import softmax
    from astapp.data.synth import KINDS
    from astapp.export.to_onnx import export_onnx
    from astapp.features.fbank import choose_max_length
    from astapp.model.folder import export_model

    labels, frames = list(KINDS[:args.classes]), choose_max_length([1.0])
    t0 = time.perf_counter()
    model = train(labels, frames, steps)
    if name == "outliers":
        add_outliers(model)
    folder = export_model(model, labels, frames, MEAN, STD, work / name)
    export_onnx(folder, folder / "onnx", [np.zeros(16000, np.float32)] * 2, source="generated")
    fp32 = folder / "onnx" / "model.onnx"
    sets = [eval_set(labels, frames, args.clips, s) for s in range(args.seeds)]
    with torch.inference_mode():
        ref = [softmax(model(input_values=torch.from_numpy(x)).logits.numpy()) for x, _ in sets]
    top2 = np.sort(np.concatenate(ref), axis=1)[:, -2:]
    acc = np.mean([(r.argmax(1) == y).mean() for r, (_, y) in zip(ref, sets, strict=True)])
    info = {"train_steps": steps, "train_seconds": round(time.perf_counter() - t0, 1),
            "pytorch_accuracy": round(float(acc), 3),
            "median_top1_margin": round(float(np.median(top2[:, 1] - top2[:, 0])), 4)}
    rows, runs = {}, {}
    rows["ORT fp32"], runs["ORT fp32"] = fidelity(fp32, sets, ref, args.threads)
    groups = layer_groups(fp32)
    for label, opts in variants(groups, args.scan).items():
        dst = work / name / f"q{len(rows)}.onnx"
        quantize(fp32, dst, opts)
        rows[label], runs[label] = fidelity(dst, sets, ref, args.threads)
    for label, ms in timings(runs, sets[0][0][:1], args.repeats).items():
        rows[label]["ms_per_clip"] = ms
    base, cur = rows["ORT fp32"]["ms_per_clip"], rows[CURRENT]["ms_per_clip"]
    for r in rows.values():
        r["speed_vs_fp32"], r["time_vs_current_int8"] = round(base / r["ms_per_clip"], 2), round(r["ms_per_clip"] / cur, 2)
    return {**info, "groups": groups, "variants": rows}


def table(name: str, res: dict[str, Any], clips: int) -> str:
    head = (f"\n{name}: PyTorch accuracy {res['pytorch_accuracy']:.1%}, median top-1 margin "
            f"{res['median_top1_margin']:.3f}, {res['train_steps']} training steps; agreement over {clips} clips/seed\n"
            "| variant | top-1 agreement | worst seed | max prob diff | size MB | ms/clip | x fp32 speed | time / int8 |\n"
            "|---|---|---|---|---|---|---|---|")
    rows = [f"| {k} | {v['top1_agreement']:.1%} | {v['worst_seed']:.1%} | {v['max_prob_diff']:.3f} | "
            f"{v['size_mb']} | {v['ms_per_clip']} | {v['speed_vs_fp32']} | {v['time_vs_current_int8']} |"
            for k, v in res["variants"].items()]
    return "\n".join([head, *rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=100, help="agreement clips per seed (1 s each)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--weak-steps", type=int, default=8, help="about one epoch of 6 clips per class")
    ap.add_argument("--strong-steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--models", nargs="+", default=["weak", "outliers", "strong"],
                    choices=["weak", "outliers", "strong"], help="outliers: weak + 2 LayerNorm channels x30 per layer")
    ap.add_argument("--scan", action="store_true", help="also quantize one layer group at a time")
    ap.add_argument("--out", type=Path, default=Path("bench/out/int8_fidelity.json"))
    args = ap.parse_args()

    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="astapp_bench_int8_fidelity_"))
    result: dict[str, Any] = {"benchmark": "int8_fidelity", "machine": machine_facts(args.threads),
                              "onnxruntime": onnxruntime.__version__, "clips_per_seed": args.clips,
                              "seeds": args.seeds}
    steps_of = {"weak": args.weak_steps, "outliers": args.weak_steps, "strong": args.strong_steps}
    for name in args.models:
        steps = steps_of[name]
        result[name] = bench_model(name, steps, args, work)
        print(table(name, result[name], args.clips), flush=True)
        write_json(args.out, result)  # after each model: a slow machine still leaves the finished ones
    print(json.dumps(result["machine"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
