"""Errors that carry a plain-English message meant for the user (no traceback shown)."""

from __future__ import annotations


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
