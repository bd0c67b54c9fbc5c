"""One typed configuration that flows from the web form or the CLI into the engine.

Every run saves it as `config.json` in its folder, so a run can be reproduced, resumed, or shown as
the equivalent `python -m astapp train ...` command.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "MIT/ast-finetuned-audioset-10-10-0.4593"
SAMPLE_RATE = 16_000
NUM_MEL_BINS = 128
MAX_FRAMES = 1024  # the pretrained checkpoints' input length (10.24 s)
SCRATCH_SIZES = ("tiny", "small", "base")
MODES = ("full", "frozen")  # plus "last-N", e.g. "last-2"
AUGMENT_PRESETS = ("none", "light", "classic")


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment; unset, blank or malformed gives the default."""
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        return default


def env_float(name: str, default: float) -> float:
    """A number setting from the environment; unset, blank or malformed gives the default."""
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        return default


def env_flag(name: str) -> bool:
    """An on/off setting from the environment: 1, true, yes or on (any case) mean on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class IngestLimits:
    """Caps applied to untrusted uploads before and while extracting (never trust zip headers)."""

    max_upload_bytes: int = field(default_factory=lambda: env_int("ASTAPP_MAX_UPLOAD_MB", 1024) << 20)
    max_total_bytes: int = field(default_factory=lambda: env_int("ASTAPP_MAX_EXTRACT_MB", 4096) << 20)
    max_members: int = field(default_factory=lambda: env_int("ASTAPP_MAX_FILES", 50_000))
    max_file_bytes: int = field(default_factory=lambda: env_int("ASTAPP_MAX_FILE_MB", 512) << 20)
    max_ratio: float = 250.0  # per-member inflated/compressed bytes


@dataclass
class AudioConfig:
    """How raw clips become model-sized waveforms (16 kHz mono float32)."""

    sample_rate: int = SAMPLE_RATE
    min_seconds: float = 0.25  # shorter clips are zero-padded to this, with a warning
    max_seconds: float = 10.24  # longer clips are cropped or split, with a warning
    long_clips: str = "crop"  # "crop" | "split" (windows of max_seconds)


@dataclass
class AugmentConfig:
    """Waveform augmentation preset plus per-transform overrides, SpecAugment and mixup."""

    preset: str = "none"  # none | light | classic
    # per-transform overrides, e.g. {"PitchShift": {"enabled": False}, "Gain": {"p": 0.3}}
    transforms: dict[str, dict[str, Any]] = field(default_factory=dict)
    freq_mask: int = 0  # SpecAugment: max frequency-mask width in mel bins (AST recipe: 48)
    time_mask: int = 0  # SpecAugment: max time-mask width in frames (AST recipe: 192 at 1024)
    mixup: float = 0.0  # probability of mixing a batch item with another (AST recipe: 0.5)

    @property
    def active(self) -> bool:
        return self.preset != "none" or self.freq_mask > 0 or self.time_mask > 0 or self.mixup > 0


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as the run's config.json."""

    data: str = ""
    model: str = field(default_factory=lambda: os.environ.get("ASTAPP_MODEL", DEFAULT_MODEL))
    output: str = "runs/run"
    epochs: float = 5.0
    batch_size: int = 8
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_length: int | str = "auto"  # frames, or "auto" (95th percentile of durations, capped)
    mode: str = "full"  # full | frozen | last-N
    val_split: float = 0.2
    seed: int = 0
    early_stopping: int = 0  # patience in evaluations; 0 = off
    class_weighted: bool = False
    metric: str = "accuracy"  # metric that selects the best epoch
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    threads: int = 0  # torch CPU threads; 0 = torch default
    resume: str = ""  # checkpoint folder, or "latest"
    audio: AudioConfig = field(default_factory=AudioConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    # --- validation -------------------------------------------------------------------------
    def last_n(self) -> int | None:
        """N for mode "last-N", else None."""
        if self.mode.startswith("last-"):
            return int(self.mode.split("-", 1)[1])
        return None

    def validate(self) -> list[str]:
        """Plain-English problems with the settings; empty when the config is usable."""
        errors: list[str] = []
        if not self.data:
            errors.append("No dataset given: choose a folder, a zip or a manifest.")
        if self.epochs <= 0:
            errors.append("Epochs must be greater than 0.")
        if self.batch_size < 1:
            errors.append("Batch size must be at least 1.")
        if not 0 < self.lr < 1:
            errors.append("Learning rate must be between 0 and 1 (typical: 1e-5 to 1e-4).")
        if not 0 < self.val_split < 1:
            errors.append("Validation split must be between 0 and 1 (typical: 0.2).")
        if self.mode not in MODES:
            try:
                n = self.last_n()
                if n is None or n < 1:
                    raise ValueError
            except ValueError:
                errors.append(f"Mode must be full, frozen or last-N (e.g. last-2), not {self.mode!r}.")
        if self.max_length != "auto":
            try:
                ml = int(self.max_length)
                if not 16 <= ml <= 4096:
                    raise ValueError
            except (TypeError, ValueError):
                errors.append("Input length must be 'auto' or a number of frames between 16 and 4096.")
        if self.augment.preset not in AUGMENT_PRESETS:
            errors.append(f"Augmentation preset must be one of {', '.join(AUGMENT_PRESETS)}.")
        if self.audio.long_clips not in ("crop", "split"):
            errors.append("Long clips must be 'crop' or 'split'.")
        return errors

    # --- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if isinstance(kw.get("audio"), dict):
            kw["audio"] = AudioConfig(**_known(AudioConfig, kw["audio"]))
        if isinstance(kw.get("augment"), dict):
            kw["augment"] = AugmentConfig(**_known(AugmentConfig, kw["augment"]))
        return cls(**kw)

    def save(self, path: str | Path) -> None:
        from astapp.fsutil import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_cli(self) -> str:
        """The equivalent headless command ("show as CLI command" in the UI)."""
        import shlex

        parts = ["python", "-m", "astapp", "train", "--data", self.data, "--model", self.model,
                 "--output", self.output, "--epochs", _num(self.epochs), "--batch-size",
                 str(self.batch_size), "--lr", _num(self.lr), "--max-length", str(self.max_length),
                 "--mode", self.mode, "--augment", self.augment.preset, "--val-split",
                 _num(self.val_split), "--seed", str(self.seed)]
        if self.early_stopping:
            parts += ["--early-stopping", str(self.early_stopping)]
        if self.class_weighted:
            parts += ["--class-weighted"]
        if self.augment.freq_mask or self.augment.time_mask:
            parts += ["--freq-mask", str(self.augment.freq_mask), "--time-mask", str(self.augment.time_mask)]
        if self.augment.mixup:
            parts += ["--mixup", _num(self.augment.mixup)]
        if self.audio.long_clips != "crop":
            parts += ["--long-clips", self.audio.long_clips]
        # settings the form can change beyond the basics, only when they differ from the defaults
        default, audio_default = TrainConfig(), AudioConfig()
        for flag, value, base in (("--weight-decay", self.weight_decay, default.weight_decay),
                                  ("--warmup-ratio", self.warmup_ratio, default.warmup_ratio),
                                  ("--max-seconds", self.audio.max_seconds, audio_default.max_seconds),
                                  ("--min-seconds", self.audio.min_seconds, audio_default.min_seconds)):
            if value != base:
                parts += [flag, _num(value)]
        for flag, value, base in (("--metric", self.metric, default.metric),
                                  ("--device", self.device, default.device),
                                  ("--precision", self.precision, default.precision),
                                  ("--threads", self.threads, default.threads),
                                  ("--resume", self.resume, default.resume)):
            if value != base:
                parts += [flag, str(value)]
        if self.augment.transforms:
            parts += ["--transforms", json.dumps(self.augment.transforms, separators=(",", ":"))]
        return " ".join(shlex.quote(p) for p in parts)


def _num(x: float) -> str:
    """Short form of a number when that is exact, else the full repr (so to_cli round-trips)."""
    short = f"{x:g}"
    return short if float(short) == float(x) else repr(float(x))


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}
