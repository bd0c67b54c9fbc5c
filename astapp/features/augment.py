"""Augmentation: seeded audiomentations chains, SpecAugment masks, and mixup.

What can be configured (the catalogue, the presets, checks) is `astapp.features.augment_settings`; this module
runs it. Waveform transforms come from audiomentations.
"""

from __future__ import annotations

import random
import secrets
import threading
from typing import Any

import numpy as np
import torch

from astapp.core.config import SAMPLE_RATE, AugmentConfig
from astapp.features.augment_settings import CATALOGUE, COMPOSE_P, AugmentError, resolve


def _instantiate(entry: dict[str, Any], noise: list[str] | None = None):
    import audiomentations

    name = entry["name"]
    extra = {"sounds_path": noise} if CATALOGUE[name].get("noise") else {}
    try:
        return getattr(audiomentations, name)(**entry["params"], **CATALOGUE[name]["fixed"], **extra)
    except (ValueError, TypeError) as e:
        raise AugmentError(f"{name} cannot use these settings: {e}.") from e


_draws = threading.local()  # the calling thread's seeded generators while an Augmenter runs


class _ThreadRandom:
    """Stands in for the `random` module inside audiomentations: while an Augmenter runs in this
    thread, draws come from its seeded generator; otherwise from the global one, as before."""

    def __getattr__(self, name: str) -> Any:
        gen = getattr(_draws, "py", None)
        return getattr(gen if gen is not None and hasattr(gen, name) else random, name)


class _ThreadNumpyRandom:
    """Stands in for `numpy.random` the same way (a seeded `RandomState` draws what `np.random.seed`
    followed by global draws would)."""

    def __getattr__(self, name: str) -> Any:
        gen = getattr(_draws, "np", None)
        return getattr(gen if gen is not None and hasattr(gen, name) else np.random, name)


class _ThreadNumpy:
    """Stands in for `numpy` inside audiomentations: everything is numpy except `.random`."""

    random = _ThreadNumpyRandom()

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


_THREAD_RANDOM, _THREAD_NUMPY = _ThreadRandom(), _ThreadNumpy()
_patched: set[str] = set()


def _route_audiomentations_draws() -> None:
    """Point the `random` and `np` names of every loaded audiomentations module at the per-thread
    stand-ins, so a seeded draw never reads or writes the process-wide RNGs that other threads
    (training's `set_seed`, another preview) use at the same time."""
    import sys

    for name, module in list(sys.modules.items()):
        if name in _patched or not name.startswith("audiomentations") or module is None:
            continue
        namespace = vars(module)
        if namespace.get("random") is random:
            namespace["random"] = _THREAD_RANDOM
        if namespace.get("np") is np:
            namespace["np"] = _THREAD_NUMPY
        _patched.add(name)


