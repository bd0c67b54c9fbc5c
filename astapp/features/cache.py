"""The feature cache: normalised features of a dataset split computed once into a float32 memmap.

Used where nothing augments waveforms (features are then the same every epoch), and reused by later
runs on the same data and settings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.features.fbank import Fbank, FeatureError, iter_audio

CACHE_VERSION = 1  # bump when the feature computation changes, to invalidate old caches


def _dataset_identity(dataset: Any) -> str:
    """A string that changes when the dataset's contents change."""
    fp = getattr(dataset, "_fingerprint", None)
    if fp:
        return f"ds:{fp}"
    h = hashlib.sha256()
    for w in dataset:
        a = np.ascontiguousarray(np.asarray(w, dtype=np.float32))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return f"arrays:{h.hexdigest()}"


class FeatureCache:
    """Normalised features of one dataset split, computed once into a float32 memmap and reused.

    The file in `path` is named by a hash of the dataset identity (Arrow fingerprint, a hash of plain
    arrays, or `identity`), max_length, mean, std and mel bins: later epochs and runs on the same data
    reuse it, any change makes a new one. Written to a temporary file and renamed when complete (an
    interrupted run leaves no half-filled cache); memory stays flat, one batch of audio at a time.
    """

    def __init__(self, path: str | Path, fbank: Fbank, dataset: Any, column: str = "audio",
                 batch_size: int = 32, progress: Callable[[float, str], None] | None = None,
                 identity: str | None = None):
        self.fbank = fbank
        self.dir = Path(path)
        self.dir.mkdir(parents=True, exist_ok=True)
        n = len(dataset)
        ident = json.dumps({"v": CACHE_VERSION, "data": identity or _dataset_identity(dataset), "n": n,
                            "max_length": fbank.max_length, "mean": repr(fbank.mean), "std": repr(fbank.std),
                            "bins": fbank.num_mel_bins, "column": column}, sort_keys=True)
        self.key = hashlib.sha256(ident.encode()).hexdigest()[:20]
        self.file = self.dir / f"features-{self.key}.f32"
        self.shape = (n, fbank.max_length, fbank.num_mel_bins)
        self.reused = self.file.exists() and self.file.stat().st_size == 4 * math.prod(self.shape)
        if not self.reused:
            self._build(dataset, column, batch_size, progress)
        self._data = (np.memmap(self.file, dtype=np.float32, mode="r", shape=self.shape) if n
                      else np.zeros(self.shape, dtype=np.float32))

    def _build(self, dataset: Any, column: str, batch_size: int,
               progress: Callable[[float, str], None] | None) -> None:
        n = self.shape[0]
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        try:
            # Plain sequential writes, not a writable memmap: dirty mapped pages count towards the
            # process's RSS until written back, which made peak memory grow with the dataset.
            with open(tmp, "wb") as out:
                done = 0
                for batch in iter_audio(dataset, column, batch_size):
                    feats = np.ascontiguousarray(self.fbank(batch).cpu().numpy(), dtype=np.float32)
                    out.write(feats.tobytes())
                    done += len(batch)
                    if progress:
                        progress(done / n, f"Computing features: {done}/{n} clips")
                if done != n:
                    raise FeatureError(f"The dataset yielded {done} clips but reports {n}.")
            os.replace(tmp, self.file)
        finally:
            tmp.unlink(missing_ok=True)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        """Features of clip i as a (max_length, bins) float32 tensor (a copy, safe to modify)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"feature index {i} out of range for {len(self)} clips")
        return torch.from_numpy(np.array(self._data[i], dtype=np.float32))


def cached_stats(folder: Path, split: Any, max_length: int, write: bool = True) -> tuple[float, float]:
    """`compute_stats` of a training split at `max_length`, kept in `folder` by the split's identity."""
    from astapp.core.fsutil import atomic_write_text
    from astapp.features.fbank import compute_stats

    key = hashlib.sha256(json.dumps({"data": getattr(split, "_fingerprint", None) or str(split["path"]),
                                     "n": len(split), "max_length": max_length, "v": 1}).encode()).hexdigest()[:20]
    path = Path(folder) / f"stats-{key}.json"
    if path.is_file():
        d = json.loads(path.read_text(encoding="utf-8"))
        return float(d["mean"]), float(d["std"])
    mean, std = compute_stats(split, Fbank(max_length))
    if write:
        atomic_write_text(path, json.dumps({"mean": mean, "std": std}))
    return mean, std
