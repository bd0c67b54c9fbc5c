"""What a model source is, without loading torch: a Hub id, a local checkpoint folder, or a model from scratch.

The app asks this on every change of the Model field (`describe_source`), so it must be instant;
`astapp.model.loading` does the loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from astapp.core.config import DEFAULT_MODEL, MAX_LENGTH, MIN_LENGTH
from astapp.core.errors import ModelLoadError
from astapp.core.hub import hub_reachable
from astapp.core.runfolder import WEIGHT_FILES

AST_MODEL_TYPE = "audio-spectrogram-transformer"
SCRATCH_NOTE = "random weights: needs much more data"
SCRATCH_CONFIGS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256},
    "small": {"hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 3, "intermediate_size": 768},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}


# --- Hub ------------------------------------------------------------------------------------------
def hub_error(source: str, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"Could not load the model {source!r}: {why}. Use a local checkpoint folder (a folder with "
        f"config.json and model.safetensors, e.g. one downloaded on another machine), or train from "
        f"scratch with 'scratch:small' ({SCRATCH_NOTE})."
    )


# --- sources --------------------------------------------------------------------------------------
def looks_like_path(source: str) -> bool:
    return (source.startswith(("/", "./", "../", "~", ".\\")) or "\\" in source or source.count("/") > 1
            or Path(source).exists())


def local_folder(source: str) -> Path:
    """The checkpoint folder for a local path: the folder itself, or its `model/` (an astapp run)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise ModelLoadError(f"The model folder {source!r} does not exist. Check the path, or use a Hub id "
                             f"such as {DEFAULT_MODEL!r} or 'scratch:small'.")
    if path.is_file():
        raise ModelLoadError(f"{source!r} is a file; give the checkpoint folder that contains config.json "
                             f"and the weights (unzip an exported model first).")
    if (path / "model" / "config.json").is_file() and _model_type(path / "config.json") != AST_MODEL_TYPE:
        path = path / "model"  # an astapp run folder: its own config.json is the run's settings
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"{source!r} is not an AST checkpoint: it has no config.json. Give a folder "
                             f"saved with save_pretrained (config.json + model.safetensors).")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{source!r} is not an AST checkpoint: its config.json is unreadable ({e}).") from e
    if not isinstance(cfg, dict) or cfg.get("model_type") != AST_MODEL_TYPE:
        kind = cfg.get("model_type", "unknown") if isinstance(cfg, dict) else "unknown"
        raise ModelLoadError(f"{source!r} is not an AST checkpoint (its model type is {kind!r}, expected "
                             f"{AST_MODEL_TYPE!r}). Choose an Audio Spectrogram Transformer checkpoint.")
    if not any((path / w).is_file() for w in WEIGHT_FILES):
        raise ModelLoadError(f"{source!r} has a config.json but no weights (model.safetensors). Copy the "
                             f"whole checkpoint folder.")
    return path


def _model_type(config: Path) -> str | None:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("model_type") if isinstance(data, dict) else None


def check_labels(labels: list[str]) -> list[str]:
    labels = [str(label) for label in labels]
    if len(labels) < 2:
        raise ModelLoadError(f"A classifier needs at least 2 labels, got {len(labels)}. Add more classes.")
    if len(set(labels)) != len(labels):
        dup = sorted({la for la in labels if labels.count(la) > 1})
        raise ModelLoadError(f"Labels must be unique; repeated: {', '.join(dup)}.")
    return labels


def check_length(max_length: int) -> int:
    try:
        ml = int(max_length)
    except (TypeError, ValueError):
        ml = -1
    if not MIN_LENGTH <= ml <= MAX_LENGTH:
        raise ModelLoadError(f"Input length must be between {MIN_LENGTH} and {MAX_LENGTH} frames "
                             f"(100 frames per second), not {max_length!r}.")
    return ml


def scratch_size(source: str) -> str:
    size = source.split(":", 1)[1].strip().lower()
    if size not in SCRATCH_CONFIGS:
        raise ModelLoadError(f"Unknown scratch size {size!r}; use one of "
                             f"{', '.join('scratch:' + s for s in SCRATCH_CONFIGS)}.")
    return size


# --- descriptions ---------------------------------------------------------------------------------
def _describe_config(cfg: dict[str, Any]) -> str:
    return (f"hidden {cfg.get('hidden_size', 768)}, {cfg.get('num_hidden_layers', 12)} layers, "
            f"{cfg.get('max_length', 1024)} frames")


def _cached_config(source: str) -> str | None:
    """The locally cached config.json of Hub model `source`, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id simply is not cached
        return None
    return cached if isinstance(cached, str) else None


def require_usable_offline(source: str) -> None:
    """Refuse, before a job is queued, a Hub model that is neither cached nor reachable: it could only fail
    minutes later in the worker. Scratch models and local folders are checked when they load."""
    source = str(source).strip()
    if not source or source.lower().startswith("scratch:") or looks_like_path(source):
        return
    if _cached_config(source) is None:
        raise hub_error(source, "the Hugging Face Hub cannot be reached from this machine and the model is not "
                                "in the local cache")


def describe_source(source: str, check_hub: bool = True) -> str:
    """One line for the UI saying what `source` is; never raises (problems become the line)."""
    source = str(source).strip()
    try:
        if source.lower().startswith("scratch:"):
            size = scratch_size(source)
            c = SCRATCH_CONFIGS[size]
            return (f"new {size} AST (hidden {c['hidden_size']}, {c['num_hidden_layers']} layers) — "
                    f"{SCRATCH_NOTE}")
        if looks_like_path(source):
            folder = local_folder(source)
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            return f"local checkpoint ({_describe_config(cfg)})"
        if not source:
            return "no model chosen"
        cached = _cached_config(source)
        if cached is not None:
            cfg = json.loads(Path(cached).read_text(encoding="utf-8"))
            return f"Hub model {source} (cached locally; {_describe_config(cfg)})"
        if check_hub and not hub_reachable():
            return str(hub_error(source, "the Hugging Face Hub cannot be reached and it is not cached"))
        return f"Hub model {source} (downloaded on first use)"
    except ModelLoadError as e:
        return str(e)
