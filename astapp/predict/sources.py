"""Which files a prediction covers: files as given, folders and zips expanded to their audio files.

Torch-free, so the torch and ONNX predictors (and `predict --onnx` without torch) share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from astapp.core.config import IngestLimits
from astapp.data.audio import audio_files
from astapp.data.ingest import extract_zip


def expand_sources(sources: str | Path | Iterable[str | Path], tmp: Path) -> list[tuple[str, Path | None]]:
    """(display name, path or None when missing) for every file to predict: files as given, folders and
    zips (extracted safely under `tmp`) expanded to their audio files. Torch-free, so the ONNX path shares it."""
    items: list[tuple[str, Path | None]] = []
    for n, src in enumerate([sources] if isinstance(sources, (str, Path)) else list(sources)):
        path = Path(src)
        if path.is_file() and path.suffix.lower() == ".zip":
            root = Path(extract_zip(path, Path(tmp) / f"zip{n}", IngestLimits()))
            items += [(f"{path.name}/{p.relative_to(root).as_posix()}", p) for p in audio_files(root)]
        elif path.is_dir():
            items += [(p.relative_to(path).as_posix(), p) for p in audio_files(path)]
        else:
            items.append((str(src), path if path.is_file() else None))
    return items
