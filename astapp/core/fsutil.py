"""Crash-safe file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def restore_dir(path: Path) -> bool:
    """Undo a crash between `atomic_dir`'s two renames: put the previous complete folder back.

    Replacing an existing folder takes two renames (old aside, new in); a crash between them leaves
    only `.<name>.old`. Returns True when it was restored.
    """
    path = Path(path)
    old = _old(path)
    if path.exists() or not old.is_dir():
        return False
    os.replace(old, path)
    return True


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path` in one rename.

    Used for model exports and checkpoints, so a crash mid-save never leaves a half-written
    folder where the run picker or `from_pretrained` would find it (`restore_dir` repairs the one
    window where an existing folder was moved aside but the new one not yet moved in).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    restore_dir(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = _old(path)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
