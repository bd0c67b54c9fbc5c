"""One typed configuration that flows from the web form or the CLI into the engine, and its settings table.

`SETTINGS` describes every training setting once: its flag, type, range, the sentence shown when a
value is wrong, its default for a model trained from scratch, and its form label, hint and range. The
CLI's argparse flags, `TrainConfig.to_cli`, the Train form (its fields in `FORM_ROWS`: controls, defaults,
ranges, the app's API parameters) and `TrainConfig.validate` are all generated from it. Every run saves
its config as `config.json`, so it can be reproduced or resumed.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# the environment readers live in core.env; importers of them from here keep working
from astapp.core.env import env_flag, env_float, env_int, env_number, launch_rank, launch_world  # noqa: F401

DEFAULT_MODEL = "MIT/ast-finetuned-audioset-10-10-0.4593"
SAMPLE_RATE = 16_000
NUM_MEL_BINS = 128
MAX_FRAMES = 1024  # the pretrained checkpoints' input length (10.24 s)
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974  # the pretrained checkpoints' feature statistics
MIN_LENGTH, MAX_LENGTH = 16, 4096  # input lengths (frames) a model can be adapted to
SCRATCH_SIZES = ("tiny", "small", "base")
MODES = ("full", "frozen", "lora")  # plus "last-N", e.g. "last-2"
AUGMENT_PRESETS = ("none", "light", "classic")
SCALAR_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
METRICS = (*SCALAR_METRICS, "loss")  # what can pick the best epoch


# A student's epochs when none are given. Why 40: a student of hidden 128 x 2 layers distilled from a 192x4
# teacher with unlabeled audio agreed with it on 87.5 %, 91.7 % and 97.9 % of the validation clips after 10, 20
# and 40 epochs (docs/BENCHMARKS.md section 31): students are cheap per step, and they learn slowly.
DISTILL_EPOCHS = 40.0
STUDENT_INITS = ("teacher", "random")  # a student's first weights: a slice of the teacher's (distill.init), or random


def is_scratch(model: str) -> bool:
    return str(model).strip().lower().startswith("scratch:")


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
    # noise clips for AddBackgroundNoise / AddShortNoises: a folder or zip ("" = the dataset's
    # _background_noise_ folder); a run resolves it to its own copy and records the set's digest
    noise: str = ""
    noise_digest: str = ""

    @property
    def active(self) -> bool:
        return self.preset != "none" or self.freq_mask > 0 or self.time_mask > 0 or self.mixup > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AugmentConfig:
        return cls(**_known(cls, d or {}))


@dataclass(frozen=True)
class Setting:
    """One training setting: how it is typed on the command line, checked, defaulted and shown."""

    path: str  # TrainConfig attribute; "group.name" inside `audio` / `augment`
    flag: str
    kind: str  # int | float | str | bool | frames | json | mode
    help: str = ""
    problem: str = ""  # the sentence `validate` gives; "{value!r}" is filled in
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is not allowed
    high_open: bool = False
    choices: tuple[str, ...] = ()
    required: bool = False  # a string that must not be empty
    basic: bool = False  # always written by to_cli (the settings a reader looks for)
    scratch: Any = None  # default for a model trained from scratch, when it differs
    form: tuple[float, float, float] | None = None  # (min, max, step) of the form's control
    label: str = ""
    info: str = ""  # the form's hint under its control

    def check(self, value: Any) -> str | None:
        """The problem with `value`, or None when it is acceptable."""
        if self.kind == "mode":
            ok = isinstance(value, str) and (value in MODES or _last_n(value) is not None)
        elif self.kind == "frames":
            ok = value == "auto" or (_is_int(value) and MIN_LENGTH <= int(value) <= MAX_LENGTH)
        elif self.kind == "json":
            ok = isinstance(value, dict)
        elif self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "str":
            ok = isinstance(value, str) and (not self.choices or value in self.choices) and \
                (not self.required or bool(value.strip()))
        else:
            ok = (_is_int(value) if self.kind == "int" else _is_number(value)) and self._in_range(float(value))
        return None if ok else self.problem.format(value=value)

    def _in_range(self, x: float) -> bool:
        lo_ok = self.low is None or (x > self.low if self.low_open else x >= self.low)
        hi_ok = self.high is None or (x < self.high if self.high_open else x <= self.high)
        return lo_ok and hi_ok


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return _is_number(v) and float(v) == int(v)


def _last_n(mode: str) -> int | None:
    head, _, n = mode.partition("-")
    return int(n) if head == "last" and n.isdigit() and int(n) >= 1 else None


_CHOICE = "{name} must be {options}, not {{value!r}}."
SETTINGS: tuple[Setting, ...] = (
    Setting("data", "--data", "str", "dataset folder, zip or manifest", required=True, basic=True,
            problem="No dataset given: choose a folder, a zip or a manifest."),
    Setting("model", "--model", "str", "Hub id, local checkpoint folder, or scratch:tiny|small|base", required=True,
            basic=True, label="Model", info="A Hub id, a local checkpoint folder, or scratch:tiny|small|base",
            problem="No model given: use a Hub id, a local checkpoint folder or scratch:small."),
    Setting("output", "--output", "str", "run folder to write", required=True, basic=True,
            problem="No output folder given: name the run folder to write (e.g. runs/my-run)."),
    Setting("epochs", "--epochs", "float", "passes over the training clips", low=0, low_open=True, basic=True,
            scratch=20.0, form=(0.1, 1000, 1), label="Epochs", problem="Epochs must be greater than 0."),
    Setting("batch_size", "--batch-size", "int", "clips per step (per process)", low=1, basic=True, scratch=16,
            form=(1, 1024, 1), label="Batch size", problem="Batch size must be at least 1."),
    Setting("lr", "--lr", "float", "learning rate", low=0, high=1, low_open=True, high_open=True, basic=True,
            scratch=1e-3, form=(0, 1, 0), label="Learning rate",
            problem="Learning rate must be between 0 and 1 (typical: 1e-5 to 1e-4)."),
    Setting("weight_decay", "--weight-decay", "float", "AdamW weight decay", low=0, high=1,
            problem="Weight decay must be between 0 and 1 (typical: 0 to 0.05)."),
    Setting("warmup_ratio", "--warmup-ratio", "float", "share of steps with a rising learning rate", low=0,
            high=1, high_open=True, problem="Warm-up ratio must be at least 0 and below 1 (typical: 0.1)."),
    Setting("max_length", "--max-length", "frames", "input frames (100 per second), or auto", basic=True,
            label="Input length (frames)", info="auto = fits 95% of your clips",
            problem=f"Input length must be 'auto' or a number of frames between {MIN_LENGTH} and {MAX_LENGTH}."),
    Setting("mode", "--mode", "mode", "full, frozen, last-N (e.g. last-2) or lora", basic=True,
            label="What to train", problem="Mode must be full, frozen, last-N (e.g. last-2) or lora, not {value!r}."),
    Setting("lora_rank", "--lora-rank", "int", "LoRA: rank of the adapters", low=1, form=(1, 256, 1),
            label="LoRA rank", info="mode LoRA: adapter rank (4 to 16 is typical)",
            problem="The LoRA rank must be a whole number of 1 or more (typical: 4 to 16)."),
    Setting("lora_alpha", "--lora-alpha", "float", "LoRA: scaling (alpha; the update is scaled by alpha/rank)",
            low=0, low_open=True, label="LoRA alpha", info="usually twice the rank",
            problem="LoRA alpha must be above 0 (typical: twice the rank)."),
    Setting("lora_dropout", "--lora-dropout", "float", "LoRA: dropout on the adapters' input", low=0, high=1,
            high_open=True, label="LoRA dropout", problem="LoRA dropout must be at least 0 and below 1 (typical: 0 to 0.1)."),
    Setting("lora_targets", "--lora-targets", "str", "LoRA: comma-separated module names to adapt", required=True,
            label="LoRA target modules", info="attention.q_proj/k_proj/v_proj/o_proj, mlp.fc1/fc2",
            problem="Name the modules LoRA adapts, comma-separated (default: q_proj,v_proj)."),
    Setting("augment.preset", "--augment", "str", "waveform augmentation preset", choices=AUGMENT_PRESETS,
            basic=True, problem=f"Augmentation preset must be one of {', '.join(AUGMENT_PRESETS)}."),
    Setting("augment.transforms", "--transforms", "json", 'per-transform overrides, e.g. {"Gain": {"p": 0.3}}',
            problem="Transform overrides must be a JSON object such as {{\"Gain\": {{\"p\": 0.3}}}}."),
    Setting("augment.freq_mask", "--freq-mask", "int", "SpecAugment max frequency mask (mel bins)", low=0,
            high=NUM_MEL_BINS, form=(0, 64, 1), label="Frequency mask width (mel bins)",
            problem=f"The frequency mask must be between 0 and {NUM_MEL_BINS} mel bins (AST recipe: 48)."),
    Setting("augment.time_mask", "--time-mask", "int", "SpecAugment max time mask (frames)", low=0,
            high=MAX_LENGTH, form=(0, 256, 4), label="Time mask width (frames)",
            problem=f"The time mask must be between 0 and {MAX_LENGTH} frames (AST recipe: 192 at 10 s)."),
    Setting("augment.mixup", "--mixup", "float", "mixup probability", low=0, high=1, form=(0, 1, 0.05),
            label="Mixup probability", problem="Mixup must be a probability between 0 and 1 (AST recipe: 0.5)."),
    Setting("augment.noise", "--noise", "str", "folder or zip of background-noise clips for AddBackgroundNoise/"
            "AddShortNoises (default: the dataset's _background_noise_ folder)", problem="Noise must be a path."),
    Setting("head_dropout", "--head-dropout", "float", "dropout before the classifier's output layer (training "
            "only)", low=0, high=1, high_open=True, form=(0, 0.9, 0.05), label="Head dropout",
            info="0 = off; the settings search tunes it", problem="Head dropout must be at least 0 and below 1 "
            "(typical: 0 to 0.3)."),
    Setting("val_split", "--val-split", "float", "share of clips that validate (without folds)", low=0, high=1,
            low_open=True, high_open=True, basic=True, form=(0.05, 0.5, 0.05), label="Validation share",
            problem="Validation split must be between 0 and 1 (typical: 0.2)."),
    Setting("val_fold", "--val-fold", "str", "the manifest fold that validates (empty: the one named val/valid/"
            "test, else the last)", label="Validation fold", info="the fold held out to validate",
            problem="The validation fold must be a fold name."),
    Setting("seed", "--seed", "int", "random seed", low=0, high=2**32 - 1, basic=True, label="Seed",
            problem="Seed must be a whole number between 0 and 4294967295."),
    Setting("early_stopping", "--early-stopping", "int", "stop after this many evaluations without progress",
            low=0, label="Early stopping patience (epochs, 0 = off)",
            problem="Early stopping patience must be 0 (off) or a whole number of evaluations."),
    Setting("class_weighted", "--class-weighted", "bool", "weight the loss by inverse class frequency",
            label="Weight classes by rarity (unbalanced data)", problem="Class weighting must be on or off."),
    Setting("multi_label", "--multi-label", "bool", "train multi-label (a sigmoid per label, BCE) even when the "
            "data has one label per clip; detected from the manifest otherwise",
            label="Multi-label (clips may have several labels)", problem="Multi-label must be on or off."),
    Setting("metric", "--metric", "str", "metric that picks the best epoch", choices=METRICS,
            problem=_CHOICE.format(name="The metric that picks the best epoch",
                                   options=f"one of {', '.join(SCALAR_METRICS)} or loss")),
    Setting("audio.long_clips", "--long-clips", "str", "what happens to clips over --max-seconds",
            choices=("crop", "split"), problem="Long clips must be 'crop' or 'split'."),
    Setting("audio.max_seconds", "--max-seconds", "float", "longest clip kept whole (seconds)", low=0.1,
            high=600, problem="The longest clip length must be between 0.1 and 600 seconds."),
    Setting("audio.min_seconds", "--min-seconds", "float", "shorter clips are padded to this (seconds)", low=0,
            high=60, low_open=True, problem="The shortest clip length must be above 0 and at most 60 seconds."),
    Setting("resume", "--resume", "str", "checkpoint folder to resume from, or latest",
            problem="Resume must name a checkpoint folder or 'latest'."),
    Setting("device", "--device", "str", "where to train", choices=("auto", "cpu", "cuda"),
            problem=_CHOICE.format(name="Device", options="auto, cpu or cuda")),
    Setting("precision", "--precision", "str", "auto: bf16/fp16 on CUDA, bf16 on CPUs with native bf16",
            choices=("auto", "fp32", "bf16", "fp16"), problem=_CHOICE.format(name="Precision",
                                                                             options="auto, fp32, bf16 or fp16")),
    Setting("threads", "--threads", "int", "torch CPU threads (0 = torch's default)", low=0,
            problem="Threads must be 0 (torch's default) or a whole number of threads."),
    Setting("unknown_keep", "--unknown-keep", "float", "share of validation clips the unknown threshold keeps "
            "as known (the rest score as unknown)", low=0, high=1, low_open=True,
            label="Known clips kept by the unknown threshold",
            problem="The share of known clips kept must be above 0 and at most 1 (typical: 0.95)."),
    Setting("int8_pass", "--int8-pass", "bool", "frozen / last-N: run the frozen layers' one-off pass over the "
            "training clips in int8 on CPUs without native bf16, when it stays within a tenth of fp32 on the first "
            "clips (validation stays fp32)",
            label="int8 one-off pass (CPU without bf16)", problem="The int8 pass must be on or off."),
)
_BY_PATH = {s.path: s for s in SETTINGS}
# The Train form row by row (rows after the 2nd fold under "More settings"); built from the entries above.
FORM_ROWS = (("model", "mode"), ("epochs", "lr", "batch_size", "max_length", "val_split", "val_fold"),
             ("seed", "early_stopping", "class_weighted"), ("lora_rank", "lora_alpha", "lora_dropout", "lora_targets"),
             ("head_dropout",))
FORM_FIELDS = tuple(name for row in FORM_ROWS for name in row)


def setting(path: str) -> Setting:
    """The table entry of one setting (for the form: label, range, help)."""
    return _BY_PATH[path]


def defaults_for(model: str) -> dict[str, Any]:
    """Starting values of the settings that depend on the model: fine-tuning wants a small learning rate
    and few epochs; a model trained from scratch a larger rate, more epochs and bigger batches."""
    base = TrainConfig()
    return {s.path: (s.scratch if is_scratch(model) and s.scratch is not None else _get(base, s.path))
            for s in SETTINGS if s.scratch is not None}


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as the run's config.json."""

    data: str = ""
    data_version: str = ""  # the dataset version trained on ("v2 = v1 + 3 false alarms → background"), if any
    model: str = field(default_factory=lambda: os.environ.get("ASTAPP_MODEL", DEFAULT_MODEL))
    output: str = "runs/run"
    epochs: float = 5.0
    batch_size: int = 8
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_length: int | str = "auto"  # frames, or "auto" (95th percentile of durations, capped)
    mode: str = "full"  # full | frozen | last-N | lora
    lora_rank: int = 8  # mode lora: adapters on lora_targets (attention query and value by default)
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0  # dropout on the adapters' input: off by default (it costs ~10% of a step)
    lora_targets: str = "q_proj,v_proj"
    val_split: float = 0.2  # share of clips that validate when the dataset has no folds
    val_fold: str = ""  # with folds: the one that validates ("" = named val/valid/test, else the last)
    seed: int = 0
    early_stopping: int = 0  # patience in evaluations; 0 = off
    class_weighted: bool = False
    multi_label: bool = False  # force multi-label; a manifest with several labels per clip turns it on anyway
    metric: str = "accuracy"  # metric that selects the best epoch
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, bf16 on a bf16 CPU, else fp32) | fp32 | bf16 | fp16
    threads: int = 0  # torch CPU threads; 0 = torch default
    resume: str = ""  # checkpoint folder, or "latest"
    task: str = "train"  # train | cv (astapp.crossval.task) | distill (astapp.distill) | tune (astapp.tuning.search)
    cv_folds: str = "auto"  # cv: "auto" (the manifest's folds, else 5) or a number of folds
    cv_final: bool = False  # cv: also train the final model (frozen: on every clip)
    tune_trials: int = 20  # tune: trials to run (range: astapp.tuning.space.TRIALS)
    tune_minutes: float = 0.0  # tune: time budget in minutes (0: none)
    tune_test_share: float = 0.2  # tune: clips held back for one test at the end
    audio: AudioConfig = field(default_factory=AudioConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    head_dropout: float = 0.0  # dropout on the classifier's input before its Linear layer (training only)
    unknown_keep: float = 0.95  # the unknown threshold keeps this share of validation clips (issue 25)
    int8_pass: bool = True  # frozen/last-N pass in int8 where bf16 is not native and it is faithful (BENCHMARKS §12)
    # task distill (issue 28): the finished run that teaches, the student's size, unlabeled audio (folder/zip)
    distilled_from: str = ""
    student: str = ""
    pool: str = ""
    student_init: str = "teacher"  # "teacher": weight selection from the teacher (astapp.distill.init); "random"

    def validate(self) -> list[str]:
        """Every problem with the settings as plain sentences; empty when the config is usable."""
        problems = [p for s in SETTINGS if (p := s.check(_get(self, s.path)))]
        a = self.audio
        if _is_number(a.min_seconds) and _is_number(a.max_seconds) and a.min_seconds > a.max_seconds:
            problems.append("The shortest clip length must not be above the longest clip length.")
        return problems

    def require_valid(self) -> None:
        """Raise TrainingError naming every problem: the one check the CLI, the app and the engine use."""
        problems = self.validate()
        if problems:
            from astapp.core.errors import TrainingError

            raise TrainingError("The training settings need fixing: " + " ".join(problems))

    # --- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        kw = _known(cls, d)
        if isinstance(kw.get("audio"), dict):
            kw["audio"] = AudioConfig(**_known(AudioConfig, kw["audio"]))
        if isinstance(kw.get("augment"), dict):
            kw["augment"] = AugmentConfig.from_dict(kw["augment"])
        return cls(**kw)

    def save(self, path: str | Path) -> None:
        from astapp.core.fsutil import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_cli(self) -> str:
        """The equivalent headless command ("show as CLI command" in the UI): the basic settings always,
        every other one where it differs from its default, so it round-trips through the parser."""
        default = TrainConfig()
        parts = ["python3", "-m", "astapp", "train"]
        for s in SETTINGS:
            value = _get(self, s.path)
            if not s.basic and value == _get(default, s.path):
                continue
            if s.kind == "bool":
                parts += [s.flag if value else "--no-" + s.flag[2:]]
            elif s.kind == "json":
                parts += [s.flag, json.dumps(value, separators=(",", ":"))]
            else:
                parts += [s.flag, _num(value) if s.kind == "float" else str(value)]
        return " ".join(shlex.quote(p) for p in parts)


def _get(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def set_setting(cfg: TrainConfig, path: str, value: Any) -> None:
    """Set one setting by its table path (e.g. "augment.mixup")."""
    *groups, name = path.split(".")
    obj: Any = cfg
    for g in groups:
        obj = getattr(obj, g)
    setattr(obj, name, value)


def _num(x: float) -> str:
    """Short form of a number when that is exact, else the full repr (so to_cli round-trips)."""
    short = f"{x:g}"
    return short if float(short) == float(x) else repr(float(x))


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}
