"""Augmentation for the app: the catalogue the controls are built from, previews, and the saved choice.

The augmentation settings are part of the session state: what the Augment tab shows (and what a
preview plays) is what the next training run uses.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from astapp.core.config import AugmentConfig, setting
from astapp.core.errors import TrainingError, UploadError
from astapp.jobs.sessions import Session
from astapp.service.datasets import Datasets
from astapp.service.state import StateStore


def transform_specs() -> list[dict[str, Any]]:
    """Every transform astapp offers: {name, help, params: {param: {default, min, max, step, help}}}."""
    from astapp.features.augment_settings import CATALOGUE

    return [{"name": name, "help": c.get("help", ""), "params": c.get("params", {})}
            for name, c in CATALOGUE.items()]


def effective_transforms(cfg: AugmentConfig) -> dict[str, dict[str, Any]]:
    """{transform: {"enabled", "params"}} as `cfg` means them (its preset plus its overrides)."""
    from astapp.features.augment_settings import resolve

    return {e["name"]: e for e in resolve(cfg)}


def check_augment(cfg: AugmentConfig) -> None:
    """The augmentation settings' problems as one TrainingError (the same checks training applies)."""
    from astapp.features.augment_settings import resolve

    problems = [p for path in ("augment.preset", "augment.freq_mask", "augment.time_mask", "augment.mixup")
                if (p := setting(path).check(getattr(cfg, path.split(".", 1)[1])))]
    if problems:
        raise TrainingError(" ".join(problems))
    resolve(cfg)  # unknown transforms or parameters, values out of range: AugmentError with the reason


NOISE_DIR = "noise"  # in the session workspace


class Augmenting:
    """The session's augmentation: its settings, previews of them, and the uploaded background noise."""

    def __init__(self, store: StateStore, datasets: Datasets):
        self.store = store
        self.datasets = datasets  # the clip a preview plays, and the dataset's own noise folder

    def settings(self, session: Session) -> AugmentConfig:
        """The augmentation the next training run uses (what the Augment tab shows)."""
        return AugmentConfig.from_dict(self.store.load(session).augment)

    def save(self, session: Session, cfg: AugmentConfig, clip: str | None = None,
                     seed: int | None = None) -> None:
        """Remember the settings (and the previewed clip and seed) for training and for a reload."""
        check_augment(cfg)
        with self.store.edit(session) as state:
            keep = {k: state.augment.get(k, "") for k in ("noise", "noise_digest")} if not cfg.noise else {}
            state.augment = {**cfg.to_dict(), **keep}  # the controls never name the uploaded noise
            if clip is not None:
                state.preview["clip"] = clip
            if seed is not None:
                state.preview["seed"] = int(seed)

    def preview(self, session: Session, clip: str | None, cfg: AugmentConfig, seed: int) -> Any:
        """One clip before and after augmentation (`astapp.features.preview.Preview`); the settings are saved."""
        from astapp.data.audio import load_audio
        from astapp.features.preview import preview

        check_augment(cfg)
        path = self.datasets.clip_path(session, clip)
        pv = preview(load_audio(path, max_seconds=30), self.noise_for_preview(session, cfg), int(seed))
        self.save(session, cfg, clip=clip, seed=seed)
        return pv

    # --- real background noise (AddBackgroundNoise, AddShortNoises) -------------------------------
    def noise_folder(self, session: Session) -> Path:
        """The session's own noise clips (uploaded in the Augment tab), prepared once by content."""
        return session.workspace / NOISE_DIR

    def add_noise(self, session: Session, files: list[str | Path]) -> str:
        """Add uploaded noise clips (audio files or zips of them) to the session's noise; training and
        previews then use these instead of the dataset's noise folder. Returns the summary."""
        from astapp.features.noise import find_noise, load_bank, prepare

        folder = self.noise_folder(session)
        old = load_bank(folder)
        found = [f for src in files if src for f in find_noise(src, session.workspace)]
        if not found:
            raise UploadError("Choose audio files (or a zip of them) to add as background noise.")
        bank = prepare([*(old.paths() if old else []), *found], folder)
        if len(bank.files) == (len(old.files) if old else 0):
            raise UploadError("None of these files could be used as noise (undecodable or silent): "
                              + "; ".join(f"{s['path']}: {s['reason']}" for s in bank.skipped[:5]) + ".")
        with self.store.edit(session) as state:
            state.augment = {**state.augment, "noise": str(folder), "noise_digest": ""}
        return self.noise_summary(session)

    def clear_noise(self, session: Session) -> str:
        """Forget the uploaded noise clips (the dataset's noise folder, if any, is used again)."""
        shutil.rmtree(self.noise_folder(session), ignore_errors=True)
        with self.store.edit(session) as state:
            state.augment = {**state.augment, "noise": "", "noise_digest": ""}
        return self.noise_summary(session)

    def noise_summary(self, session: Session) -> str:
        """Which noise the noise transforms mix in, in one line."""
        from astapp.features.noise import load_bank

        bank = load_bank(self.noise_folder(session)) if self.settings(session).noise else None
        if bank is not None and bank.files:
            skipped = f" ({len(bank.skipped)} file(s) skipped: undecodable or silent)" if bank.skipped else ""
            return f"Your noise clips: {len(bank.files)} clip(s), {bank.seconds:.1f} s{skipped}."
        noise = (self.datasets.current(session).report or {}).get("noise") or {}
        if noise.get("files"):
            return (f"The dataset's {noise['folder']}/ folder: {noise['files']} clip(s), {noise['seconds']:.1f} s. "
                    "Upload clips here to use others.")
        return ("No noise clips yet: upload recordings of the places your sounds will be heard (or add a "
                "_background_noise_ folder to your dataset zip).")

    def noise_for_preview(self, session: Session, cfg: AugmentConfig) -> AugmentConfig:
        """`cfg` with its noise pointing at prepared clips: the session's own, else the dataset's."""
        from astapp.features.noise import prepare, uses_noise

        if not uses_noise(cfg) or (cfg.noise and Path(cfg.noise).is_dir()):
            return cfg
        own = self.settings(session).noise
        if own and Path(own).is_dir():
            return dataclasses.replace(cfg, noise=own)
        listing = self.datasets.listing(self.datasets.current(session))
        if not listing.noise:
            return cfg  # the augmenter says which clips are missing
        bank = prepare(listing.noise, session.workspace / "noise-dataset", listing.root)
        return dataclasses.replace(cfg, noise=str(bank.folder))
