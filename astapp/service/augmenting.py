"""Augmentation for the app: the catalogue the controls are built from, previews, and the saved choice.

The augmentation settings are part of the session state: what the Augment tab shows (and what a
preview plays) is what the next training run uses.
"""

from __future__ import annotations

from typing import Any

from astapp.config import AugmentConfig, setting
from astapp.errors import TrainingError
from astapp.sessions import Session


def transform_specs() -> list[dict[str, Any]]:
    """Every transform astapp offers: {name, help, params: {param: {default, min, max, step, help}}}."""
    from astapp.augment_spec import CATALOGUE

    return [{"name": name, "help": c.get("help", ""), "params": c.get("params", {})}
            for name, c in CATALOGUE.items()]


def effective_transforms(cfg: AugmentConfig) -> dict[str, dict[str, Any]]:
    """{transform: {"enabled", "params"}} as `cfg` means them (its preset plus its overrides)."""
    from astapp.augment_spec import resolve

    return {e["name"]: e for e in resolve(cfg)}


def check_augment(cfg: AugmentConfig) -> None:
    """The augmentation settings' problems as one TrainingError (the same checks training applies)."""
    from astapp.augment_spec import resolve

    problems = [p for path in ("augment.preset", "augment.freq_mask", "augment.time_mask", "augment.mixup")
                if (p := setting(path).check(getattr(cfg, path.split(".", 1)[1])))]
    if problems:
        raise TrainingError(" ".join(problems))
    resolve(cfg)  # unknown transforms or parameters, values out of range: AugmentError with the reason


class AugmentingMixin:
    """Part of `Service`: needs `self.store` and the datasets mixin's `clip_path`."""

    store: Any

    def augment(self, session: Session) -> AugmentConfig:
        return AugmentConfig.from_dict(self.store.load(session).augment)

    def save_augment(self, session: Session, cfg: AugmentConfig, clip: str | None = None,
                     seed: int | None = None) -> None:
        """Remember the settings (and the previewed clip and seed) for training and for a reload."""
        check_augment(cfg)
        with self.store.edit(session) as state:
            state.augment = cfg.to_dict()
            if clip is not None:
                state.preview["clip"] = clip
            if seed is not None:
                state.preview["seed"] = int(seed)

    def preview(self, session: Session, clip: str | None, cfg: AugmentConfig, seed: int) -> Any:
        """One clip before and after augmentation (`astapp.preview.Preview`); the settings are saved."""
        from astapp.audio import load_audio
        from astapp.preview import preview

        check_augment(cfg)
        path = self.clip_path(session, clip)  # type: ignore[attr-defined]
        pv = preview(load_audio(path, max_seconds=30), cfg, int(seed))
        self.save_augment(session, cfg, clip=clip, seed=seed)
        return pv
