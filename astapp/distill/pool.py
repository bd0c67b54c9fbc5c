"""Unlabeled audio for distillation: a folder or zip of recordings cut into windows of the model's length.

Unlabeled audio is where distillation shines: the teacher labels it for free, so the student sees far more
sound than the labelled clips. Recordings can be hours long, so the windows go to one float32 file on disk
(read back as a memmap) instead of memory; a file that does not decode is skipped and listed, never fatal.
Windows of digital silence teach nothing and are dropped.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AstappError, DatasetError
from astapp.data.audio import load_audio
from astapp.features.fbank_numpy import window_samples
from astapp.predict.sources import expand_sources

MAX_WINDOWS = 20_000  # at most this many windows are kept (in order); the summary says when more were found
SILENT_PEAK = 1e-4  # a window whose peak stays under this is digital silence


@dataclass
class Pool:
    """The windows (rows x samples, memmap) and what happened to each file."""

    windows: np.ndarray
    files: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{path, error}]
    silent: int = 0
    truncated: bool = False

    def summary(self) -> dict[str, Any]:
        return {"windows": int(len(self.windows)), "files": self.files, "skipped": self.skipped,
                "silent_windows": self.silent, "truncated": self.truncated}


def cut(wav: np.ndarray, win: int) -> list[np.ndarray]:
    """Non-overlapping windows of `win` samples; a last part of at least half a window is zero-padded."""
    out = [wav[s:s + win] for s in range(0, len(wav) - win + 1, win)]
    rest = len(wav) % win if len(wav) >= win else len(wav)
    if rest >= win // 2:
        out.append(np.pad(wav[len(wav) - rest:], (0, win - rest)))
    return out


def build_pool(source: str | Path | list[Path], max_length: int, folder: Path,
               max_windows: int = MAX_WINDOWS) -> Pool:
    """Decode every audio file of `source` (folder, zip, one file, or a list of files such as the dataset's
    background-noise clips) into windows of `max_length` frames, written to `folder/windows.f32`.
    DatasetError when the source is missing or nothing in it decodes."""
    if isinstance(source, list):
        src, listed = Path(str(source[0]) if source else "background noise"), [(str(f), Path(f)) for f in source]
    else:
        src, listed = Path(str(source)).expanduser(), None
        if not src.exists():
            raise DatasetError(f"The unlabeled audio {str(source)!r} does not exist: give a folder or a zip of "
                               "recordings (or leave it out to distil on the training clips only).")
    win = window_samples(max_length)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "windows.f32"
    pool = Pool(np.zeros((0, win), np.float32))
    count = 0
    with tempfile.TemporaryDirectory(prefix="astapp-pool-") as tmp, open(path, "wb") as out:
        for name, file in listed if listed is not None else expand_sources(src, Path(tmp)):
            if count >= max_windows:
                pool.truncated = True
                break
            try:
                wav = load_audio(file) if file is not None else None
            except AstappError as exc:
                pool.skipped.append({"path": name, "error": str(exc)})
                continue
            if wav is None:
                pool.skipped.append({"path": name, "error": "file not found"})
                continue
            pool.files += 1
            for w in cut(wav, win):
                if float(np.abs(w).max(initial=0.0)) < SILENT_PEAK:
                    pool.silent += 1
                elif count < max_windows:
                    out.write(np.ascontiguousarray(w, dtype=np.float32).tobytes())
                    count += 1
                else:
                    pool.truncated = True
    if count == 0:
        listed = "; ".join(f"{s['path']}: {s['error']}" for s in pool.skipped[:5])
        raise DatasetError(f"The unlabeled audio {src.name} has no audio that decodes and is not silence"
                           + (f" ({listed})" if listed else "") + ": give WAV/FLAC/MP3/OGG recordings.")
    pool.windows = np.memmap(path, dtype=np.float32, mode="r", shape=(count, win))
    return pool
