"""Which windows a pool holds: the model's own input length, a chosen hop, and the files they come from.

Why the model's own length: a window is what the backbone sees in one pass, so a search hit or a label is
exactly one input; a query longer than that is cut to it (and said), a shorter recording is one padded window.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import AstappError
from astapp.predict.sources import expand_sources


class PoolError(AstappError):
    """A pool cannot be built, opened or used as asked (empty, unreadable, another model, bad labels)."""


@dataclass(frozen=True)
class Window:
    """One window of a source file: seconds from its start."""

    file: str  # the name shown (relative to the folder or zip it came from)
    path: str  # where the audio is on disk
    start: float
    end: float

    @property
    def key(self) -> str:
        """A stable name for labels: survives a rebuild of the pool with the same windows."""
        return f"{self.file}|{self.start:.3f}"


def window_starts(num_samples: int, win: int, hop: int) -> list[int]:
    """Start samples: one window for a file that fits, else every hop, the last one ending at the file's end."""
    if num_samples <= win:
        return [0]
    starts = list(range(0, num_samples - win, hop))
    return [*starts, num_samples - win]


def windows_of(name: str, path: Path, num_samples: int, win: int, hop: int) -> list[Window]:
    return [Window(name, str(path), s / SAMPLE_RATE, min(s + win, num_samples) / SAMPLE_RATE)
            for s in window_starts(num_samples, win, hop)]


def check_hop(hop: float, window_seconds: float) -> float:
    """The hop in seconds, checked: positive and at most a window (gaps would leave audio unsearchable)."""
    if not hop > 0 or hop > window_seconds + 1e-9:
        raise PoolError(f"The hop must be more than 0 s and at most the window ({window_seconds:.2f} s), not "
                        f"{hop}; a smaller hop finds more but makes the pool larger.")
    return float(hop)


def list_sources(sources: str | Path | list[str | Path], extract_to: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(audio files to cut as (name, path), names that are missing); zips are extracted under `extract_to`."""
    found, missing = [], []
    for name, path in expand_sources(sources if isinstance(sources, list) else [sources], extract_to):
        if path is not None and name == str(path):  # a file given on its own: its name, not the whole path
            name = path.name
        (found.append((name, path)) if path is not None else missing.append(name))
    return found, missing


FIELDS = ("file", "path", "start", "end")


def table_text(windows: list[Window]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for x in windows:
        w.writerow([x.file, x.path, f"{x.start:.3f}", f"{x.end:.3f}"])
    return buf.getvalue()


def read_table(path: Path) -> list[Window]:
    with open(path, encoding="utf-8", newline="") as f:
        return [Window(r["file"], r["path"], float(r["start"]), float(r["end"])) for r in csv.DictReader(f)]
