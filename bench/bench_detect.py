"""Detection in long recordings (issue 26): peak memory flat in the recording's length, and speed + MFU per backend.

    python bench/bench_detect.py [--lengths 600,3600,10800] [--speed-seconds 123] [--threads 2]

Base-size AST (hidden 768, 12 layers) with random weights built from ASTConfig (no Hub), 5.12 s windows
(512 frames), 3 classes, exported as astapp exports a run (model folder + checked ONNX fp32/int8).

Memory: a 48 kHz stereo 16-bit WAV of each length, generated and written in blocks, is analysed by
`python -m astapp detect` in a fresh process (torch, 2 threads) that reports its own peak RSS (model
included). These runs use a 300 s hop so the 3-hour run costs minutes, not hours, on a shared 2-core CPU:
every sample is still decoded, mixed down, resampled and buffered (the part whose memory could grow with
length); the model's footprint per batch does not depend on the hop.

Speed: a recording of `--speed-seconds` at 48 kHz stereo, windows without overlap (hop = window), through
`detect_files` for torch fp32, ONNX fp32 and ONNX int8, each next to the matmul peak of its precision measured
in the same process at the same moment (`common.matmul_peak`). x real time = audio seconds / wall seconds
(decoding and resampling included); MFU = model FLOP/s (`flops_breakdown` of one window x windows / wall) over
that peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, SIZES, machine_facts, matmul_peak, mfu, write_json

LABELS = ["beep", "hum", "whistle"]
MAX_LENGTH = 512  # frames: 5.12 s windows


def base_model(folder: Path, onnx: bool = True) -> Path:
    """The base-size AST export (random weights), with its checked ONNX files in model/onnx when `onnx`."""
    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    from astapp.export.to_onnx import export_onnx
    from astapp.model.folder import export_model

    model_dir = folder / "model"
    if not (model_dir / "config.json").is_file():
        torch.manual_seed(0)
        cfg = ASTConfig(max_length=MAX_LENGTH, num_labels=len(LABELS), **SIZES["base"])
        export_model(ASTForAudioClassification(cfg).eval(), LABELS, MAX_LENGTH, -4.27, 4.57, model_dir)
    if onnx and not (model_dir / "onnx" / "model_quantized.onnx").is_file():
        rng = np.random.default_rng(0)
        clips = [rng.standard_normal(81_920).astype(np.float32) * 0.1 for _ in range(2)]
        check = export_onnx(model_dir, model_dir / "onnx", clips, None, source="generated")
        print("onnx export:", json.dumps({k: check.get(k) for k in ("passed", "fp32", "int8")}), flush=True)
    return model_dir


def write_wav(path: Path, seconds: float, sr: int = 48_000, block: float = 60.0) -> Path:
    """48 kHz stereo 16-bit noise with a 3 s tone every 30 s, written a minute at a time (never whole in memory;
    one generated minute repeated, so writing 3 hours costs disk time, not the shared CPU's)."""
    import soundfile as sf

    if path.is_file() and abs(sf.info(str(path)).duration - seconds) < 1:
        return path
    rng = np.random.default_rng(1)
    n = int(block * sr)
    t = np.arange(n) / sr
    x = rng.standard_normal(n).astype(np.float32) * 0.01
    x += (0.3 * np.sin(2 * np.pi * 1000 * t) * ((t % 30) < 3)).astype(np.float32)
    minute = np.stack([x, x * 0.8], axis=1)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=2, subtype="PCM_16") as f:
        for lo in range(0, int(seconds * sr), n):
            f.write(minute[:min(n, int(seconds * sr) - lo)])
    return path


CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads({threads})
from astapp.cli import main
t = time.perf_counter()
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "wall": time.perf_counter() - t,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}), file=sys.stderr)
"""


BACKEND_FLAGS = {"torch": [], "onnx": ["--onnx"], "int8": ["--onnx", "--int8"]}


def memory_run(model: Path, wav: Path, out: Path, threads: int, hop: float, backend: str = "torch") -> dict:
    """Peak RSS of a fresh `detect` process on `wav`, and the per-window state it kept (the score arrays)."""
    from astapp.detection.run import load_scores

    cmd = [sys.executable, "-c", CHILD.format(threads=threads), "detect", "--model", str(model), str(wav),
           "--output", str(out), "--hop", f"{hop:g}", "--quiet", *BACKEND_FLAGS[backend]]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    last = json.loads(done.stderr.strip().splitlines()[-1])
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    scores = load_scores(out, str(wav)) or {}
    state = sum(a.nbytes for a in scores.values())
    return {"backend": backend, "hop_s": hop, "peak_rss_mib": round(last["peak_rss_mib"], 1),
            "wall_s": round(last["wall"], 1), "hours": round(summary["hours"], 4), "exit": last["code"],
            "windows": int(scores["times"].size) if "times" in scores else 0, "window_state_kib": round(state / 1024, 1)}


def speed_runs(model: Path, wav: Path, seconds: float, threads: int, tmp: Path) -> list[dict]:
    import torch
    from transformers import ASTConfig

    from astapp.detection.detect import DetectSettings
    from astapp.detection.run import detect_files, load_scores
    from astapp.model.loading import flops_breakdown
    from astapp.predict.predictor import Predictor

    torch.set_num_threads(threads)
    flops = float(sum(flops_breakdown(ASTConfig.from_pretrained(model), MAX_LENGTH).values()))
    rows = []
    for name, backend, int8, precision in (("torch fp32", "torch", False, "fp32"), ("ONNX fp32", "onnx", False, "fp32"),
                                           ("ONNX int8", "onnx", True, "int8")):
        pred = Predictor(model, backend=backend, quantized=int8, threads=threads, batch_size=4)
        settings = DetectSettings(hop=pred.window_samples / 16_000)  # hop = window: no overlap
        detect_files(pred, [wav], tmp / f"warm-{backend}{int8}", settings)  # warm-up (allocations, first-call costs)
        peak = matmul_peak(precision, threads, repeats=3)
        t = time.perf_counter()
        s = detect_files(pred, [wav], tmp / f"{backend}{int8}", settings)
        wall = time.perf_counter() - t
        peak = max(peak, matmul_peak(precision, threads, repeats=3))  # the better of before and after
        windows = int(load_scores(tmp / f"{backend}{int8}", str(wav))["times"].size)  # records are named as given
        rows.append({"backend": name, "wall_s": round(wall, 2), "x_real_time": round(seconds / wall, 2),
                     "windows": windows, "s_per_window": round(wall / windows, 3), "events": s.events,
                     **mfu(windows / wall, flops, peak)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="600,3600,10800", help="memory runs: recording lengths in seconds")
    ap.add_argument("--speed-seconds", type=float, default=123.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "astapp-bench-detect"))
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--memory-backend", choices=sorted(BACKEND_FLAGS), default="torch")
    ap.add_argument("--memory-hops", default="300", help="memory runs: the hop (s) of each length, comma-separated "
                    "(one value: all lengths); 5.12 = the window, no overlap")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "detect.json"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = base_model(work, onnx=args.memory_backend != "torch")
    result: dict = {"machine": machine_facts(args.threads), "model": "base AST (768 x 12), 512 frames, random weights"}
    out = Path(args.out)
    if not args.skip_memory:
        result["memory"] = {}
        lengths = [float(x) for x in args.lengths.split(",")]
        hops = [float(x) for x in args.memory_hops.split(",")]
        for length, hop in zip(lengths, hops * len(lengths) if len(hops) == 1 else hops, strict=True):
            wav = write_wav(work / f"rec-{int(length)}.wav", length)
            row = memory_run(model, wav, Path(tempfile.mkdtemp(dir=work)), args.threads, hop, args.memory_backend)
            row["file_mib"] = round(wav.stat().st_size / 2**20, 1)
            result["memory"][str(int(length))] = row
            print(int(length), json.dumps(row), flush=True)
            wav.unlink()  # 2 GB for 3 h: leave the disk as it was
            write_json(out, result)  # what is measured so far survives a later stage that runs out of time
    if args.skip_speed:
        return 0
    result["speed"] = speed_runs(base_model(work), write_wav(work / "speed.wav", args.speed_seconds), args.speed_seconds,
                                 args.threads, Path(tempfile.mkdtemp(dir=work)))
    result["total_s"] = round(time.perf_counter() - t0, 1)
    write_json(out, result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
