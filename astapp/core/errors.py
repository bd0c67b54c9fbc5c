"""Errors meant for the user, and the one place that turns any exception into a sentence with its fix.

`explain(exc, folder)` is what the CLI prints, what a failed run records and what the app shows: an
`AstappError` is already a sentence; out of memory, a full disk, an unreachable Hub and undecodable
audio get their sentence here (`user_error`); anything else is named as unexpected, never a traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path


class AstappError(Exception):
    """Base class: `str(err)` is a complete sentence a user can act on."""


class UploadError(AstappError):
    """The uploaded file or archive is unusable or unsafe (bomb, traversal, not a zip, ...)."""


class DatasetError(AstappError):
    """The dataset cannot be trained on (too few classes or clips, nothing decodable, ...)."""


class AudioDecodeError(AstappError):
    """One file could not be decoded; the message is the per-file reason."""


class ModelLoadError(AstappError):
    """A checkpoint could not be loaded (Hub unreachable, bad folder, not an AST model)."""


class TrainingError(AstappError):
    """Training failed in a way we can explain (out of memory, bad settings)."""


class AccessError(AstappError):
    """A run, job or file is unknown, not yours, or outside your folder (bad id, path traversal)."""


class QueueFullError(AstappError):
    """The training queue, or this user's share of it, is full; try again later."""


class ResourceError(TrainingError):
    """The machine ran out of something the work needs: memory or disk space (mostly met while training)."""


OOM_HINT = ("Out of memory: try a smaller batch size, a shorter input length, or the frozen / last-N mode, "
            "which need far less memory.")
HUB_UNREACHABLE = ("The Hugging Face Hub cannot be reached from this machine. Use a local checkpoint folder "
                   "(config.json + model.safetensors, downloaded elsewhere) or a model trained from scratch "
                   "(scratch:tiny, scratch:small, scratch:base), or try again when the machine is online.")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_HUB_ERRORS = {"OfflineModeIsEnabled", "LocalEntryNotFoundError", "ConnectError", "ConnectTimeout",
               "ConnectionError", "gaierror", "NameResolutionError", "MaxRetryError"}
_DECODE_ERRORS = {"LibsndfileError", "SoundFileRuntimeError"}


def disk_full(folder: str | Path | None) -> str:
    """The sentence for a full disk (or exhausted quota), naming where the write failed."""
    where = f" in {folder}" if folder else ""
    return (f"The disk is full: astapp could not write{where}. Free some space there (delete runs or "
            "uploads you no longer need) or point ASTAPP_DATA_DIR at a larger disk, then try again; "
            "a stopped or interrupted run can be resumed from its last checkpoint.")


def is_oom(exc: BaseException) -> bool:
    """Out of memory on the CPU or the GPU (torch's error is recognised by name: no torch import here)."""
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()))


def _folder_of(exc: OSError, folder: str | Path | None) -> str | Path | None:
    if exc.filename:
        path = Path(str(exc.filename))
        return path if path.is_dir() else path.parent
    return folder


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and the ones it was raised from (a library often wraps the real cause)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def user_error(exc: BaseException, folder: str | Path | None = None) -> AstappError | None:
    """`exc` as an `AstappError` with its plain sentence, or None when it is not one we can explain.

    `folder` names where the work was writing, for a full disk whose error carries no file name.
    """
    for e in _chain(exc):
        if isinstance(e, AstappError):
            return e
        if is_oom(e):
            return ResourceError(OOM_HINT)
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return ResourceError(disk_full(_folder_of(e, folder)))
        name = type(e).__name__
        if name in _HUB_ERRORS:
            return ModelLoadError(HUB_UNREACHABLE)
        if name in _DECODE_ERRORS:
            return AudioDecodeError(f"An audio file could not be decoded ({_first_line(e)}); convert it to "
                                    "WAV or FLAC and try again.")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


def explain(exc: BaseException, folder: str | Path | None = None) -> str:
    """A plain-English sentence for any exception: its own, a known one's, or an unexpected-error note."""
    known = user_error(exc, folder)
    if known is not None:
        return str(known)
    detail = _first_line(exc)
    return (f"Failed with an unexpected error ({type(exc).__name__}{': ' + detail if detail else ''}). "
            "The details are in the log; please report it if it happens again.")
