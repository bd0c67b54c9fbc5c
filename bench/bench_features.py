"""Feature extraction throughput: astapp's batched torch Fbank vs transformers' ASTFeatureExtractor.

Both run in the same process on the same generated clips with the same torch thread count; rounds
alternate between them and the best round of each counts, so background load hurts both alike.
Also times each waveform augmentation on a 5-second clip.

    python bench/bench_features.py [--threads N] [--rounds 2] [--quick] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from astapp.core.config import AugmentConfig  # noqa: E402
from astapp.data.synth import KINDS, make_signal  # noqa: E402
from astapp.features.augment import build_augment  # noqa: E402
from astapp.features.augment_settings import CLASSIC, PRESETS  # noqa: E402
from astapp.features.fbank import Fbank, choose_max_length  # noqa: E402

warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
SR = 16_000


def clips(n: int, seconds: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [make_signal(KINDS[i % len(KINDS)], seconds, rng=rng) for i in range(n)]


def best_of(fn, rounds: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def fbank_flops(wavs: list[np.ndarray], max_length: int) -> float:
    """FLOPs of the log-mel of these clips per clip (frames the model sees): Hann window (400), a 512-point
    real FFT (~2.5 N log2 N), power (3 x 257), the mel matmul (2 x 257 x 128) and the log (128)."""
    from astapp.features.fbank import num_frames

    per_frame = 400 + 2.5 * 512 * 9 + 3 * 257 + 2 * 257 * 128 + 128
    return per_frame * sum(min(num_frames(len(w)), max_length) for w in wavs) / len(wavs)


def bench_set(name: str, wavs: list[np.ndarray], rounds: int, batch: int, device: str) -> dict:
    from transformers import ASTFeatureExtractor

    max_length = choose_max_length([len(w) / SR for w in wavs])
    fe = ASTFeatureExtractor(max_length=max_length)
    fb = Fbank(max_length, device=device)
    fb(wavs[:2])  # warm-up (allocations, FFT plans)

    def ours() -> np.ndarray:
        out = [fb(wavs[i : i + batch]).cpu().numpy() for i in range(0, len(wavs), batch)]
        if device == "cuda":
            torch.cuda.synchronize()
        return np.concatenate(out)

    def theirs() -> np.ndarray:
        return np.stack(fe(wavs, sampling_rate=SR)["input_values"]).astype(np.float32)

    t_ref = t_ours = float("inf")
    ref = mine = None
    for _ in range(rounds):  # alternate, keep the best of each
        t, ref = best_of(theirs, 1)
        t_ref = min(t_ref, t)
        fb.refined_frames = 0
        t, mine = best_of(ours, 1)
        t_ours = min(t_ours, t)
    n = len(wavs)
    return {
        "set": name, "clips": n, "seconds": round(len(wavs[0]) / SR, 3), "max_length": max_length,
        "device": device, "ast_feature_extractor_clips_per_s": round(n / t_ref, 1),
        "fbank_clips_per_s": round(n / t_ours, 1), "speedup": round(t_ref / t_ours, 2),
        "max_abs_error": float(np.abs(ref - mine).max()),
        "refined_frame_share": round(fb.refined_frames / max(1, n * max_length), 4),
    }


def bench_augment(rounds: int) -> dict:
    x = make_signal("harmonic", 5.0, rng=np.random.default_rng(0))
    per = {}
    for name in CLASSIC:
        entry = next(e for e in PRESETS["classic"] if e["name"] == name)
        aug = build_augment(AugmentConfig(preset="none", transforms={name: {**entry["params"], "enabled": True,
                                                                            "p": 1.0}}), seed=0)
        aug(x)
        t, _ = best_of(lambda aug=aug: [aug(x) for _ in range(5)], rounds)
        per[name] = round(t / 5 * 1000, 2)
    chain = build_augment(AugmentConfig(preset="classic"), seed=0)
    t, _ = best_of(lambda: [chain(x) for _ in range(10)], rounds)
    return {"clip_seconds": 5.0, "ms_per_clip": per, "classic_chain_ms_per_clip": round(t / 10 * 1000, 2)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads for both (0 = torch default)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="10 x 10 s and 20 x 1.5 s instead of 100 and 200")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scale = 10 if args.quick else 1
    sets = [("10s", clips(100 // scale, 10.0, 0)), ("1.5s", clips(200 // scale, 1.5, 1))]
    from common import machine_facts, matmul_peak, mfu

    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, **machine_facts(torch.get_num_threads())},
        "features": [bench_set(n, w, args.rounds, args.batch, "cpu") for n, w in sets],
        "precision": "fp32",
    }
    peak = matmul_peak("fp32", torch.get_num_threads())
    for r, (_, wavs) in zip(result["features"], sets, strict=True):
        flops = fbank_flops(wavs, r["max_length"])
        r["fbank_mfu"] = mfu(r["fbank_clips_per_s"], flops, peak)
        r["ast_feature_extractor_mfu"] = mfu(r["ast_feature_extractor_clips_per_s"], flops, peak)
    if args.device == "cuda":
        result["features_cuda"] = [bench_set(n, w, 1, args.batch, "cuda") for n, w in sets]
    if not args.no_augment:
        result["augment"] = bench_augment(args.rounds)
    print(json.dumps(result, indent=2))
    print()
    print("| set | clips | max_length | ASTFeatureExtractor clips/s | Fbank clips/s | speed-up | max abs error "
          "| MFU Fbank / extractor |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["features"] + result.get("features_cuda", []):
        print(f"| {r['set']} ({r['device']}) | {r['clips']} | {r['max_length']} | "
              f"{r['ast_feature_extractor_clips_per_s']} | {r['fbank_clips_per_s']} | {r['speedup']}x | "
              f"{r['max_abs_error']:.1e} | {r.get('fbank_mfu', {}).get('mfu', 0):.1%} / "
              f"{r.get('ast_feature_extractor_mfu', {}).get('mfu', 0):.1%} |")
    if args.out:
        from astapp.core.fsutil import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
