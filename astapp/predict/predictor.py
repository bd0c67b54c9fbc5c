"""Predict with an exported model: one clip (windowed when long), or a list, folder or zip of files.

The model and the batched `Fbank` are built once per `Predictor`, so a call costs little more than
the model's forward pass. Long clips are cut into model-sized windows (hop = half a window, the last
one aligned to the end); the clip's answer is the mean of the windows' probabilities.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import ASTForAudioClassification

from astapp.core.config import SAMPLE_RATE, IngestLimits
from astapp.core.errors import AstappError, AudioDecodeError, ModelLoadError
from astapp.core.fsutil import atomic_write_text
from astapp.features.fbank import AUDIOSET_MEAN, AUDIOSET_STD, Fbank
from astapp.model.sources import local_folder

CSV_COLUMNS = ("file", "label", "prob", "top", "error")


@dataclass
class Prediction:
    """Aggregate `top` (label, probability) pairs, all probabilities, and per-window results."""

    top: list[tuple[str, float]]
    probs: np.ndarray
    windows: list[dict[str, Any]] = field(default_factory=list)  # {"start": s, "end": s, "top": [...]}
    duration: float = 0.0  # seconds
    above: list[tuple[str, float]] = field(default_factory=list)  # multi-label: every label over its threshold
    multi_label: bool = False


def _settings(folder: Path) -> dict[str, Any]:
    """Feature settings saved with the model: astapp.json, else a plain preprocessor_config.json."""
    for name in ("astapp.json", "preprocessor_config.json"):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ModelLoadError(f"{path} is unreadable ({e}); export the model again.") from e
            if isinstance(data, dict):
                return data
    return {}


class Predictor:
    """Loads an exported model folder (or its zip, or an astapp run folder) for repeated predictions."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 16):
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        folder = self._resolve(Path(model_dir))
        try:
            model = ASTForAudioClassification.from_pretrained(
                folder, attn_implementation="sdpa", dtype=torch.float32, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise ModelLoadError(f"Could not load the model in {model_dir}: {e}. Export it again.") from e
        try:
            self.model = model.eval().to(device)
        except (RuntimeError, AssertionError, ValueError) as e:
            raise ModelLoadError(f"Cannot run on device {device!r} ({e}); use 'cpu'.") from e
        self.folder = folder
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        cfg = model.config
        self.labels: list[str] = [str(cfg.id2label[i]) for i in range(cfg.num_labels)]
        self.max_length: int = int(cfg.max_length)
        # multi-label: a sigmoid per label and the per-label thresholds tuned on validation (config.json)
        self.multi_label = cfg.problem_type == "multi_label_classification"
        self.thresholds: dict[str, float] = {str(k): float(v) for k, v in (getattr(cfg, "thresholds", None) or {}).items()}
        s = _settings(folder)
        saved_length = int(s.get("max_length", self.max_length))
        if saved_length != self.max_length:
            raise ModelLoadError(f"The model in {model_dir} takes {self.max_length} frames but its feature "
                                 f"settings say {saved_length}; export it again.")
        self.mean = float(s.get("mean", AUDIOSET_MEAN))
        self.std = float(s.get("std", AUDIOSET_STD))
        self.normalize = bool(s.get("do_normalize", True))
        self.fbank = Fbank(self.max_length, self.mean, self.std, device=self.device)
        self.window_samples: int = self.fbank.max_samples  # samples that fill exactly max_length frames
        self.hop_samples: int = max(1, self.window_samples // 2)

    def _resolve(self, path: Path) -> Path:
        if path.is_file() and zipfile.is_zipfile(path):
            from astapp.data.ingest import extract_zip

            self._tmp = tempfile.TemporaryDirectory(prefix="astapp-model-")
            root = Path(extract_zip(path, Path(self._tmp.name), IngestLimits()))
            found = sorted(p.parent for p in root.rglob("config.json") if "__MACOSX" not in p.parts)
            if not found:
                raise ModelLoadError(f"{path.name} holds no model (no config.json); zip an exported model folder.")
            path = found[0]
        return local_folder(str(path))

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

    def _load(self, wav_or_path: np.ndarray | str | Path) -> np.ndarray:
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

    def _predict_wavs(self, wavs: list[np.ndarray], top_k: int) -> list[Prediction]:
        """Predict several clips at once: all their windows go through the model in batches."""
        k = max(1, min(int(top_k), len(self.labels)))
        segments: list[np.ndarray] = []
        spans: list[tuple[int, int, int]] = []  # (clip index, start, end) in samples
        for ci, wav in enumerate(wavs):
            for start in self.window_starts(len(wav)):
                end = min(start + self.window_samples, len(wav))
                segments.append(wav[start:end])
                spans.append((ci, start, end))
        probs = np.empty((len(segments), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for b in range(0, len(segments), self.batch_size):
                feats = self.fbank(segments[b:b + self.batch_size], normalize=self.normalize)
                logits = self.model(input_values=feats).logits
                scores = logits.float().sigmoid() if self.multi_label else logits.float().softmax(-1)
                probs[b:b + len(feats)] = scores.cpu().numpy()
        windows: list[list[dict[str, Any]]] = [[] for _ in wavs]
        members: list[list[int]] = [[] for _ in wavs]
        for i, (ci, start, end) in enumerate(spans):
            members[ci].append(i)
            windows[ci].append({"start": round(start / SAMPLE_RATE, 4), "end": round(end / SAMPLE_RATE, 4),
                                "top": self._top(probs[i], k)})
        out = []
        for ci, wav in enumerate(wavs):
            agg = probs[members[ci]].mean(axis=0)
            out.append(Prediction(top=self._top(agg, k), probs=agg, windows=windows[ci],
                                  duration=len(wav) / SAMPLE_RATE, above=self.above(agg),
                                  multi_label=self.multi_label))
        return out

    def above(self, probs: np.ndarray) -> list[tuple[str, float]]:
        """Multi-label: every label whose score reaches its threshold (0.5 without one), highest first."""
        if not self.multi_label:
            return []
        hits = [(lab, float(probs[i])) for i, lab in enumerate(self.labels) if probs[i] >= self.thresholds.get(lab, 0.5)]
        return sorted(hits, key=lambda t: -t[1])

    def _top(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
        idx = np.argsort(-probs, kind="stable")[:k]
        return [(self.labels[i], float(probs[i])) for i in idx]

    # --- many files ---------------------------------------------------------------------------
    def predict_many(self, paths_or_zip: str | Path | Iterable[str | Path], top_k: int = 5,
                     progress: Callable[[float, str], None] | None = None) -> list[dict[str, Any]]:
        """One row per audio file: {"file", "label", "prob", "top", "error"}; bad files get an error row.

        Accepts a list of files, a folder (searched recursively for audio files) or a zip (extracted
        safely to a temporary folder). Never raises for a single bad file.
        """
        with tempfile.TemporaryDirectory(prefix="astapp-predict-") as tmp:
            items = self._expand(paths_or_zip, Path(tmp))
            rows: list[dict[str, Any]] = []
            chunk = max(self.batch_size, 1)
            for c in range(0, len(items), chunk):
                batch = items[c:c + chunk]
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
                if wavs:
                    for row, pred in zip(ok, self._predict_wavs(wavs, top_k), strict=True):
                        row["label"], row["prob"] = pred.top[0]
                        row["top"] = [[label, p] for label, p in pred.top]
                        if self.multi_label:  # the label column lists every label over its threshold
                            row["label"] = ";".join(label for label, _ in pred.above)
                            row["labels"] = [[label, p] for label, p in pred.above]
                if progress:
                    progress(min(1.0, (c + len(batch)) / max(len(items), 1)),
                             f"Predicted {c + len(batch)}/{len(items)} files")
            return rows

    def _expand(self, source: str | Path | Iterable[str | Path], tmp: Path) -> list[tuple[str, Path | None]]:
        """(display name, path or None when missing) for every file to predict."""
        from astapp.predict.sources import expand_sources

        return expand_sources(source, tmp)

    # --- output -------------------------------------------------------------------------------
    @staticmethod
    def to_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
        """Write rows as CSV (file,label,prob,top,error; top as "label:prob; ...") atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            top = "; ".join(f"{label}:{p:.4f}" for label, p in r.get("top") or [])
            prob = "" if r.get("prob") is None else f"{r['prob']:.6f}"
            writer.writerow([r.get("file", ""), r.get("label") or "", prob, top, r.get("error") or ""])
        path = Path(path)
        atomic_write_text(path, buf.getvalue())
        return path
