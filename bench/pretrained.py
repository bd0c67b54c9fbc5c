#!/usr/bin/env python3
"""A stand-in for a pretrained AST (no Hub here): a small AST pretrained from scratch on many generated classes.

The benches of issues 27 (label-next efficiency) and 28 (distillation) need a backbone that already knows sounds,
as AudioSet AST does; a random-weight AST does not. This helper trains one, once, and caches it by its settings.

Pretraining task: ~40 classes from parametric families -- pure tones, harmonic stacks (all or odd harmonics), band
noise, log glides up and down, pulse trains, decaying pings and beeping tones -- each class one family at one band
of its parameter (e.g. "a tone between 640 and 900 Hz"), drawn with random gain, a random event span inside the
second, and white or pink background noise at a random level. Evaluation (the benches) uses the
`astapp.data.synth` kinds instead: other generator code, classes defined by kind over wide parameter ranges, and
four kinds (am, bursts, fm, square) with no pretraining family at all. So the evaluation classes are classes the
model never heard, though built from the same kind of ingredients (as ESC-50's sounds relate to AudioSet's).

Why a plain torch loop, not the app's engine: the features of every pretraining clip are computed once up front
(`astapp.features.fbank.Fbank`, the app's own filterbank) and reused every epoch; the engine computes them per batch
from files on disk, which on 2 shared cores costs about as much as the model itself. The result is saved through
the real `save_pretrained` path (ASTForAudioClassification + ASTFeatureExtractor), so `build_pool`, `train` and
`distill` load it exactly as they load a downloaded checkpoint.

Size: hidden 192, 4 layers, 3 heads (HEAD_DIM 64, as `astapp.distill.sizes` "tiny"), 1 s input (100 frames) and
patches at stride 16 (no overlap: 8 x 6 = 48 patches; AST's stride 10 gives 108). Why stride 16: the 2 shared
cores ran a 192x4 training step at 14 clips/s with stride 16 and 8 clips/s with stride 10 (load ~2, matmul peak
measured 18 GFLOP/s), and the budget was ~10 minutes. The app reads the strides from the checkpoint's config.

    python bench/pretrained.py                     # builds (or reuses) the default, prints its folder and accuracy
    python bench/pretrained.py --epochs 1 --per-class 20   # a quick smoke run, cached under its own settings
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR = 16_000
CACHE = Path("/tmp/astapp-pretrained")
DEFAULTS = {"hidden": 192, "layers": 4, "frames": 100, "stride": 16, "per_class": 100, "held_out": 20,
            "epochs": 2.5, "batch": 24, "lr": 1e-3, "seed": 0, "version": 1}


def _bins(lo: float, hi: float, n: int) -> list[tuple[float, float]]:
    """n log-spaced bands from lo to hi, each shrunk to its middle 70 % (a gap between neighbouring classes)."""
    edges = np.geomspace(lo, hi, n + 1)
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        la, lb = np.log(a), np.log(b)
        out.append((float(np.exp(la + 0.15 * (lb - la))), float(np.exp(lb - 0.15 * (lb - la)))))
    return out


def classes() -> list[tuple[str, tuple[float, float]]]:
    """(family, parameter band) of every pretraining class."""
    out = [("tone", b) for b in _bins(150, 6000, 8)]
    out += [("stack_all", b) for b in _bins(100, 800, 4)] + [("stack_odd", b) for b in _bins(100, 800, 4)]
    out += [("band", b) for b in _bins(200, 6000, 8)]
    out += [("glide_up", b) for b in _bins(0.5, 6, 3)] + [("glide_down", b) for b in _bins(0.5, 6, 3)]
    out += [("pulses", b) for b in _bins(3, 120, 4)]
    out += [("ping", b) for b in _bins(200, 4000, 4)]
    out += [("beeps", b) for b in _bins(2, 16, 3)]
    return out


def _event(family: str, p: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """The sound itself, n samples, peak 1; `p` is the class's parameter (Hz, octaves/s or events/s)."""
    t = np.arange(n) / SR
    if family == "tone":
        x = np.sin(2 * np.pi * p * t + rng.uniform(0, 6.3))
    elif family.startswith("stack"):
        hs = range(1, 12, 2) if family == "stack_odd" else range(1, 9)
        x = sum(np.sin(2 * np.pi * p * h * t + rng.uniform(0, 6.3)) / h for h in hs if p * h < 7500)
    elif family == "band":
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SR)
        spec[(f < p / 1.26) | (f > p * 1.26)] = 0  # a third of an octave either side
        x = np.fft.irfft(spec, n)
    elif family.startswith("glide"):
        f0 = rng.uniform(200, 1500)
        sign = 1 if family == "glide_up" else -1
        inst = np.clip(f0 * 2 ** (sign * p * t), 60, 7500)
        x = np.sin(2 * np.pi * np.cumsum(inst) / SR)
    elif family == "pulses":
        x = np.zeros(n)
        x[:: max(1, int(SR / p))] = 1.0
        x = np.convolve(x, np.hanning(int(rng.integers(16, 96))), mode="same")
    elif family == "ping":
        x = np.sin(2 * np.pi * p * t) * np.exp(-t * rng.uniform(6, 20))
    elif family == "beeps":
        x = np.sin(2 * np.pi * rng.uniform(500, 3000) * t) * (np.sin(2 * np.pi * p * t) > 0)
    else:
        raise ValueError(family)
    return np.asarray(x) / max(float(np.max(np.abs(x))), 1e-9)


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White or pink background noise, peak ~1."""
    w = rng.standard_normal(n)
    if rng.random() < 0.5:
        spec = np.fft.rfft(w)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        w = np.fft.irfft(spec, n)
    return w / max(float(np.max(np.abs(w))), 1e-9)


def make_clip(family: str, band: tuple[float, float], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One clip: the event over a random span of the clip, random gain, background noise at a random level."""
    n = int(seconds * SR)
    p = float(np.exp(rng.uniform(np.log(band[0]), np.log(band[1]))))
    span = int(n * rng.uniform(0.4, 1.0))
    start = int(rng.integers(0, n - span + 1))
    x = np.zeros(n)
    x[start:start + span] = _event(family, p, span, rng) * np.hanning(span) ** 0.1
    x = x * rng.uniform(0.1, 0.9) + _noise(n, rng) * rng.uniform(0.0, 0.08)
    return np.clip(x, -1, 1).astype(np.float32)