class Augmenter:
    """A seeded audiomentations chain: same seed and same call order give the same draws.

    audiomentations draws from Python's `random` and numpy's global RNG by name. Each call takes a
    fresh seed from this augmenter's own generator and runs the chain with those names routed to
    generators seeded with it for the calling thread only, so results neither depend on nor disturb
    anyone else's use of the global RNGs, even from other threads at the same moment (a preview while
    training starts). In DataLoader workers each worker gets its own stream automatically.
    """

    def __init__(self, transforms: list, p: float, shuffle: bool, seed: int | None = None):
        from audiomentations import Compose

        self.compose = Compose(transforms, p=p, shuffle=shuffle)
        self.names = [type(t).__name__ for t in transforms]
        self.last_applied: list[str] = []  # transforms the latest call actually applied
        self._lock = threading.Lock()
        self.reseed(seed)

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers (a lock is not)
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def reseed(self, seed: int | None) -> None:
        self._seed = secrets.randbits(64) if seed is None else int(seed)
        self._rng = random.Random(self._seed)
        self._worker_seed: int | None = None

    def _follow_worker(self) -> None:
        """Inside a DataLoader worker, switch to a stream of its own (seeded by the worker's torch seed,
        which differs per worker and per epoch and is reproducible under `torch.manual_seed`), so
        workers never repeat each other's draws."""
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._rng = random.Random(self._seed * 1_000_003 + info.seed)

    def __call__(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        x = np.ascontiguousarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise AugmentError(f"Augmentation expects mono audio, got an array of shape {x.shape}.")
        if x.size == 0:
            return x.copy()
        self._follow_worker()
        call_seed = self._rng.getrandbits(32)
        _route_audiomentations_draws()
        with self._lock:  # the chain keeps per-call parameters on its transforms
            _draws.py, _draws.np = random.Random(call_seed), np.random.RandomState(call_seed)
            try:
                for t in self.compose.transforms:
                    t.parameters["should_apply"] = False
                y = self.compose(samples=x, sample_rate=sample_rate)
                self.last_applied = [type(t).__name__ for t in self.compose.transforms
                                     if t.parameters.get("should_apply")]
            finally:
                _draws.py = _draws.np = None
        y = np.asarray(y, dtype=np.float32)
        if y.shape != x.shape:  # keep clips aligned whatever a transform did
            y = np.pad(y[: x.size], (0, max(0, x.size - y.size)))
        return np.nan_to_num(y, nan=0.0, posinf=1.0, neginf=-1.0)


def build_augment(cfg: AugmentConfig, seed: int | None = None) -> Augmenter | None:
    """The waveform augmentation for this config, or None when no transform is enabled."""
    entries = [e for e in resolve(cfg) if e["enabled"]]
    if not entries:
        return None
    p = COMPOSE_P[cfg.preset] if cfg.preset != "none" else 1.0
    needs = [e["name"] for e in entries if CATALOGUE[e["name"]].get("noise")]
    noise = None
    if needs:
        from astapp.features.noise import noise_paths

        noise = noise_paths(cfg, needs)
    return Augmenter([_instantiate(e, noise) for e in entries], p=p, shuffle=True, seed=seed)


def _item_draws(n: int, high: torch.Tensor | int, generator: torch.Generator | None) -> torch.Tensor:
    """n integers uniform in [0, high) (high per item or scalar), drawn on the CPU generator."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (u * torch.as_tensor(high, dtype=torch.float64)).floor().long()


def spec_augment(features: torch.Tensor, freq_mask: int, time_mask: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment as in the AST recipe: per item, one frequency band of 0..freq_mask mel bins and
    one time span of 0..time_mask frames, set to 0.

    Applied to normalised features, where 0 is the dataset mean, so a mask reads as "average sound"
    rather than as a loud or silent band. Works on (T, F) or (B, T, F); returns a new tensor.
    """
    if freq_mask < 0 or time_mask < 0:
        raise AugmentError("SpecAugment mask widths must be 0 or more.")
    single = features.dim() == 2
    x = features.unsqueeze(0) if single else features
    if x.dim() != 3:
        raise AugmentError(f"SpecAugment expects features shaped (time, mel) or (batch, time, mel), "
                           f"got {tuple(features.shape)}.")
    b, t, f = x.shape
    keep = torch.ones(b, t, f, dtype=torch.bool)
    for width_max, size, dim in ((min(freq_mask, f), f, 2), (min(time_mask, t), t, 1)):
        if width_max <= 0:
            continue
        width = _item_draws(b, width_max + 1, generator)
        start = _item_draws(b, size - width + 1, generator)
        pos = torch.arange(size)[None, :]
        band = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (B, size)
        keep &= ~(band[:, None, :] if dim == 2 else band[:, :, None])
    out = x * keep.to(x.device, x.dtype)
    return out[0] if single else out


def mixup(features: torch.Tensor, labels_onehot: torch.Tensor, p: float,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup as in the AST recipe: with probability p, item i becomes lam*x_i + (1-lam)*x_j for another
    item j of the batch, lam ~ Beta(10, 10); its labels are mixed the same way (soft labels).
    """
    if not 0 <= p <= 1:
        raise AugmentError(f"Mixup probability must be between 0 and 1, not {p}.")
    b = features.shape[0]
    labels = labels_onehot.to(features.dtype) if labels_onehot.is_floating_point() else labels_onehot.float()
    if b < 2 or p == 0:
        return features, labels
    mixed = torch.rand(b, generator=generator) < p
    partner = (torch.arange(b) + 1 + _item_draws(b, b - 1, generator)) % b  # never itself
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(10.0, 10.0, size=b))
    lam = torch.where(mixed, lam, torch.ones_like(lam))
    partner, lam = partner.to(features.device), lam.to(features.device)
    shape = (b,) + (1,) * (features.dim() - 1)
    x = lam.to(features.dtype).view(shape) * features + (1 - lam.to(features.dtype)).view(shape) * features[partner]
    lab_shape = (b,) + (1,) * (labels.dim() - 1)
    y = lam.to(labels.dtype).view(lab_shape) * labels + (1 - lam.to(labels.dtype)).view(lab_shape) * labels[partner]
    return x, y
