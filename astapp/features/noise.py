"""Background-noise clips for AddBackgroundNoise and AddShortNoises: found, decoded once, kept by content.

Noise comes from a dataset's top-level `_background_noise_/` folder (also `_noise_`, `background_noise`;
Speech Commands' convention), from `--noise DIR_OR_ZIP`, or from clips uploaded in the Augment tab.
`prepare` decodes each clip to 16 kHz mono float32 WAV named by its content hash, into a folder with
`noise.json` (the files and one digest of the whole set). A training run copies its noise into
`<run>/noise/` and its resolved config names that folder and digest, so a rerun hears exactly the same
noise. A noise clip shorter than the training clip is looped by AddBackgroundNoise (audiomentations
repeats it until it covers the clip); AddShortNoises places clips as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from astapp.core.config import SAMPLE_RATE, AugmentConfig, TrainConfig
from astapp.core.errors import AstappError, AudioDecodeError
from astapp.core.fsutil import atomic_dir
from astapp.data.audio import AUDIO_EXTENSIONS, decode
from astapp.data.ingest import is_noise_folder, rel_path, resolve_source, walk
from astapp.features.augment_settings import AugmentError, resolve

NOISE_TRANSFORMS = ("AddBackgroundNoise", "AddShortNoises")
MANIFEST = "noise.json"
RUN_FOLDER = "noise"  # inside a run folder
MAX_NOISE_SECONDS = 600.0  # each noise clip is read up to this long
MAX_NOISE_FILES = 2000
NEEDS_NOISE = ("{name} needs noise clips: put them in a _background_noise_ folder of the dataset, pass "
               "--noise DIR_OR_ZIP, or upload them in the Augment tab.")


@dataclass
class NoiseBank:
    """A prepared noise folder: file names inside it, their total seconds, the set's digest."""

    folder: Path
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    digest: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)

    def paths(self) -> list[Path]:
        return [self.folder / f for f in self.files]

    def summary(self) -> str:
        skipped = f"; skipped {len(self.skipped)} undecodable file(s)" if self.skipped else ""
        return f"{len(self.files)} noise clip(s), {self.seconds:.1f} s (digest {self.digest}){skipped}"


def uses_noise(cfg: AugmentConfig) -> list[str]:
    """The enabled transforms that need noise clips."""
    return [e["name"] for e in resolve(cfg) if e["enabled"] and e["name"] in NOISE_TRANSFORMS]


def find_noise(source: str | Path, workspace: str | Path) -> list[Path]:
    """The noise clips a folder, zip or single file holds: its noise folder if it has one, else every
    audio file in it (zips are extracted safely under `workspace`)."""
    path = Path(str(source).strip()).expanduser()
    if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
        return [path]
    root = resolve_source(path, workspace)
    noise_dirs = [d for d in sorted(root.rglob("*")) if d.is_dir() and is_noise_folder(d.name)
                  and len(d.relative_to(root).parts) <= 3]
    base = noise_dirs[0] if noise_dirs else root
    files = [f for f in walk(base) if f.suffix.lower() in AUDIO_EXTENSIONS]
    if len(files) > MAX_NOISE_FILES:
        raise AstappError(f"{path.name!r} holds {len(files)} noise clips; use at most {MAX_NOISE_FILES}.")
    return files