def key(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def _features(per_class: int, seed: int, frames: int):
    """(features float32 (N, frames, 128), labels) for per_class clips of every class, via the app's Fbank."""
    import torch

    from astapp.features.fbank import Fbank

    rng = np.random.default_rng(seed)
    fb = Fbank(frames)
    wavs, ys = [], []
    for ci, (fam, band) in enumerate(classes()):
        for _ in range(per_class):
            wavs.append(make_clip(fam, band, frames / 100 + 0.015, rng))
            ys.append(ci)
    feats = torch.cat([fb(wavs[a:a + 256]) for a in range(0, len(wavs), 256)])
    return feats.float(), torch.tensor(ys)


def _accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(input_values=x[a:a + 128]).logits.argmax(-1) for a in range(0, len(x), 128)])
    model.train()
    return float((pred == y).float().mean())


def _train(s: dict, log) -> tuple:
    """The pretrained model and its facts (held-out accuracy per epoch, seconds)."""
    import torch
    from transformers import ASTConfig, ASTForAudioClassification

    torch.manual_seed(s["seed"])
    names = [f"{f}_{i}" for i, (f, _) in enumerate(classes())]
    t0 = time.time()
    xtr, ytr = _features(s["per_class"], s["seed"], s["frames"])
    xte, yte = _features(s["held_out"], s["seed"] + 1000, s["frames"])
    feat_s = time.time() - t0
    cfg = ASTConfig(hidden_size=s["hidden"], num_hidden_layers=s["layers"], num_attention_heads=s["hidden"] // 64,
                    intermediate_size=4 * s["hidden"], max_length=s["frames"], num_labels=len(names),
                    frequency_stride=s["stride"], time_stride=s["stride"],
                    id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    model = ASTForAudioClassification(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=0.05)
    steps = int(s["epochs"] * len(xtr) // s["batch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, s["lr"], total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(s["seed"])
    curve, step, t1 = [], 0, time.time()
    while step < steps:
        for idx in torch.randperm(len(xtr), generator=gen).split(s["batch"]):
            if step >= steps or len(idx) < s["batch"]:
                break
            x = _spec_augment(xtr[idx], gen)
            loss = torch.nn.functional.cross_entropy(model(input_values=x).logits, ytr[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        curve.append(round(_accuracy(model, xte, yte), 4))
        log(f"epoch {len(curve)}: held-out accuracy {curve[-1]:.3f} ({time.time() - t1:.0f} s)")
    facts = {"classes": len(names), "train_clips": len(xtr), "held_out_clips": len(xte),
             "held_out_accuracy": curve[-1], "accuracy_per_epoch": curve, "feature_seconds": round(feat_s, 1),
             "train_seconds": round(time.time() - t1, 1), "steps": steps,
             "trainer": "plain torch loop (features computed once)"}
    return model, facts


def _spec_augment(x, gen):
    """One time mask and one frequency mask per batch (cheap regularisation for a small dataset)."""
    x = x.clone()
    t0 = int(torch_randint(0, max(1, x.shape[1] - 15), gen))
    f0 = int(torch_randint(0, max(1, x.shape[2] - 20), gen))
    x[:, t0:t0 + int(torch_randint(0, 15, gen)), :] = 0
    x[:, :, f0:f0 + int(torch_randint(0, 20, gen))] = 0
    return x


def torch_randint(lo: int, hi: int, gen) -> int:
    import torch

    return int(torch.randint(lo, max(hi, lo + 1), (1,), generator=gen))


def pretrained(log=print, **overrides) -> Path:
    """The checkpoint folder for these settings: built once (minutes), then reused from the cache."""
    import torch
    from transformers import ASTFeatureExtractor

    s = {**DEFAULTS, **overrides}
    folder = CACHE / key(s)
    if (folder / "pretrain.json").is_file():
        return folder
    torch.set_num_threads(2)
    model, facts = _train(s, log)
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    ASTFeatureExtractor(max_length=s["frames"]).save_pretrained(tmp)
    (tmp / "pretrain.json").write_text(json.dumps({"settings": s, **facts}, indent=1))
    tmp.rename(folder)  # a half-written folder is never mistaken for a finished one
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for k, v in DEFAULTS.items():
        if k != "version":
            ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    a = vars(ap.parse_args())
    folder = pretrained(**a)
    facts = json.loads((folder / "pretrain.json").read_text())
    print(folder, "held-out accuracy", facts["held_out_accuracy"], "classes", facts["classes"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
