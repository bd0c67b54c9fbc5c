"""Predict with an exported model: one clip (windowed when long), or a list, folder or zip of files.

One `Predictor` whatever runs the model: the windows of long clips (hop = half a window, the last one
aligned to the end; the clip's answer is the mean of its windows' probabilities), top-k, the batches,
the multi-label thresholds, the CSV rows and the folder's settings live here once. A backend only turns
a batch of 16 kHz windows into logits: `torch_backend` (astapp's torch filterbank + the AST model) or
`onnx_backend` (numpy features + onnxruntime, fp32 or int8). This module imports neither torch nor
transformers, so `predict --onnx` runs where they are not installed.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import AstappError, AudioDecodeError, ModelLoadError
from astapp.core.fsutil import atomic_write_text
from astapp.core.scores import sigmoid, softmax
from astapp.evaluation import unknown
from astapp.features.fbank_numpy import window_samples
from astapp.predict.settings import DEFAULT_THRESHOLD, ModelSettings, read_settings, unzip_model

CSV_COLUMNS = ("file", "label", "prob", "top", "error", "unknown")  # unknown: the score, empty without one
BACKENDS = ("torch", "onnx")


class Backend(Protocol):
    # False where a window's logits depend on its batch mates (onnxruntime's dynamic int8 quantization
    # scales the activations per batch): then each clip's windows are batched on their own, so a clip's
    # answer never depends on which other files were predicted with it.
    mixes_clips: bool

    def logits(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """(len(windows), labels) logits of 16 kHz mono windows of at most `window_samples` samples."""
        ...


@dataclass
class Prediction:
    """Aggregate `top` (label, probability) pairs, all probabilities, and per-window results."""

    top: list[tuple[str, float]]
    probs: np.ndarray
    windows: list[dict[str, Any]] = field(default_factory=list)  # {"start": s, "end": s, "top": [...]}
    duration: float = 0.0  # seconds
    above: list[tuple[str, float]] = field(default_factory=list)  # multi-label: every label over its threshold
    multi_label: bool = False
    unknown: float | None = None  # mean of the windows' unknown scores; None: the model has no statistics
    is_unknown: bool = False  # the score is above the model's calibrated threshold


class Predictor:
    """An exported model folder (or its zip, or an astapp run folder) loaded for repeated predictions.

    `backend="torch"` (on `device`) runs model.safetensors in PyTorch; `backend="onnx"` runs the export's
    onnx/model.onnx (`quantized`: model_quantized.onnx) in onnxruntime with `threads` (0: its default).
    The export's unknown-score statistics (`astapp.evaluation.unknown`), when it has them, score every clip;
    `unknown_threshold` overrides the calibrated threshold.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 16, backend: str = "torch",
                 quantized: bool = False, threads: int = 0, unknown_threshold: float | None = None):
        if backend not in BACKENDS:
            raise ModelLoadError(f"Unknown prediction backend {backend!r}; use one of {', '.join(BACKENDS)}.")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        path, zip_name = Path(model_dir), None
        if path.is_file() and zipfile.is_zipfile(path):
            zip_name = path.name
            path, self._tmp = unzip_model(path, "astapp-model-")
        if backend == "onnx":
            from astapp.predict.onnx_backend import OnnxBackend, locate_onnx

            self.folder, onnx_dir = locate_onnx(path, zip_name)
            self.settings: ModelSettings = read_settings(self.folder)
            self.backend: Backend = OnnxBackend(onnx_dir, self.settings, quantized, threads)
        else:
            from astapp.predict.torch_backend import TorchBackend, locate_model

            self.folder = locate_model(path, zip_name)
            self.settings = read_settings(self.folder)
            self.backend = TorchBackend(self.folder, self.settings, device)
        self.batch_size = max(1, int(batch_size))
        self.labels: list[str] = list(self.settings.labels)
        self.max_length: int = self.settings.max_length
        self.multi_label: bool = self.settings.multi_label  # a sigmoid per label and per-label thresholds
        self.thresholds: dict[str, float] = dict(self.settings.thresholds)
        self.window_samples: int = window_samples(self.max_length)  # samples that fill exactly max_length frames
        self.hop_samples: int = max(1, self.window_samples // 2)
        self.unknown, self.unknown_note = self._load_unknown(unknown_threshold)

    def _load_unknown(self, threshold: float | None) -> tuple[unknown.UnknownStats | None, str]:
        """(the statistics that score clips, or None; a note on why there are none or no threshold)."""
        stats = unknown.load(self.folder)
        if stats is None:
            return None, "This model was exported before unknown scores; train it again to get them."
        if stats.needs_embeddings and not getattr(self.backend, "gives_embeddings", hasattr(self.backend, "embed_logits")):
            return None, (f"The {stats.method} unknown score needs the model's embeddings, which this ONNX export "
                          "lacks (it predates them): export the model again, or predict without --onnx.")
        if threshold is not None:
            stats.threshold = float(threshold)
        return stats, stats.reason if stats.threshold is None else ""

    # --- single clips -------------------------------------------------------------------------
    def window_starts(self, num_samples: int) -> list[int]:
        """Window start samples: one window for clips that fit, else hop = half a window, last at the end."""
        win = self.window_samples
        if num_samples <= win:
            return [0]
        return [*range(0, num_samples - win, self.hop_samples), num_samples - win]

    def predict(self, wav_or_path: np.ndarray | str | Path, top_k: int = 5) -> Prediction:
        """Top-k labels for one clip (16 kHz mono float32 array, or an audio file path)."""
        wav = self._load(wav_or_path)
        return self._predict_wavs([wav], top_k)[0]

    @staticmethod
    def _load(wav_or_path: np.ndarray | str | Path) -> np.ndarray:
        if isinstance(wav_or_path, (str, Path)):
            from astapp.data.audio import load_audio

            return load_audio(wav_or_path, sr=SAMPLE_RATE)
        wav = np.asarray(wav_or_path, dtype=np.float32)
        if wav.ndim == 2:  # (samples, channels) or (channels, samples): mix down
            wav = wav.mean(axis=1 if wav.shape[0] > wav.shape[1] else 0)
        if wav.ndim != 1:
            raise AudioDecodeError(f"Expected mono audio, got an array of shape {wav.shape}.")
        if wav.size == 0:
            raise AudioDecodeError("The clip is empty (no samples).")
        if not np.isfinite(wav).all():
            raise AudioDecodeError("The clip contains invalid samples (NaN or infinity).")
        return wav

    def probabilities(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """(windows, labels) float64 probabilities: the backend's logits batch by batch, then a softmax
        (or a sigmoid per label for a multi-label model)."""
        return self._outputs(windows)[0]

    def _outputs(self, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, unknown scores or None) of windows, batch by batch."""
        stats = self.unknown
        embed = stats is not None and stats.needs_embeddings
        logits, scores = [], []
        for b in range(0, len(windows), self.batch_size):
            batch = windows[b:b + self.batch_size]
            emb, out = self.backend.embed_logits(batch) if embed else (None, self.backend.logits(batch))  # type: ignore[attr-defined]
            logits.append(out)
            if stats is not None:
                scores.append(unknown.score(stats, out, emb))
        out = np.concatenate(logits) if logits else np.zeros((0, len(self.labels)), dtype=np.float32)
        probs = sigmoid(out) if self.multi_label else softmax(out)
        return probs, (np.concatenate(scores) if scores else np.zeros(0)) if stats is not None else None

    def _predict_wavs(self, wavs: list[np.ndarray], top_k: int) -> list[Prediction]:
        """Predict several clips at once: their windows go through the model in batches."""
        k = max(1, min(int(top_k), len(self.labels)))
        segments: list[list[np.ndarray]] = [[] for _ in wavs]  # each clip's windows
        spans: list[tuple[int, int, int]] = []  # (clip index, start, end) in samples, clip by clip
        for ci, wav in enumerate(wavs):
            for start in self.window_starts(len(wav)):
                end = min(start + self.window_samples, len(wav))
                segments[ci].append(wav[start:end])
                spans.append((ci, start, end))
        groups = [[w for clip in segments for w in clip]] if self.backend.mixes_clips else segments
        outputs = [self._outputs(g) for g in groups]
        probs = np.concatenate([p for p, _ in outputs])
        scores = None if self.unknown is None else np.concatenate([u for _, u in outputs])
        windows: list[list[dict[str, Any]]] = [[] for _ in wavs]
        members: list[list[int]] = [[] for _ in wavs]
        for i, (ci, start, end) in enumerate(spans):
            members[ci].append(i)
            windows[ci].append({"start": round(start / SAMPLE_RATE, 4), "end": round(end / SAMPLE_RATE, 4),
                                "top": self.top(probs[i], k),
                                **({} if scores is None else {"unknown": float(scores[i])})})
        out = []
        for ci, wav in enumerate(wavs):
            agg = probs[members[ci]].mean(axis=0)
            unk = None if scores is None else float(scores[members[ci]].mean())
            out.append(Prediction(top=self.top(agg, k), probs=agg, windows=windows[ci],
                                  duration=len(wav) / SAMPLE_RATE, above=self.above(agg),
                                  multi_label=self.multi_label, unknown=unk, is_unknown=self.is_unknown(unk)))
        return out

    def verdict(self, pred: Prediction) -> str:
        """One line on the unknown score of a prediction: "unknown (not like any class; score 0.93 > 0.71)",
        the score against the threshold when it is known, or why there is no score ("" when nothing to say)."""
        t = self.unknown.threshold if self.unknown is not None else None
        if pred.unknown is None:
            return self.unknown_note
        if pred.is_unknown:
            return f"unknown (not like any class; score {pred.unknown:.3g} > {t:.3g})"
        if t is None:
            return f"unknown score {pred.unknown:.3g} (no threshold: {self.unknown_note})"
        return f"like the training classes (unknown score {pred.unknown:.3g} ≤ {t:.3g})"

    def is_unknown(self, score: float | None) -> bool:
        """Whether a clip's unknown score is above the (calibrated or overridden) threshold."""
        t = self.unknown.threshold if self.unknown is not None else None
        return score is not None and t is not None and score > t

    def above(self, probs: np.ndarray) -> list[tuple[str, float]]:
        """Multi-label: every label whose score reaches its threshold (0.5 without one), highest first."""
        if not self.multi_label:
            return []
        hits = [(lab, float(probs[i])) for i, lab in enumerate(self.labels)
                if probs[i] >= self.thresholds.get(lab, DEFAULT_THRESHOLD)]
        return sorted(hits, key=lambda t: -t[1])

    def top(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k most probable (label, probability) pairs, ties in label order."""
        idx = np.argsort(-probs, kind="stable")[:max(1, min(int(k), len(self.labels)))]
        return [(self.labels[i], float(probs[i])) for i in idx]

    # --- many files ---------------------------------------------------------------------------
    def predict_many(self, paths_or_zip: str | Path | Iterable[str | Path], top_k: int = 5,
                     progress: Callable[[float, str], None] | None = None) -> list[dict[str, Any]]:
        """One row per audio file: {"file", "label", "prob", "top", "error"}; bad files get an error row.

        Accepts a list of files, a folder (searched recursively for audio files) or a zip (extracted
        safely to a temporary folder). Never raises for a single bad file.
        """
        from astapp.predict.sources import expand_sources

        with tempfile.TemporaryDirectory(prefix="astapp-predict-") as tmp:
            items = expand_sources(paths_or_zip, Path(tmp))
            rows: list[dict[str, Any]] = []
            for c in range(0, len(items), self.batch_size):
                batch = items[c:c + self.batch_size]
                rows += self._batch_rows(batch, top_k)
                if progress:
                    progress(min(1.0, (c + len(batch)) / max(len(items), 1)),
                             f"Predicted {c + len(batch)}/{len(items)} files")
            return rows

    def _batch_rows(self, batch: list[tuple[str, Path | None]], top_k: int) -> list[dict[str, Any]]:
        """The rows of one batch of files, their clips predicted together."""
        rows: list[dict[str, Any]] = []
        wavs: list[np.ndarray] = []
        ok: list[dict[str, Any]] = []
        for name, path in batch:
            row: dict[str, Any] = {"file": name, "label": None, "prob": None, "top": [], "error": None}
            rows.append(row)
            if path is None:
                row["error"] = "file not found"
                continue
            try:
                wavs.append(self._load(path))
                ok.append(row)
            except AstappError as e:
                row["error"] = str(e)
            except Exception as e:  # noqa: BLE001 - one odd file must never stop the batch
                row["error"] = f"could not read the file ({type(e).__name__}: {e})"
        for row, pred in zip(ok, self._predict_wavs(wavs, top_k) if wavs else [], strict=True):
            row["label"], row["prob"] = pred.top[0]
            row["top"] = [[label, p] for label, p in pred.top]
            if self.multi_label:  # the label column lists every label over its threshold
                row["label"] = ";".join(label for label, _ in pred.above)
                row["labels"] = [[label, p] for label, p in pred.above]
            if pred.unknown is not None:  # models exported before unknown scores keep today's rows exactly
                row["unknown"] = pred.unknown
                row["unknown_threshold"] = self.unknown.threshold if self.unknown is not None else None
                if pred.is_unknown:
                    row["label"] = "unknown"
        return rows

    # --- output -------------------------------------------------------------------------------
    @staticmethod
    def to_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
        """Write rows as CSV (file,label,prob,top,error,unknown; top as "label:prob; ...") atomically; the label
        is "unknown" where the unknown score is above the threshold, the top list still names the classes."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            top = "; ".join(f"{label}:{p:.4f}" for label, p in r.get("top") or [])
            prob = "" if r.get("prob") is None else f"{r['prob']:.6f}"
            unk = "" if r.get("unknown") is None else f"{r['unknown']:.6g}"
            writer.writerow([r.get("file", ""), r.get("label") or "", prob, top, r.get("error") or "", unk])
        path = Path(path)
        atomic_write_text(path, buf.getvalue())
        return path
