"""Where and in which precision training runs: CUDA or CPU, fp32 or bf16/fp16 autocast.

bf16 is used on a CPU only where it is native (AVX512-BF16 or AMX): there autocast speeds up a training
step ~1.7x for a small AST on 2 cores; elsewhere bf16 is emulated and slower than fp32, so `auto`
keeps fp32.
"""

from __future__ import annotations

from pathlib import Path

import torch

from astapp.core.config import setting
from astapp.core.errors import TrainingError


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def use_cuda(device: str) -> bool:
    """Whether to train on CUDA for the `device` setting (auto | cpu | cuda)."""
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise TrainingError("Device 'cuda' was requested but no CUDA GPU is available; use 'auto' or 'cpu'.")
    return cuda and device != "cpu"


def resolve_precision(requested: str, use_cuda: bool) -> str:
    """fp32 | bf16 | fp16 for this device; `auto` picks bf16/fp16 on CUDA, bf16 on a bf16-capable CPU."""
    problem = setting("precision").check(requested)
    if problem:
        raise TrainingError(problem)
    if requested == "auto":
        if use_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if requested == "fp16" and not use_cuda:
        raise TrainingError("fp16 precision needs a CUDA GPU; use 'auto', 'bf16' or 'fp32' on a CPU.")
    return requested
