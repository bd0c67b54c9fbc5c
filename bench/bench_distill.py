#!/usr/bin/env python3
"""Issue 28: a fine-tuned teacher AST vs distilled students, side by side in one run on the same clips.

Teacher: an AST of hidden 768 and 6 layers (half of base's depth, base's width: 43 M parameters) trained
from random weights on generated classes (no Hub here; 2 shared CPU cores make a 12-layer base run too slow to
repeat). Students: `--students` sizes, each without and with unlabeled audio (generated recordings of the same
kinds of sound, unlabeled). Per model: validation accuracy, macro F1 and top-1 agreement with the teacher
(`distill.json`, PyTorch fp32), the checked int8 ONNX file (`astapp.export.bundle.ensure_onnx`) and its median
ms per clip in onnxruntime on `--threads` threads, the file-size ratio, the distillation time as a multiple of
the teacher's training time, and Listen live's model time per hop (`--hop`) with the student.

    python bench/bench_distill.py --out bench/out/distill.json

With a pretrained stand-in teacher (issue 28, BENCHMARKS section 28: bench/pretrained.py's checkpoint fine-tuned
on the classes through the product's train path), then a longer row on the same teacher, then the int8 timing of
every finished folder interleaved in one process (at 2 and at 1 thread):

    python3 bench/bench_distill.py --teacher pretrained --students 128x2 64x2 --classes 6 --per-class 40 \
        --teacher-epochs 5 --teacher-lr 2e-4 --student-epochs 10 --pool-per-class 4 --work /tmp/strong_distill \
        --out bench/out/distill_pretrained.json
    cp -r /tmp/strong_distill/{data,pool,teacher} /tmp/strong_distill2/
    python3 bench/bench_distill.py --teacher pretrained --reuse-teacher --students 128x2 --rows pool --classes 6 \
        --per-class 40 --teacher-epochs 5 --teacher-lr 2e-4 --student-epochs 30 --pool-per-class 4 \
        --work /tmp/strong_distill2 --out bench/out/distill_pretrained_30ep.json
    ln -s /tmp/strong_distill2/student_128x2_pool /tmp/strong_distill/student_128x2_pool_30ep
    python3 bench/bench_distill.py --teacher pretrained --classes 6 --per-class 40 --work /tmp/strong_distill \
        --speed-only --threads 2 --out bench/out/distill_speed_t2.json      # and --threads 1

Weight selection (BENCHMARKS section 31): students that start from a slice of the teacher's weights (the app's
default) beside students from random weights, on the 192x4 stand-in and on a 384x6 one:

    python3 bench/bench_distill.py --teacher pretrained --students 128x2 64x2 --classes 6 --per-class 40 \
        --teacher-epochs 12 --teacher-lr 2e-4 --student-epochs 40 --pool-per-class 4 --inits teacher random \
        --work /tmp/d/w1 --out bench/out/distill_init40.json
    python3 bench/bench_distill.py --teacher pretrained --pretrained-size 384x6 --students 128x2 64x2 \
        --classes 6 --per-class 40 --teacher-epochs 12 --teacher-lr 2e-4 --student-epochs 40 --pool-per-class 4 \
        --work /tmp/d/w2 --out bench/out/distill_384x6.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import make_dataset, write_json


def teacher_checkpoint(path: Path, hidden: int, layers: int, max_length: int) -> Path:
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    cfg = ASTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
                    intermediate_size=4 * hidden, max_length=max_length, num_labels=2)
    ASTForAudioClassification(cfg).save_pretrained(path)
    ASTFeatureExtractor(max_length=max_length).save_pretrained(path)
    return path


def onnx_facts(run: Path, threads: int, clip) -> dict:
    """The checked ONNX files of a run's model and the int8 file's median ms per clip."""
    from astapp.export.bundle import ensure_onnx
    from astapp.predict.predictor import Predictor

    check = ensure_onnx(run / "model", run / "onnx")
    predictor = Predictor(run, backend="onnx", quantized=True, threads=threads)
    predictor.predict(clip)
    times = []
    for _ in range(9):
        t = time.perf_counter()
        predictor.predict(clip)
        times.append(1000 * (time.perf_counter() - t))
    return {"int8_ms_per_clip": round(statistics.median(times), 2),
            "int8_mb": round((run / "onnx" / "model_quantized.onnx").stat().st_size / 1e6, 3),
            "fp32_mb": round((run / "onnx" / "model.onnx").stat().st_size / 1e6, 3),
            "onnx_check_passed": bool(check.get("passed")),
            "int8_top1_vs_torch": (check.get("int8") or {}).get("top1_agreement")}


def side_by_side(runs: dict[str, Path], threads: int, clip, rounds: int = 30) -> dict:
    """int8 ONNX ms per clip of every run, measured interleaved (teacher, student, teacher, ...) so a busy
    neighbour slows them alike: the speed ratio is only meaningful between numbers taken this way."""
    from astapp.predict.predictor import Predictor

    preds = {name: Predictor(run, backend="onnx", quantized=True, threads=threads) for name, run in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for p in preds.values():
        p.predict(clip)
    for _ in range(rounds):
        for name, p in preds.items():
            t, c = time.perf_counter(), time.process_time()
            p.predict(clip)
            times[name].append(1000 * (time.perf_counter() - t))
            cpu[name].append(1000 * (time.process_time() - c))

    def facts(name: str) -> dict:
        return {"int8_ms": round(statistics.median(times[name]), 2), "int8_ms_best": round(min(times[name]), 2),
                "cpu_ms": round(statistics.median(cpu[name]), 2)}

    teacher = facts("teacher")
    students = {}
    for name in runs:
        if name != "teacher":
            f = facts(name)
            for k in ("int8_ms", "int8_ms_best", "cpu_ms"):
                f[f"speedup_{k}"] = round(teacher[k] / max(f[k], 1e-6), 2)
            students[name] = f
    return {"rounds": rounds, "threads": threads, "load": os.getloadavg(), "teacher": teacher, "students": students}


def listen_facts(run: Path, hop: float) -> dict:
    """Listen live with this model (torch, as the app runs it): model time per hop, worst delay."""
    import numpy as np

    from astapp.data.synth import make_signal
    from astapp.predict.predictor import Predictor
    from astapp.service.listening import Listener, ListenSettings

    predictor = Predictor(run)
    listener = Listener(lambda w: predictor.predict(w, top_k=3).probs, predictor.labels, predictor.window_samples,
                        ListenSettings(hop=hop))
    audio = (0.5 * make_signal("chirp", 8.0, sr=48_000) * 32767).astype(np.int16)
    for start in range(0, len(audio), 24_000):
        listener.feed((48_000, audio[start:start + 24_000]))
    ms = [s * 1000 for s in listener.compute_seconds[1:]]
    median = statistics.median(ms)
    return {"hop_s": hop, "predictions": len(ms), "model_ms_median": round(median, 1), "model_ms_max": round(max(ms), 1),
            "worst_delay_s": round(0.5 + hop + max(ms) / 1000, 2), "keeps_up": bool(max(ms) / 1000 < hop)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="768x6", help="HIDDENxLAYERS of a random-weight teacher, or "
                    "'pretrained': bench/pretrained.py's checkpoint (1 s input), fine-tuned on the classes")
    ap.add_argument("--students", nargs="+", default=["tiny", "128x2"])
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--teacher-epochs", type=float, default=6)
    ap.add_argument("--teacher-lr", type=float, default=3e-4)
    ap.add_argument("--student-epochs", type=float, default=12)
    ap.add_argument("--seconds", type=float, default=1.0, help="clip length (the model's input length)")
    ap.add_argument("--pool-per-class", type=int, default=10, help="unlabeled 4-second recordings per kind")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse-teacher", action="store_true", help="use the finished teacher in --work as it is")
    ap.add_argument("--rows", choices=("both", "clips", "pool"), default="both",
                    help="student rows: without and with unlabeled audio, or only one of them")
    ap.add_argument("--pretrained-size", default="192x4",
                    help="HIDDENxLAYERS of bench/pretrained.py's stand-in when --teacher pretrained (built once, cached)")
    ap.add_argument("--pretrained-epochs", type=float, default=None,
                    help="epochs of bench/pretrained.py's pretraining (default: its own, 2.5)")
    ap.add_argument("--soft-weight", type=float, default=None,
                    help="experiment: the teacher term's share of the loss (the app's: astapp.distill.trainer.SOFT_WEIGHT)")
    ap.add_argument("--inits", nargs="+", choices=("teacher", "random"), default=["teacher"],
                    help="the students' first weights: a slice of the teacher's (the app's default) and/or random")
    ap.add_argument("--hop", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0, help="data, unlabeled recordings and training seed")
    ap.add_argument("--speed-only", action="store_true",
                    help="only the interleaved int8 timing of the finished teacher and students in --work")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/out/distill.json"))
    args = ap.parse_args()

    import torch

    from astapp.core.config import TrainConfig
    from astapp.data.audio import load_audio
    from astapp.data.synth import make_class_folders
    from astapp.jobs.record import run_job
    from astapp.service.headless import distill_run

    torch.set_num_threads(args.threads)
    if args.soft_weight is not None:  # the rows run in this process: the Trainer's keyword default is the knob
        from astapp.distill.trainer import DistillTrainer

        DistillTrainer.__init__.__kwdefaults__["soft_weight"] = args.soft_weight
    work = args.work or Path(tempfile.mkdtemp(prefix="astapp_bench_distill_"))
    data = make_dataset(work / "data", args.classes, args.per_class, args.seconds, seed=args.seed)
    clip = load_audio(next(data.rglob("*.wav")))
    if args.speed_only:
        runs = {"teacher": work / "teacher", **{p.name: p for p in sorted(work.glob("student_*"))}}
        write_json(args.out, {"side_by_side": side_by_side(runs, args.threads, clip)})
        print(args.out.read_text())
        return 0
    frames = int(round(args.seconds * 100))
    pool = work / "pool"
    if not pool.exists():
        make_class_folders(pool, n_classes=args.classes, per_class=args.pool_per_class, seconds=4.0,
                           seed=99 + args.seed)
    if args.teacher == "pretrained":  # bench/pretrained.py's self-pretrained small AST, fine-tuned below
        from pretrained import pretrained

        hidden, layers = (int(x) for x in args.pretrained_size.lower().split("x"))
        more = {"epochs": args.pretrained_epochs} if args.pretrained_epochs else {}
        ckpt = pretrained(hidden=hidden, layers=layers, **more)
    else:
        hidden, layers = (int(x) for x in args.teacher.lower().split("x"))
        ckpt = teacher_checkpoint(work / "teacher_ckpt", hidden, layers, frames)
    teacher = work / "teacher"
    cfg = TrainConfig(data=str(data), model=str(ckpt), output=str(teacher), epochs=args.teacher_epochs,
                      batch_size=8, lr=args.teacher_lr, max_length=frames, seed=args.seed, precision="fp32",
                      threads=args.threads)
    t0 = time.time()
    finished = (teacher / "metrics.json").is_file() and '"finished"' in (teacher / "status.json").read_text()
    if args.reuse_teacher and finished:  # another process of this bench trained it: run student rows in parallel
        teacher_metrics = json.loads((teacher / "metrics.json").read_text())
    else:
        teacher_metrics = run_job(cfg).metrics
    result: dict = {"benchmark": "distill", "threads": args.threads, "torch": torch.__version__,
                    "teacher_checkpoint": str(ckpt), "args": {k: str(v) for k, v in vars(args).items()},
                    "load_start": os.getloadavg(),
                    "dataset": f"{args.classes} generated classes x {args.per_class} clips of {args.seconds:g} s",
                    "teacher": {"size": args.teacher, "accuracy": teacher_metrics["accuracy"],
                                "f1_macro": teacher_metrics["f1_macro"], "train_seconds": round(teacher_metrics["train_seconds"], 1),
                                "run_seconds": round(time.time() - t0, 1)}, "students": {}}
    result["teacher"].update(onnx_facts(teacher, args.threads, clip))
    result["teacher"]["listen"] = listen_facts(teacher, args.hop)
    result["teacher"]["load"] = os.getloadavg()
    rows = [(size, with_pool, init) for size in args.students for init in args.inits
            for with_pool in {"both": (False, True), "clips": (False,), "pool": (True,)}[args.rows]]
    for size, with_pool, init in rows:
        out = work / f"student_{size}_{'pool' if with_pool else 'clips'}{'_random' if init == 'random' else ''}"
        t0 = time.time()
        m = distill_run(str(teacher), size, str(out), str(pool) if with_pool else None, args.student_epochs,
                        init=init).metrics
        doc = json.loads((out / "distill.json").read_text())
        row = {"pool_windows": (m.get("pool") or {}).get("windows", 0), "accuracy": m["accuracy"],
               "f1_macro": m["f1_macro"], "agreement": doc["agreement"],
               "parameters": doc["student"]["parameters"], "train_seconds": round(m["train_seconds"], 1),
               "time_vs_teacher_training": round(m["train_seconds"] / teacher_metrics["train_seconds"], 2),
               "run_seconds": round(time.time() - t0, 1), "torch_fp32": doc}
        row.update(onnx_facts(out, args.threads, clip))
        row["int8_speedup"] = round(result["teacher"]["int8_ms_per_clip"] / row["int8_ms_per_clip"], 1)
        row["int8_size_ratio"] = round(row["int8_mb"] / result["teacher"]["int8_mb"], 4)
        row["listen"] = listen_facts(out, args.hop)
        row["load"] = os.getloadavg()
        row["init"] = init
        result["students"][f"{size}{' + unlabeled' if with_pool else ''}{', random start' if init == 'random' else ''}"] = row
        write_json(args.out, result)
        print(json.dumps({k: v for k, v in row.items() if k != "torch_fp32"}), flush=True)
    runs = {"teacher": teacher, **{p.name: p for p in sorted(work.glob("student_*"))}}
    result["side_by_side"] = side_by_side(runs, args.threads, clip)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
