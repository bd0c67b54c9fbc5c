"""The output folder of a per-file job: which model made it, and one record per finished file.

One small JSON file per input file (`files/<name>-<hash>.json`, written atomically by the one process that
drives the job), so finished work survives anything: a rerun skips every file with a result, a crash or a
killed worker loses only what was in flight, and a file is never half-written. `job.json` says which model
(content hash, backend) made the records; a rerun with another model is refused rather than mixing outputs
that are not comparable. Files that failed are recorded with their sentence and retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from astapp.core.errors import AstappError
from astapp.core.fsutil import atomic_write_text

JOB_FILE = "job.json"
FILES_DIR = "files"
MERGED = "results.jsonl"


class ModelMismatchError(AstappError):
    """The output folder holds results of another model (or backend)."""


def record_name(path: str | Path) -> str:
    """A file-system-safe, collision-free record name for an input path (its stem, then a hash of the path)."""
    text = str(path)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text).stem)[:60] or "file"
    return f"{stem}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]}.json"


class RecordFolder:
    """Per-file records under `output`; the driver of a job is their one writer."""

    def __init__(self, output: str | Path):
        self.root = Path(output)
        self.files = self.root / FILES_DIR

    def claim(self, identity: dict[str, Any]) -> None:
        """Write `job.json` for a new folder, or check that an existing one was made by the same model."""
        path = self.root / JOB_FILE
        if path.is_file():
            made = json.loads(path.read_text(encoding="utf-8"))
            if made.get("model") != identity.get("model"):
                raise ModelMismatchError(
                    f"{self.root} holds results made by {_describe(made.get('model'))}, not by "
                    f"{_describe(identity.get('model'))}; use another --output folder, or the same model "
                    "and backend to finish this one.")
            return
        atomic_write_text(path, json.dumps(identity, indent=2, sort_keys=True))

    def path_of(self, file: str | Path) -> Path:
        return self.files / record_name(file)

    def read(self, file: str | Path) -> dict[str, Any] | None:
        path = self.path_of(file)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # none yet (an interrupted write leaves only a hidden temporary file)

    def finished(self, file: str | Path) -> bool:
        rec = self.read(file)
        return rec is not None and rec.get("error") is None

    def pending(self, files: list[str]) -> list[str]:
        """The files without a result yet (failed ones are tried again)."""
        return [f for f in files if not self.finished(f)]

    def save(self, file: str, result: dict[str, Any]) -> None:
        atomic_write_text(self.path_of(file), json.dumps({"file": file, "error": None, "result": result},
                                                         sort_keys=True))

    def fail(self, file: str, sentence: str) -> None:
        atomic_write_text(self.path_of(file), json.dumps({"file": file, "error": sentence, "result": None},
                                                         sort_keys=True))

    def merge(self, files: list[str]) -> Path:
        """`results.jsonl`: every given file's record, in sorted path order (the same whoever computed them)."""
        lines = [json.dumps(rec, sort_keys=True) for f in sorted(set(files)) if (rec := self.read(f)) is not None]
        out = self.root / MERGED
        atomic_write_text(out, "".join(line + "\n" for line in lines))
        return out


def _describe(model: Any) -> str:
    if not isinstance(model, dict):
        return "an unknown model"
    return f"model {model.get('name', '?')} ({model.get('backend', '?')}, content {str(model.get('sha256', '?'))[:12]})"
