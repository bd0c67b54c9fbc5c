"""The chosen backbone as an embedder of windows: the frozen pass of training's fast modes, run once.

Reuses `training.fastmodes`: `frozen_part` (the pooled embedding the classifier head sees) and the int8
probe, so a pool's windows pass in int8 exactly where a frozen training run would (a CPU without native
bf16, and only when int8 stays within INT8_MAX_REL_ERROR of fp32 on the first windows). Embeddings are
L2-normalised, so cosine similarity is a dot product and a logistic-regression head sees unit vectors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.core.config import AUDIOSET_MEAN, AUDIOSET_STD, MAX_FRAMES, SAMPLE_RATE
from astapp.model.sources import local_folder, looks_like_path

BATCH = 16


@dataclass(frozen=True)
class ModelSpec:
    """What a pool needs of its model: its input length and feature statistics, and an identity."""

    source: str
    max_length: int
    mean: float
    std: float
    identity: str  # changes when the weights change: part of every cache key

    @property
    def window_samples(self) -> int:
        from astapp.features.fbank import Fbank

        return Fbank(self.max_length, self.mean, self.std).max_samples

    @property
    def window_seconds(self) -> float:
        return self.window_samples / SAMPLE_RATE


def _weights_stamp(folder: Path) -> str:
    """Cheap identity of a checkpoint folder: its config and the size and time of its weight files."""
    parts = [(folder / "config.json").read_bytes() if (folder / "config.json").is_file() else b""]
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def model_spec(source: str) -> ModelSpec:
    """The spec of `source` (local folder or run, Hub id, scratch:SIZE) without loading its weights."""
    source = str(source).strip()
    if looks_like_path(source):
        from astapp.predict.settings import read_settings

        folder = local_folder(source)
        s = read_settings(folder)
        return ModelSpec(source, s.max_length, s.mean, s.std, _weights_stamp(folder))
    return ModelSpec(source, MAX_FRAMES, AUDIOSET_MEAN, AUDIOSET_STD, source)


class Embedder:
    """Windows (16 kHz float32) -> unit-length pooled embeddings, float32."""

    def __init__(self, spec: ModelSpec, int8: bool = True) -> None:
        from astapp.features.fbank import Fbank
        from astapp.model.loading import load_model
        from astapp.training.devices import cpu_has_native_bf16, use_cuda

        self.spec = spec
        torch.manual_seed(0)  # scratch models: the same random backbone every time (a pool must be reproducible)
        self.model = load_model(spec.source, ["a", "b"], spec.max_length).eval()
        self.hidden = int(self.model.config.hidden_size)
        self.fbank = Fbank(spec.max_length, spec.mean, spec.std)
        self.device = torch.device("cuda" if use_cuda("auto") else "cpu")
        self.model.to(self.device)
        self.cpu_bf16 = self.device.type == "cpu" and cpu_has_native_bf16()
        self.int8 = int8
        self.fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.info: dict[str, Any] = {}

    def _choose(self, first: torch.Tensor) -> None:
        """Pick fp32 or int8 on the first windows (`fastmodes.train_pass`), once per embedder."""
        from astapp.training.fastmodes import train_pass

        items = [{"input_values": x} for x in first]
        fn8, _, _, info = train_pass(self.model, 0, self.int8, self.device, self.cpu_bf16, items)
        rel = info.get("int8_rel_error")
        if info.get("one_off_pass") == "int8":
            info["message"] = f"Windows passed in int8 (within {rel:.1%} of fp32 on the first {len(items)} windows)."
        elif rel is not None:
            info["message"] = f"Windows passed in fp32: int8 was {rel:.1%} off fp32 on the first {len(items)} windows."
        else:
            info["message"] = f"Windows passed in {info.get('one_off_pass', 'fp32')}."
        self.fn, self.info = fn8, info

    @torch.inference_mode()
    def __call__(self, wavs: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(wavs), self.hidden), dtype=np.float32)
        for i in range(0, len(wavs), BATCH):
            feats = self.fbank(wavs[i:i + BATCH]).to(self.device)
            if self.fn is None:
                self._choose(feats)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cpu_bf16 and self.info.get(
                    "one_off_pass") != "int8"):
                out[i:i + len(feats)] = self.fn(feats).float().cpu().numpy()
        return normalise(out)


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:24]


def fixed_embedder(spec: ModelSpec, int8: bool, info: dict[str, Any]) -> Embedder:
    """An embedder that passes windows as already decided (`info`: a Ray driver's choice, or the pass the
    pool's cached files were made with), without deciding again: one pool, one pass."""
    from astapp.training.fastmodes import pass_functions

    embedder = Embedder(spec, int8)
    chosen = int8 and info.get("one_off_pass") == "int8"
    embedder.fn = pass_functions(embedder.model, 0, chosen, embedder.device, embedder.cpu_bf16)[0]
    embedder.info = dict(info)
    return embedder


def cache_key(digest: str, spec: ModelSpec, hop_samples: int, int8: bool) -> str:
    """One file's embeddings are reused when its content, the model, the windows and the pass are the same."""
    text = json.dumps([digest, spec.identity, spec.max_length, spec.mean, spec.std, hop_samples, int8])
    return hashlib.sha256(text.encode()).hexdigest()[:32]
