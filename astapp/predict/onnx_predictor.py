"""Predict with an ONNX export through onnxruntime, without torch or transformers (a small server, `predict
--onnx`): numpy features (`astapp.features.fbank_numpy`), the same windows and averaging as `astapp.predict.predictor.Predictor`.

The folder is the exported model (config.json, preprocessor_config.json, onnx/model.onnx and
onnx/model_quantized.onnx), its zip, or a run folder once exported (model/ and the run's onnx/).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.config import SAMPLE_RATE, IngestLimits
from astapp.core.errors import AstappError, ModelLoadError
from astapp.features.fbank_numpy import features, window_samples

ONNX_DIR, FP32, INT8 = "onnx", "model.onnx", "model_quantized.onnx"
INSTALL = "pip install onnxruntime==1.32.0"


def ort_session(path: Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session; a missing onnxruntime is a sentence with the install command."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelLoadError(f"onnxruntime is not installed; install it with `{INSTALL}`.") from e
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ModelLoadError(f"Could not load the ONNX model {path.name} ({e}); export the model again.") from e


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path} is missing or unreadable ({e}); export the model again.") from e
    return data if isinstance(data, dict) else {}


def find_onnx_folder(path: Path) -> tuple[Path, Path]:
    """(folder with config.json, its onnx/ folder): an unzipped export, or a run (model/ + the run's onnx/)."""
    for cand, onnx in ((path, path / ONNX_DIR), (path / "model", path / "model" / ONNX_DIR),
                       (path / "model", path / ONNX_DIR)):
        if (cand / "config.json").is_file() and (cand / "preprocessor_config.json").is_file() \
                and (onnx / FP32).is_file():  # a model folder (a run folder's config.json is its settings)
            return cand, onnx
    raise ModelLoadError(f"{path} holds no ONNX model (no {ONNX_DIR}/{FP32} beside config.json); export "
                         "the run with `python3 -m astapp export --run RUN --output model.zip` and unzip it.")


class OnnxPredictor:
    """An exported ONNX model (fp32, or int8 with `quantized`) for repeated predictions."""

    def __init__(self, model_dir: str | Path, quantized: bool = False, threads: int = 0, batch_size: int = 16):
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        path = Path(model_dir)
        if path.is_file() and zipfile.is_zipfile(path):
            from astapp.data.ingest import extract_zip

            self._tmp = tempfile.TemporaryDirectory(prefix="astapp-onnx-")
            root = Path(extract_zip(path, Path(self._tmp.name), IngestLimits()))
            found = sorted(p.parent.parent for p in root.rglob(f"{ONNX_DIR}/{FP32}"))
            path = found[0] if found else root
        self.folder, self.onnx_dir = find_onnx_folder(path)
        cfg = _read(self.folder / "config.json")
        pre = _read(self.folder / "preprocessor_config.json")
        id2label = cfg.get("id2label") or {}
        self.labels = [str(id2label.get(str(i), id2label.get(i, i))) for i in range(len(id2label))]
        self.max_length = int(cfg.get("max_length") or pre.get("max_length") or 1024)
        self.mean, self.std = float(pre.get("mean", -4.2677393)), float(pre.get("std", 4.5689974))
        self.num_mel_bins = int(cfg.get("num_mel_bins") or pre.get("num_mel_bins") or 128)
        self.normalize = bool(pre.get("do_normalize", True))
        name = INT8 if quantized else FP32
        if not (self.onnx_dir / name).is_file():
            raise ModelLoadError(f"{self.folder} has no {ONNX_DIR}/{name}; export the model again.")
        self.session = ort_session(self.onnx_dir / name, threads)
        self.batch_size = max(1, int(batch_size))
        self.window = window_samples(self.max_length)
        self.hop = max(1, self.window // 2)

    def features(self, wav: np.ndarray) -> np.ndarray:
        return features(wav, self.max_length, self.mean, self.std, self.num_mel_bins, self.normalize)

    def logits(self, feats: np.ndarray) -> np.ndarray:
        """Logits of a (batch, frames, bins) float32 array."""
        out = []
        for b in range(0, len(feats), self.batch_size):
            out.append(self.session.run(None, {"input_values": np.ascontiguousarray(feats[b:b + self.batch_size])})[0])
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def window_starts(self, n: int) -> list[int]:
        """One window for a clip that fits, else hop = half a window with the last aligned to the end."""
        if n <= self.window:
            return [0]
        return [*range(0, n - self.window, self.hop), n - self.window]

    def probs(self, wav: np.ndarray) -> np.ndarray:
        """The clip's class probabilities: the mean over its windows."""
        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        if wav.size == 0 or not np.isfinite(wav).all():
            raise AstappError("The clip is empty or holds invalid samples; record or upload it again.")
        feats = np.stack([self.features(wav[s:s + self.window]) for s in self.window_starts(wav.size)])
        return softmax(self.logits(feats).astype(np.float64)).mean(axis=0)

    def top(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
        idx = np.argsort(-probs, kind="stable")[:max(1, min(int(k), len(self.labels)))]
        return [(self.labels[i], float(probs[i])) for i in idx]

    def predict_many(self, files: Iterable[str | Path], top_k: int = 5) -> list[dict[str, Any]]:
        """One row {file, label, prob, top, error} per audio file (folders and zips expand, as for the torch
        Predictor: `sources.expand_sources`); a bad file is a row."""
        import tempfile

        from astapp.predict.sources import expand_sources

        with tempfile.TemporaryDirectory(prefix="astapp-onnx-predict-") as tmp:
            return self._rows(expand_sources(list(files), Path(tmp)), top_k)

    def _rows(self, items: list[tuple[str, Path | None]], top_k: int) -> list[dict[str, Any]]:
        from astapp.data.audio import load_audio

        rows = []
        for name, path in items:
            row: dict[str, Any] = {"file": name, "label": None, "prob": None, "top": [], "error": None}
            rows.append(row)
            if path is None:
                row["error"] = "file not found"
                continue
            try:
                top = self.top(self.probs(load_audio(path, sr=SAMPLE_RATE)), top_k)
            except AstappError as e:
                row["error"] = str(e)
                continue
            row["label"], row["prob"] = top[0]
            row["top"] = [[label, p] for label, p in top]
        return rows
