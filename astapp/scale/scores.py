"""The window-scores job: every window of a file through an exported model, its class probabilities kept.

This is the per-file work that detection thresholds into events and that a pool keeps as embeddings'
neighbours, as a job the runner can spread over workers: `ScoreJob.open()` loads one `Predictor` (torch, or
ONNX fp32/int8) per worker, and each file's windows (the predictor's own: model length, hop half a window,
the last aligned to the end) come back with their probabilities. The model is named in the output by the
content hash of the files that make its answers, so a rerun with another model or backend is refused.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astapp.core.errors import ModelLoadError
from astapp.predict.predictor import Predictor
from astapp.scale.runner import FileFn

DECIMALS = 6  # probabilities as stored: far finer than any threshold, stable across processes


def content_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def model_files(model: str | Path, backend: str, int8: bool) -> list[Path]:
    """The files whose bytes decide a model's answers: config.json and the weights the backend runs."""
    path = Path(model)
    if path.is_file() and zipfile.is_zipfile(path):
        return [path]
    if backend == "onnx":
        from astapp.predict.onnx_backend import FP32, INT8, locate_onnx

        folder, onnx_dir = locate_onnx(path)
        return [folder / "config.json", onnx_dir / (INT8 if int8 else FP32)]
    from astapp.model.sources import local_folder

    folder = local_folder(str(path))
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not weights:
        raise ModelLoadError(f"{folder} has no weights (model.safetensors); export the model again.")
    return [folder / "config.json", *weights]


@dataclass(frozen=True)
class ScoreJob:
    """Per-window probabilities of each file with one model; `threads` per worker."""

    model: str
    backend: str = "torch"
    int8: bool = False
    threads: int = 1
    batch_size: int = 16

    def identity(self) -> dict[str, Any]:
        files = model_files(self.model, self.backend, self.int8)
        return {"job": "scores", "model": {"name": Path(self.model).name, "sha256": content_hash(files),
                                           "backend": f"{self.backend}{'-int8' if self.int8 else ''}"}}

    def open(self) -> FileFn:
        predictor = Predictor(self.model, batch_size=self.batch_size, backend=self.backend, quantized=self.int8,
                              threads=self.threads if self.backend == "onnx" else 0)
        return lambda file: scores_of(predictor, file)


def scores_of(predictor: Predictor, file: str) -> dict[str, Any]:
    """{"duration", "labels", "windows": [[start s, end s, [p per label]]]} of one audio file."""
    from astapp.core.config import SAMPLE_RATE
    from astapp.data.audio import load_audio

    wav = load_audio(file, sr=SAMPLE_RATE)
    starts = predictor.window_starts(len(wav))
    spans = [(s, min(s + predictor.window_samples, len(wav))) for s in starts]
    probs = predictor.probabilities([wav[a:b] for a, b in spans])
    return {"duration": round(len(wav) / SAMPLE_RATE, 4), "labels": predictor.labels,
            "windows": [[round(a / SAMPLE_RATE, 4), round(b / SAMPLE_RATE, 4),
                         [round(float(p), DECIMALS) for p in row]] for (a, b), row in zip(spans, probs, strict=True)]}
