"""The ONNX backend of `astapp.predict.predictor.Predictor`: numpy features
(`astapp.features.fbank_numpy`) and onnxruntime, without torch or transformers (`predict --onnx`, a
small server).

The folder is the exported model (config.json, preprocessor_config.json, onnx/model.onnx and
onnx/model_quantized.onnx), its zip, or a run folder once exported (model/ and the run's onnx/).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AstappError, ModelLoadError
from astapp.features.fbank_numpy import features, window_samples
from astapp.predict.settings import ModelSettings

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
    # No busy-waiting between calls: a spinning thread pool holds the cores after each call, against the numpy
    # features of the next one, another session (Predict, Listen live, a student beside its teacher) and a
    # training run. Measured on 2 cores (docs/BENCHMARKS.md section 31): a 384x6 int8 model went from 10.2-10.9
    # to 6.8-7.2 ms per clip alone, and from 24-26 to 5.3-5.5 ms interleaved with four other sessions.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ModelLoadError(f"Could not load the ONNX model {path.name} ({e}); export the model again.") from e


def find_onnx_folder(path: Path) -> tuple[Path, Path]:
    """(folder with config.json, its onnx/ folder): an unzipped export, or a run (model/ + the run's onnx/)."""
    for cand, onnx in ((path, path / ONNX_DIR), (path / "model", path / "model" / ONNX_DIR),
                       (path / "model", path / ONNX_DIR)):
        if (cand / "config.json").is_file() and (cand / "preprocessor_config.json").is_file() \
                and (onnx / FP32).is_file():  # a model folder (a run folder's config.json is its settings)
            return cand, onnx
    raise ModelLoadError(f"{path} holds no ONNX model (no {ONNX_DIR}/{FP32} beside config.json); export "
                         "the run with `python3 -m astapp export --run RUN --output model.zip` and unzip it.")


def locate_onnx(path: Path, zip_name: str | None = None) -> tuple[Path, Path]:
    """`find_onnx_folder`, in an extracted zip below the first folder holding onnx/model.onnx."""
    if zip_name is not None:
        found = sorted(p.parent.parent for p in path.rglob(f"{ONNX_DIR}/{FP32}"))
        path = found[0] if found else path
    return find_onnx_folder(path)


def int8_caution(path: str | Path) -> str | None:
    """Why the export's check does not recommend its int8 file (onnx/check.json), or None: recommended, or
    a folder or zip without that verdict (an export from before it was recorded)."""
    import json

    path = Path(path)
    if not path.is_dir():
        return None
    try:
        _, onnx = find_onnx_folder(path)
        int8 = json.loads((onnx / "check.json").read_text(encoding="utf-8")).get("int8") or {}
    except (AstappError, OSError, ValueError):
        return None
    if int8.get("recommended") is False:
        return f"int8 is not recommended for this model: {int8.get('why_not', 'its check failed')}"
    return None


class OnnxBackend:
    """onnx/model.onnx (or, `quantized`, the int8 model_quantized.onnx) in onnxruntime on numpy features."""

    mixes_clips = False  # int8 scales activations per batch; fp32 keeps the same batches so both agree

    def __init__(self, onnx_dir: Path, settings: ModelSettings, quantized: bool = False, threads: int = 0):
        name = INT8 if quantized else FP32
        if not (onnx_dir / name).is_file():
            raise ModelLoadError(f"{onnx_dir.parent} has no {ONNX_DIR}/{name}; export the model again.")
        self.settings = settings
        self.session = ort_session(onnx_dir / name, threads)
        self.window = window_samples(settings.max_length)
        names = [o.name for o in self.session.get_outputs()]
        self.outputs = names
        # exports since the unknown score also output the pooled embedding; older ones give logits alone
        self.gives_embeddings = "pooler_output" in names

    def features(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """(len(windows), frames, bins) float32 model inputs, exactly as the model was trained on."""
        s = self.settings
        return np.stack([features(w, s.max_length, s.mean, s.std, s.num_mel_bins, s.normalize) for w in windows])

    def run(self, feats: np.ndarray) -> np.ndarray:
        """Logits of one (batch, frames, bins) float32 batch."""
        return self.session.run(["logits"] if "logits" in self.outputs else None,
                                {"input_values": np.ascontiguousarray(feats)})[0]

    def embed_logits_of(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pooled embeddings, logits) of one feature batch (an export with `pooler_output`)."""
        logits, pooled = self.session.run(["logits", "pooler_output"], {"input_values": np.ascontiguousarray(feats)})
        return pooled, logits

    def embed_logits(self, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(pooled embeddings, logits) of one batch of 16 kHz windows: the unknown score's distances need them."""
        return self.embed_logits_of(self.features(windows))

    def logits(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """(len(windows), labels) logits of one batch of 16 kHz windows."""
        return self.run(self.features(windows))