def load_bank(folder: str | Path) -> NoiseBank | None:
    """The prepared bank in `folder` (its noise.json), or None when it is not one."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return NoiseBank(folder, [f["name"] for f in meta["files"]], float(meta["seconds"]), str(meta["digest"]),
                         list(meta.get("skipped", [])))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare(files: Iterable[Path], out: str | Path, root: Path | None = None) -> NoiseBank:
    """Decode `files` to 16 kHz mono WAV named by content into `out` (replaced atomically, with
    noise.json); undecodable files are skipped and listed, duplicates kept once."""
    import soundfile as sf

    out = Path(out)
    clips: dict[str, tuple[np.ndarray, str]] = {}
    skipped: list[dict[str, str]] = []
    for path in sorted(Path(f) for f in files):
        name = rel_path(path, root) if root else path.name
        try:
            wav, _ = decode(path, SAMPLE_RATE, max_seconds=MAX_NOISE_SECONDS)
        except (AudioDecodeError, OSError, MemoryError) as exc:
            skipped.append({"path": name, "reason": str(exc) or type(exc).__name__})
            continue
        if wav.size == 0 or float(np.abs(wav).max()) < 1e-6:
            skipped.append({"path": name, "reason": "silent (nothing to mix in)"})
            continue
        digest = hashlib.blake2b(wav.tobytes(), digest_size=10).hexdigest()
        clips.setdefault(digest, (wav, name))
    digests = sorted(clips)
    set_digest = hashlib.blake2b("\n".join(digests).encode(), digest_size=8).hexdigest() if digests else ""
    rows = [{"name": f"{d}.wav", "source": clips[d][1], "seconds": round(clips[d][0].size / SAMPLE_RATE, 4)}
            for d in digests]
    bank = NoiseBank(out, [r["name"] for r in rows], round(sum(r["seconds"] for r in rows), 3), set_digest, skipped)
    existing = load_bank(out)
    if existing is not None and existing.digest == set_digest and all(p.is_file() for p in existing.paths()):
        return existing
    with atomic_dir(out) as tmp:
        for d in digests:
            sf.write(str(tmp / f"{d}.wav"), clips[d][0], SAMPLE_RATE, subtype="FLOAT")
        meta = {"digest": set_digest, "seconds": bank.seconds, "files": rows, "skipped": skipped}
        (tmp / MANIFEST).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return bank


def noise_paths(cfg: AugmentConfig, names: list[str]) -> list[str]:
    """The clip files the noise transforms `names` mix in (`cfg.noise`: a prepared bank or a folder)."""
    folder = Path(cfg.noise) if cfg.noise else None
    if folder is None or not folder.is_dir():
        raise AugmentError(NEEDS_NOISE.format(name=names[0]))
    bank = load_bank(folder)
    paths = bank.paths() if bank is not None else [f for f in walk(folder) if f.suffix.lower() in AUDIO_EXTENSIONS]
    if not paths:
        raise AugmentError(NEEDS_NOISE.format(name=names[0]))
    return [str(p) for p in paths]


def noise_for_run(cfg: TrainConfig, dataset_noise: list[Path], run: Path, workspace: Path, write: bool = True,
                  say: Callable[[str], None] | None = None) -> TrainConfig:
    """The config with its noise copied into `<run>/noise/` (when a noise transform is on): from
    `augment.noise` if given, else the dataset's noise folder. Raises AugmentError when there is none,
    or when the config names a digest the clips no longer have."""
    aug = cfg.augment
    names = uses_noise(aug)
    if not names:
        return cfg
    out = run / RUN_FOLDER
    if write:
        same = bool(aug.noise) and Path(aug.noise).resolve() == out.resolve()
        bank = load_bank(out) if same else None
        if bank is None:
            files = find_noise(aug.noise, workspace) if aug.noise else list(dataset_noise)
            if not files:
                raise AugmentError(NEEDS_NOISE.format(name=names[0]))
            bank = prepare(files, out)
    else:
        bank = load_bank(out)
    if bank is None or not bank.files:
        raise AugmentError(NEEDS_NOISE.format(name=names[0]) + " None of the given noise clips could be decoded.")
    if aug.noise_digest and aug.noise_digest != bank.digest:
        raise AugmentError(f"The noise clips differ from the ones this config was trained with (digest "
                           f"{bank.digest}, expected {aug.noise_digest}); point --noise at the original clips or "
                           "clear noise_digest in the config to accept the new ones.")
    if say is not None:
        say(f"Background noise for {', '.join(names)}: {bank.summary()}.")
    return dataclasses.replace(cfg, augment=dataclasses.replace(aug, noise=str(out), noise_digest=bank.digest))
