"""What the search may change, by mode, with bounds taken from the settings table (`core.config.SETTINGS`)
where a setting exists, so a tuned value is always one `TrainConfig.validate` accepts.

In the cached modes (frozen, last-N) the input length, SpecAugment masks and waveform augmentation are fixed
by the one pass (the cached activations were computed from un-augmented inputs), so the search there covers
what the trainable part sees: learning rate, epochs, batch size, weight decay, mixup (on the cached
activations) and the head's dropout. Full and LoRA add the SpecAugment masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from astapp.core.config import Setting, TrainConfig, defaults_for, set_setting, setting
from astapp.core.errors import TrainingError

TRIALS = Setting("tune_trials", "--trials", "int", "trials to run", low=1, high=1000,
                 problem="The number of trials must be a whole number from 1 to 1000 (typical: 20 to 100).")
MINUTES = Setting("tune_minutes", "--minutes", "float", "time budget (0: none)", low=0, high=7 * 24 * 60,
                  problem="The time budget must be 0 (none) to 10080 minutes.")
TEST_SHARE = Setting("tune_test_share", "--test-share", "float", "clips held back for the final test", low=0,
                     high=0.5, low_open=True, problem="The held-back test share must be above 0 and at most 0.5.")
HEAD_DROPOUT = (0.0, 0.5)  # searched within the setting head_dropout's range


@dataclass(frozen=True)
class Param:
    """One searched value: a setting path of `core.config.SETTINGS`, its kind and bounds."""

    name: str
    kind: str  # float | int | choice
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def allows(self, value: Any) -> bool:
        """Whether a recorded value lies in this space (a resumed search replays only those)."""
        if self.kind == "choice":
            return value in self.choices
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high
        return ok and (self.kind != "int" or float(value) == int(value))


def _within(path: str, low: float, high: float) -> tuple[float, float]:
    """(low, high) narrowed to the setting's allowed range (open bounds stay just inside)."""
    s = setting(path)
    lo = low if s.low is None else max(low, s.low + (1e-12 if s.low_open else 0.0))
    hi = high if s.high is None else min(high, s.high - (1e-12 if s.high_open else 0.0))
    if lo > hi:
        raise TrainingError(f"The search range of {path} is empty; this is a bug in the search space.")
    return lo, hi


def space(mode: str) -> list[Param]:
    """The parameters searched in `mode`."""
    cached = mode == "frozen" or mode.startswith("last-")
    lr = (1e-4, 3e-2) if mode == "frozen" else (1e-5, 3e-3)
    params = [Param("lr", "float", *_within("lr", *lr), log=True),
              Param("epochs", "int", *_within("epochs", 2, 40 if cached else 20)),
              # a head on cached activations gains nothing from tiny batches, which cost a step each
              Param("batch_size", "choice", choices=(16, 32, 64, 128) if cached else (4, 8, 16, 32)),
              Param("weight_decay", "float", *_within("weight_decay", 0.0, 0.1)),
              Param("augment.mixup", "float", *_within("augment.mixup", 0.0, 0.8)),
              Param("head_dropout", "float", *_within("head_dropout", *HEAD_DROPOUT))]
    if not cached:
        params += [Param("augment.freq_mask", "int", *_within("augment.freq_mask", 0, 48)),
                   Param("augment.time_mask", "int", *_within("augment.time_mask", 0, 96))]
    return params


def default_params(cfg: TrainConfig) -> dict[str, Any]:
    """The app's default settings for this model, in the search's terms: what `default` in tune.json scores."""
    base = {**TrainConfig().to_dict(), **{k: v for k, v in defaults_for(cfg.model).items() if "." not in k}}
    out = {"lr": float(base["lr"]), "epochs": int(round(float(base["epochs"]))), "batch_size": int(base["batch_size"]),
           "weight_decay": float(base["weight_decay"]), "augment.mixup": float(TrainConfig().augment.mixup),
           "head_dropout": 0.0}
    if not (cfg.mode == "frozen" or cfg.mode.startswith("last-")):
        aug = TrainConfig().augment
        out.update({"augment.freq_mask": int(aug.freq_mask), "augment.time_mask": int(aug.time_mask)})
    return out


def check_counts(trials: Any, minutes: Any, test_share: Any) -> None:
    """One sentence naming the range when the trial count, the time budget or the test share is off."""
    problems = [p for s, v in ((TRIALS, trials), (MINUTES, minutes), (TEST_SHARE, test_share)) if (p := s.check(v))]
    if problems:
        raise TrainingError(" ".join(problems))


def trial_config(cfg: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """A normal training run's settings with `params` applied: what a trial trains ("train the best")."""
    out = TrainConfig.from_dict({**cfg.to_dict(), "task": "train", "resume": ""})
    for name, value in params.items():
        set_setting(out, name, value)
    return out
