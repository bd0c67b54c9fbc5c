"""What an exported model folder says about itself, read once for either backend.

config.json gives the labels, the input length, the mel bins and, for a multi-label model, the problem
type and each label's tuned threshold; astapp.json (else the plain preprocessor_config.json that
transformers.js and the ONNX export carry) gives the dataset's feature mean/std. Torch-free, so the
ONNX route reads the same settings without loading transformers.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.config import AUDIOSET_MEAN, AUDIOSET_STD, MAX_FRAMES, NUM_MEL_BINS, IngestLimits
from astapp.core.errors import ModelLoadError

MULTI_LABEL = "multi_label_classification"
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ModelSettings:
    """The model's labels and the features it was trained on."""

    labels: list[str]
    max_length: int = MAX_FRAMES
    mean: float = AUDIOSET_MEAN
    std: float = AUDIOSET_STD
    num_mel_bins: int = NUM_MEL_BINS
    normalize: bool = True
    multi_label: bool = False
    thresholds: dict[str, float] = field(default_factory=dict)  # multi-label: tuned on validation


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path} is unreadable ({e}); export the model again.") from e
    return data if isinstance(data, dict) else {}


def _labels(cfg: dict[str, Any]) -> list[str]:
    """id2label in index order; without one, transformers' default names for num_labels outputs."""
    id2label = cfg.get("id2label") or {}
    if not id2label:
        return [f"LABEL_{i}" for i in range(int(cfg.get("num_labels") or 2))]
    return [str(id2label.get(str(i), id2label.get(i, i))) for i in range(len(id2label))]


def read_settings(folder: Path) -> ModelSettings:
    """The settings of the model in `folder`; feature settings that contradict the model are an error."""
    cfg = read_json(folder / "config.json")
    names = [n for n in ("astapp.json", "preprocessor_config.json") if (folder / n).is_file()]
    feats = read_json(folder / names[0]) if names else {}
    max_length = int(cfg.get("max_length") or MAX_FRAMES)
    saved_length = int(feats.get("max_length", max_length))
    if saved_length != max_length:
        raise ModelLoadError(f"The model in {folder} takes {max_length} frames but its feature settings say "
                             f"{saved_length}; export it again.")
    return ModelSettings(
        labels=_labels(cfg), max_length=max_length, mean=float(feats.get("mean", AUDIOSET_MEAN)),
        std=float(feats.get("std", AUDIOSET_STD)), normalize=bool(feats.get("do_normalize", True)),
        num_mel_bins=int(cfg.get("num_mel_bins") or feats.get("num_mel_bins") or NUM_MEL_BINS),
        multi_label=cfg.get("problem_type") == MULTI_LABEL,
        thresholds={str(k): float(v) for k, v in (cfg.get("thresholds") or {}).items()})


def unzip_model(path: Path, prefix: str) -> tuple[Path, tempfile.TemporaryDirectory[str]]:
    """(extracted root, the temporary folder that holds it while the predictor lives) of a model zip."""
    from astapp.data.ingest import extract_zip

    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    return Path(extract_zip(path, Path(tmp.name), IngestLimits())), tmp
