"""The augmentation catalogue: every waveform transform astapp offers, the presets, and what a config means.

Pure data and checks (no torch, no audiomentations), so the app builds its controls and validates
settings without loading the audio stack. `CATALOGUE` describes each transform's parameters (default,
range, step, help); `PRESETS` lists what each preset turns on. `AugmentConfig.transforms` overrides a
preset per transform, e.g. `{"PitchShift": {"enabled": False}, "Gain": {"p": 0.3, "min_gain_db": -3}}`,
and `{"ClippingDistortion": {"enabled": True}}` adds a transform on top of a lighter preset.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from astapp.core.config import AUGMENT_PRESETS, AugmentConfig
from astapp.core.errors import AstappError


class AugmentError(AstappError):
    """The augmentation settings are invalid (unknown transform or parameter, bad value)."""


def _p(default: float) -> dict[str, Any]:
    return {"default": default, "min": 0.0, "max": 1.0, "step": 0.05, "help": "probability of applying it"}


def _pair(stem: str, defaults: tuple[float, float], bounds: tuple[float, float], step: float,
          helps: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """A transform's `min_<stem>` and `max_<stem>` parameters: the same bounds and step, their own default
    and help (most transforms draw a value from such a range)."""
    lo, hi = bounds
    return {f"{end}_{stem}": {"default": d, "min": lo, "max": hi, "step": step, "help": h}
            for end, d, h in zip(("min", "max"), defaults, helps, strict=True)}


def _gain_range() -> dict[str, dict[str, Any]]:
    """The ±6 dB gain bounds shared by Gain and GainTransition."""
    return _pair("gain_db", (-6.0, 6.0), (-24.0, 24.0), 0.5, ("lowest gain (dB)", "highest gain (dB)"))


# name -> {"help", "params": {param: {"default", "min", "max", "step", "help"}}, "fixed": {...}}.
# "fixed" arguments are not user-editable: TimeStretch keeps the clip length so batches stay aligned,
# and both stretchers use signalsmith (fast, high quality, no extra package; ~10 ms per 5 s clip).
CATALOGUE: dict[str, dict[str, Any]] = {
    "AddGaussianSNR": {
        "help": "Adds white noise at a random signal-to-noise ratio.",
        "params": {
            **_pair("snr_db", (10.0, 20.0), (0.0, 60.0), 1.0, ("lowest SNR (dB)", "highest SNR (dB)")),
            "p": _p(0.5),
        },
        "fixed": {},
    },
    "Gain": {
        "help": "Makes the clip louder or quieter.",
        "params": {
            **_gain_range(),
            "p": _p(0.5),
        },
        "fixed": {},
    },
    "GainTransition": {
        "help": "Fades the gain up or down over part of the clip.",
        "params": {
            **_gain_range(),
            **_pair("duration", (0.01, 0.3), (0.01, 1.0), 0.01,
                    ("shortest fade, as a fraction of the clip", "longest fade, as a fraction of the clip")),
            "p": _p(0.5),
        },
        "fixed": {"duration_unit": "fraction"},
    },
    "ClippingDistortion": {
        "help": "Clips the loudest samples, like an overdriven recorder.",
        "params": {
            **_pair("percentile_threshold", (0, 30), (0, 100), 1,
                    ("lowest share of samples clipped (%)", "highest share of samples clipped (%)")),
            "p": _p(0.5),
        },
        "fixed": {},
    },
    "TimeStretch": {
        "help": "Speeds the sound up or slows it down without changing its pitch (length kept).",
        "params": {
            **_pair("rate", (0.8, 1.2), (0.5, 2.0), 0.05, ("slowest rate", "fastest rate")),
            "p": _p(0.5),
        },
        "fixed": {"leave_length_unchanged": True, "method": "signalsmith_stretch"},
    },
    "PitchShift": {
        "help": "Shifts the pitch up or down without changing the tempo.",
        "params": {
            **_pair("semitones", (-4.0, 4.0), (-12.0, 12.0), 0.5, ("lowest shift", "highest shift")),
            "p": _p(0.5),
        },
        "fixed": {"method": "signalsmith_stretch"},
    },
}

def _snr(low: float, high: float) -> dict[str, dict[str, Any]]:
    return _pair("snr_db", (low, high), (-20.0, 60.0), 1.0, ("lowest SNR (dB)", "highest SNR (dB)"))


# Real noise (`astapp.features.noise`): the dataset's _background_noise_ folder, --noise, or clips uploaded in
# the Augment tab. A noise clip shorter than the training clip is looped by AddBackgroundNoise.
CATALOGUE.update({
    "AddBackgroundNoise": {
        "help": "Mixes in a stretch of your real background noise at a random SNR (shorter noise is looped).",
        "params": {**_snr(3.0, 30.0), "p": _p(0.5)},
        "fixed": {"noise_rms": "relative"},
        "noise": True,
    },
    "AddShortNoises": {
        "help": "Drops short bursts of your noise clips at random moments, with fades, at a random SNR.",
        "params": {
            **_snr(0.0, 18.0),
            **_pair("time_between_sounds", (0.5, 2.0), (0.05, 10.0), 0.05,
                    ("shortest pause between noises (s)", "longest pause between noises (s)")),
            "p": _p(0.5),
        },
        "fixed": {},
        "noise": True,
    },
})

CLASSIC = ["AddGaussianSNR", "Gain", "GainTransition", "ClippingDistortion", "TimeStretch", "PitchShift"]


def _entry(name: str, **params: Any) -> dict[str, Any]:
    full = {k: v["default"] for k, v in CATALOGUE[name]["params"].items()}
    full.update(params)
    return {"name": name, "enabled": True, "params": full}


# preset -> transforms it turns on, with their parameters. "classic" is exactly the reference recipe's
# six (audiomentations defaults p=0.5 except where it says otherwise). "light" is gentle: small gain,
# high-SNR noise, small stretch and shift, each applied less often.
PRESETS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "light": [
        _entry("Gain", min_gain_db=-3.0, max_gain_db=3.0, p=0.5),
        _entry("AddGaussianSNR", min_snr_db=25.0, max_snr_db=40.0, p=0.3),
        _entry("TimeStretch", min_rate=0.95, max_rate=1.05, p=0.2),
        _entry("PitchShift", min_semitones=-1.0, max_semitones=1.0, p=0.2),
    ],
    "classic": [
        _entry("AddGaussianSNR", min_snr_db=10.0, max_snr_db=20.0),
        _entry("Gain", min_gain_db=-6.0, max_gain_db=6.0),
        _entry("GainTransition", min_gain_db=-6.0, max_gain_db=6.0, min_duration=0.01, max_duration=0.3),
        _entry("ClippingDistortion", min_percentile_threshold=0, max_percentile_threshold=30, p=0.5),
        _entry("TimeStretch", min_rate=0.8, max_rate=1.2),
        _entry("PitchShift", min_semitones=-4.0, max_semitones=4.0),
    ],
}
COMPOSE_P: dict[str, float] = {"none": 0.0, "light": 0.6, "classic": 0.8}  # chance the chain runs at all
assert set(PRESETS) == set(AUGMENT_PRESETS) == set(COMPOSE_P)


def resolve(cfg: AugmentConfig) -> list[dict[str, Any]]:
    """Every catalogue transform with its effective `enabled` flag and parameters for this config.

    Order: the preset's transforms, then the rest of the catalogue (disabled unless an override
    enables them). Raises `AugmentError` for unknown presets, transforms, parameters or bad values.
    """
    if cfg.preset not in PRESETS:
        raise AugmentError(f"Unknown augmentation preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}.")
    overrides = cfg.transforms or {}
    unknown = [n for n in overrides if n not in CATALOGUE]
    if unknown:
        raise AugmentError(f"Unknown augmentation transform {unknown[0]!r}; the available ones are "
                           f"{', '.join(CATALOGUE)}.")
    chosen = {e["name"]: copy.deepcopy(e) for e in PRESETS[cfg.preset]}
    out = []
    for name in [*chosen, *(n for n in CATALOGUE if n not in chosen)]:
        entry = chosen.get(name) or {**_entry(name), "enabled": False}
        ov = overrides.get(name) or {}
        if not isinstance(ov, dict):
            raise AugmentError(f"Settings for {name} must be a mapping like {{'p': 0.5}}, not {ov!r}.")
        spec = CATALOGUE[name]["params"]
        for key, value in ov.items():
            if key == "enabled":
                if not isinstance(value, bool):
                    raise AugmentError(f"{name} enabled must be true or false, not {value!r}.")
                entry["enabled"] = value
                continue
            if key not in spec:
                raise AugmentError(f"{name} has no parameter {key!r}; its parameters are "
                                   f"{', '.join(['enabled', *spec])}.")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise AugmentError(f"{name} {key} must be a number, not {value!r}.")
            lo, hi = spec[key]["min"], spec[key]["max"]
            if not lo <= value <= hi:
                raise AugmentError(f"{name} {key} must be between {lo:g} and {hi:g}, not {value:g}.")
            is_int = isinstance(spec[key]["default"], int)
            entry["params"][key] = int(round(value)) if is_int else float(value)
        _check_ranges(name, entry["params"])
        out.append(entry)
    return out


def _check_ranges(name: str, params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key.startswith("min_"):
            other = "max_" + key[4:]
            if other in params and value > params[other]:
                raise AugmentError(f"{name}: {key} ({value:g}) must not be greater than {other} "
                                   f"({params[other]:g}).")
