"""Detection in long recordings (issue 26): peak memory flat in the recording's length, and speed + MFU per backend.

    python bench/bench_detect.py [--lengths 600,3600,10800] [--memory-hops 60,300,900] [--threads 2]

Base-size AST (hidden 768, 12 layers) with random weights built from ASTConfig (no Hub), 5.12 s windows
(512 frames), 3 classes, exported as astapp exports a run (model folder + checked ONNX fp32/int8).

Memory: a 48 kHz stereo 16-bit WAV of each length, generated and written in blocks, is analysed by
`python -m astapp detect` in a fresh process (`--memory-backend`, 2 threads) that reports its own peak RSS
(model included) and the per-window state it kept. `--memory-hops` sets each length's hop: sparse hops keep a
3-hour run to minutes on a shared 2-core CPU while every sample is still decoded, mixed down, resampled and
buffered (the part whose memory could grow with length); pick them so each length has at least one full batch.

Speed: a recording of `--speed-seconds` at 48 kHz stereo, windows without overlap (hop = window), through
`detect_files` for torch fp32, ONNX fp32 and ONNX int8. After every batch the bench runs a 2048^3 matmul of the
backend's precision in torch and in onnxruntime (`Interleaved`), so the peak sees the same neighbours as the
model. x real time = audio seconds / (wall - the matmul bursts), decoding and resampling included; MFU = model
FLOP/s (`flops_breakdown` of one window x windows / model time) over the better interleaved peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, SIZES, machine_facts, mfu, write_json

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


def torch_matmul(precision: str, n: int = 2048) -> Callable[[], None]:
    """One n x n x n product as the torch backend runs it: fp32 (MKL), or a dynamically quantised int8 Linear."""
    import torch

    a = torch.randn(n, n)
    if precision == "int8":
        from astapp.training.fastmodes import quantize_int8

        lin = quantize_int8(torch.nn.Sequential(torch.nn.Linear(n, n, bias=False)).eval())
        return lambda: lin(a)
    b = torch.randn(n, n)
    return lambda: a @ b


def ort_matmul(precision: str, threads: int, folder: Path, n: int = 2048) -> Callable[[], None]:
    """One n x n x n MatMul in onnxruntime, quantised for int8 exactly as the export quantises AST's
    (`quantize_dynamic`, QInt8 weights): the kernel ONNX int8 inference runs, as its own peak."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from astapp.predict.onnx_backend import ort_session

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"])], "mm",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])], [w])
    path = folder / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(path), str(folder / "mm8.onnx"), weight_type=QuantType.QInt8)
        path = folder / "mm8.onnx"
    sess = ort_session(path, threads)
    x = rng.standard_normal((n, n)).astype(np.float32)
    return lambda: sess.run(None, {"X": x})


class Interleaved:
    """The scorer with a peak matmul run after every batch it scores, both timed: on a shared, busy CPU the
    model and the peak it is divided by see the same neighbours (a peak measured once, before or after, can
    catch a quiet second the model never had)."""

    def __init__(self, scorer: Any, peak_ops: dict[str, Callable[[], None]], n: int = 2048):
        self.scorer, self.peak_ops, self.flop = scorer, peak_ops, 2.0 * n**3
        self.model_s, self.windows = 0.0, 0
        self.peak_s = {k: 0.0 for k in peak_ops}
        self.peak_runs = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scorer, name)

    def outputs(self, windows: Any) -> Any:
        t = time.perf_counter()
        out = self.scorer.outputs(windows)
        self.model_s += time.perf_counter() - t
        self.windows += len(windows)
        for key, op in self.peak_ops.items():
            t = time.perf_counter()
            op()
            self.peak_s[key] += time.perf_counter() - t
        self.peak_runs += 1
        return out

    def peaks(self) -> dict[str, float]:
        return {k: self.peak_runs * self.flop / s for k, s in self.peak_s.items() if s > 0}


BACKENDS = (("torch fp32", "torch", False, "fp32"), ("ONNX fp32", "onnx", False, "fp32"),
            ("ONNX int8", "onnx", True, "int8"))


def speed_runs(model: Path, wav: Path, seconds: float, threads: int, tmp: Path, batch_size: int = 4) -> list[dict]:
    """x real time (decode + resample + model, the matmul bursts subtracted) and MFU (model time only) against
    the better of the torch and onnxruntime matmul peaks of the precision, interleaved with the batches."""
    import torch
    from transformers import ASTConfig

    from astapp.detection.detect import DetectSettings
    from astapp.detection.run import detect_files
    from astapp.model.loading import flops_breakdown
    from astapp.predict.predictor import Predictor

    torch.set_num_threads(threads)
    flops = float(sum(flops_breakdown(ASTConfig.from_pretrained(model), MAX_LENGTH).values()))
    short = write_wav(tmp / "warm.wav", 6.0)
    rows = []
    for name, backend, int8, precision in BACKENDS:
        pred = Predictor(model, backend=backend, quantized=int8, threads=threads, batch_size=batch_size)
        settings = DetectSettings(hop=pred.window_samples / 16_000)  # hop = window: no overlap
        detect_files(pred, [short], tmp / f"warm-{backend}{int8}", settings)  # first-call costs, allocations
        ops = {"torch": torch_matmul(precision), "onnxruntime": ort_matmul(precision, threads, tmp)}
        for op in ops.values():
            op()
        timed = Interleaved(pred, ops)
        t = time.perf_counter()
        s = detect_files(timed, [wav], tmp / f"{backend}{int8}", settings)
        wall = time.perf_counter() - t - sum(timed.peak_s.values())
        peaks = timed.peaks()
        peak = max(peaks.values())
        rows.append({"backend": name, "precision": precision, "batch_size": batch_size, "windows": timed.windows,
                     "wall_s": round(wall, 2), "x_real_time": round(seconds / wall, 2),
                     "model_s_per_window": round(timed.model_s / timed.windows, 3),
                     "model_share_of_wall": round(timed.model_s / wall, 3), "events": s.events,
                     "peaks_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                     **mfu(timed.windows / timed.model_s, flops, peak)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="600,3600,10800", help="memory runs: recording lengths in seconds")
    ap.add_argument("--speed-seconds", type=float, default=61.44)
    ap.add_argument("--batch-size", type=int, default=4)
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
                                 args.threads, Path(tempfile.mkdtemp(dir=work)), args.batch_size)
    result["total_s"] = round(time.perf_counter() - t0, 1)
    write_json(out, result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
