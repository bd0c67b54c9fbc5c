"""Helpers shared by the bench scripts: generated data, local checkpoints, timed subprocesses.

Every benchmark builds its own data (varied synthetic signals) and its own randomly initialised
checkpoint, so anyone can rerun it offline; the reference recipe and astapp always run side by side,
on the same data and checkpoint, in one invocation.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench scripts run as files; make `import astapp` work from anywhere
    sys.path.insert(0, str(ROOT))
SEED_PIPELINE = ROOT.parent / "shared" / "baseline" / "seed_pipeline.py"

# Model sizes named in issue 6: "small AST" (hidden 192, 4 layers) and base AST (768, 12 layers).
SIZES = {
    "small": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def make_checkpoint(path: Path, size: str = "small", max_length: int = 1024, seed: int = 0) -> Path:
    """A randomly initialised AST checkpoint (same compute cost as a pretrained one)."""
    if (path / "config.json").exists():
        return path
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(seed)
    cfg = ASTConfig(max_length=max_length, num_labels=527, **SIZES[size])
    ASTForAudioClassification(cfg).save_pretrained(path)
    ASTFeatureExtractor(max_length=max_length).save_pretrained(path)
    return path


def make_dataset(path: Path, n_classes: int, per_class: int, seconds: float, seed: int = 0) -> Path:
    """Class folders of generated clips with jittered lengths around `seconds` (±10 %)."""
    from astapp.data.synth import make_class_folders

    if path.exists() and any(path.iterdir()):
        return path
    make_class_folders(path, n_classes=n_classes, per_class=per_class,
                       seconds=(seconds * 0.9, seconds * 1.1), seed=seed)
    return path


def run(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> dict:
    """Run a command, return wall seconds, peak child RSS (MiB) and exit code; raise on failure."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=full_env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(out.stdout + "\n--- stderr ---\n" + out.stderr)
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
        raise RuntimeError(f"command failed ({out.returncode}): {' '.join(cmd)}\n{tail}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_seconds": round(wall, 2), "peak_rss_mib_children": round(peak, 1)}


def python() -> str:
    return sys.executable


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


# --- MFU: the hardware's own limit, measured in the same run (issue 18) ---------------------------------
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def machine_facts(threads: int | None = None) -> dict:
    """The CPU model, the flags that decide the fast paths (native bf16, AMX, VNNI int8) and torch's threads."""
    import platform

    import torch

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    lines = info.splitlines()
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": threads or torch.get_num_threads(), "flags": {f: f in flags for f in CPU_FLAGS}}


def matmul_peak(dtype: str = "fp32", threads: int | None = None, n: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` dense FLOP/s of an n x n x n product on this CPU in `dtype`, at `threads` threads.

    fp32: a plain matmul; bf16: the same under bf16 autocast (what the engine runs); int8: a dynamically
    quantised Linear (int8 weights, activations quantised per call), the kernel int8 passes use.
    Measured in the same process as the figure it divides, so a busy neighbour lowers both alike.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    a = torch.randn(n, n)
    if dtype == "int8":
        from astapp.training.fastmodes import quantize_int8

        lin = quantize_int8(torch.nn.Sequential(torch.nn.Linear(n, n, bias=False)).eval())

        def op() -> None:
            lin(a)
    else:
        b = torch.randn(n, n)

        def op() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
                a @ b

    best = float("inf")
    with torch.inference_mode():
        op()
        for _ in range(repeats):
            t = time.perf_counter()
            op()
            best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def mfu(samples_per_second: float, flops_per_sample: float, peak: float) -> dict:
    """Achieved model FLOP/s and its share of the measured peak."""
    achieved = samples_per_second * flops_per_sample
    return {"model_gflops_per_second": round(achieved / 1e9, 1), "peak_gflops_per_second": round(peak / 1e9, 1),
            "mfu": round(achieved / peak, 3)}


def held_out_split(root: Path, classes: list[str], work: Path, split: int, seed: int) -> tuple[list[str], Path]:
    """Two classes held out as "sounds the model never heard"; the rest linked into `work/split<N>` to train on.

    The unknown-score benches (bench_unknown, bench_calibrate) need the same open-set split: the held-out
    classes' clips are the "other" sounds, and the symlinks keep a split free of copying audio.
    """
    import numpy as np

    held = sorted(np.random.default_rng(seed + split).choice(classes, 2, replace=False).tolist())
    data = work / f"split{split}"
    data.mkdir(parents=True, exist_ok=True)
    for c in classes:
        if c not in held:
            os.symlink(root / c, data / c)
    return held, data


def unknown_bench_args(ap, splits: int, out: str) -> None:
    """The arguments every unknown-score bench takes (one scratch model trained per open-set split)."""
    ap.add_argument("--splits", type=int, default=splits)
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--model", default="scratch:tiny")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(out))
