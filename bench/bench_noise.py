"""Real-noise augmentation cost per 5-second clip, beside the other waveform transforms.

Every transform runs at p = 1 on the same generated 5 s clip, in one process, rounds alternating
between transforms; the best round of each counts, so background load hurts all alike. Noise comes
from a prepared bank (`astapp.features.noise.prepare`): 60 s recordings (AddBackgroundNoise reads a 5 s
stretch) and 0.5 s clips (looped by AddBackgroundNoise; the bursts of AddShortNoises).

    python bench/bench_noise.py [--rounds 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from astapp.core.config import AugmentConfig  # noqa: E402
from astapp.data.synth import make_signal, write_wav  # noqa: E402
from astapp.features.augment import build_augment  # noqa: E402
from astapp.features.augment_settings import CLASSIC, PRESETS, resolve  # noqa: E402
from astapp.features.noise import prepare  # noqa: E402


def cpu_flags() -> dict[str, bool]:
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
        flags = set(line.split(":", 1)[1].split())
    except (OSError, StopIteration):
        flags = set()
    return {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}


def _cases(long_bank: Path, short_bank: Path) -> dict[str, AugmentConfig]:
    classic = {e["name"]: e["params"] for e in PRESETS["classic"]}
    cases = {name: AugmentConfig(transforms={name: {**classic[name], "enabled": True, "p": 1.0}}) for name in CLASSIC}
    defaults = {e["name"]: e["params"] for e in resolve(AugmentConfig())}
    for name, bank, tag in (("AddBackgroundNoise", long_bank, "60 s noise"),
                            ("AddBackgroundNoise", short_bank, "0.5 s noise, looped"),
                            ("AddShortNoises", short_bank, "0.5 s bursts")):
        cases[f"{name} ({tag})"] = AugmentConfig(transforms={name: {**defaults[name], "enabled": True, "p": 1.0}},
                                                 noise=str(bank))
    return cases


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x = make_signal("harmonic", 5.0, rng=rng)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        longs = [write_wav(t / "raw" / f"long{i}.wav", 0.2 * make_signal("noise", 60.0, rng=rng)) for i in range(3)]
        shorts = [write_wav(t / "raw" / f"short{i}.wav", 0.2 * make_signal(k, 0.5, rng=rng))
                  for i, k in enumerate(("noise", "clicks", "bursts"))]
        t0 = time.perf_counter()
        prepare(longs, t / "long")
        prepare_s = time.perf_counter() - t0
        prepare(shorts, t / "short")
        augs = {name: build_augment(cfg, seed=0) for name, cfg in _cases(t / "long", t / "short").items()}
        for aug in augs.values():
            aug(x)  # warm: imports, first file reads
        best = {name: float("inf") for name in augs}
        for _ in range(args.rounds):
            for name, aug in augs.items():
                t0 = time.perf_counter()
                for _ in range(5):
                    aug(x)
                best[name] = min(best[name], (time.perf_counter() - t0) / 5)
    ms = {name: round(v * 1000, 2) for name, v in best.items()}
    result = {"clip_seconds": 5.0, "ms_per_clip": ms, "prepare_3x60s_noise_s": round(prepare_s, 3),
              "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
              "cpus": os.cpu_count(), "precision": "fp32 (numpy)"}
    print(json.dumps(result, indent=2))
    print(f"\nCPU flags: {cpu_flags()}; {os.cpu_count()} CPUs (shared), float32")
    print("| transform (5 s clip, p = 1) | ms per clip | vs Gain |")
    print("|---|---|---|")
    for name, v in ms.items():
        print(f"| {name} | {v} | {v / ms['Gain']:.1f}× |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
