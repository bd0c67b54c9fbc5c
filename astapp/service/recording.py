"""Recording in the browser, for the app: the session's classes of recorded clips and their dataset.

The clips live in the session workspace (`recordings/<class>/`), so they survive a reload. "Use these
recordings" writes them as a folder-per-class zip and hands it to `upload`: the same extraction,
validation report and training as any uploaded zip, with no second code path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.paths import inside
from astapp.data.recordings import RecordingError, RecordingStore
from astapp.jobs.sessions import Session
from astapp.service.datasets import Datasets, DatasetView, play_audio

REC_DIR, ZIP_NAME = "recordings", "recordings.zip"


class Recording:
    """The session's recorded classes and clips, and making them the session's dataset."""

    def __init__(self, datasets: Datasets):
        self.datasets = datasets  # "use these recordings" is an upload of their zip

    def recordings(self, session: Session) -> RecordingStore:
        return RecordingStore(session.workspace / REC_DIR)

    def table(self, session: Session) -> list[list[Any]]:
        """[class, clips, seconds] per recorded class."""
        return [[c.name, len(c.clips), round(c.seconds, 1)] for c in self.recordings(session).classes()]

    def clips(self, session: Session, name: str | None) -> list[str]:
        """The clip file names of one class, newest last."""
        for c in self.recordings(session).classes():
            if c.name == name:
                return [p.name for p in c.clips]
        return []

    def clip(self, session: Session, name: str, clip: str) -> Path:
        """A recorded clip on disk (refuses anything outside the recordings folder)."""
        path = inside(session.workspace / REC_DIR, str(name), Path(str(clip)).name)
        if not path.is_file():
            raise RecordingError(f"There is no clip {clip!r} in {name!r}.")
        return path

    def add_class(self, session: Session, name: str) -> str:
        clean = self.recordings(session).add_class(name)
        return f"Added the class {clean!r}: now record a few clips of it."

    def rename_class(self, session: Session, old: str, new: str) -> str:
        clean = self.recordings(session).rename_class(old, new)
        return f"Renamed {old!r} to {clean!r}."

    def delete_class(self, session: Session, name: str) -> str:
        self.recordings(session).delete_class(name)
        return f"Deleted the class {name!r} and its clips."

    def delete_clip(self, session: Session, name: str, clip: str) -> str:
        self.recordings(session).delete_clip(name, clip)
        return f"Deleted {Path(str(clip)).name} from {name!r}."

    def take(self, session: Session, name: str, audio: tuple[int, np.ndarray] | None,
                    clip_seconds: float, threshold_db: float) -> str:
        """Store a microphone take in class `name`, cut into clips of `clip_seconds` (0 = one clip)."""
        if audio is None:
            raise RecordingError("Nothing was recorded: allow the microphone when the browser asks (or upload "
                                 "files to the class instead).")
        sr, samples = audio
        result = self.recordings(session).add_take(name, samples, int(sr), float(clip_seconds or 0),
                                                   float(threshold_db))
        return result.message(name, float(threshold_db))

    def add_files(self, session: Session, name: str, files: list[str | Path]) -> str:
        """Add uploaded audio files to class `name` (as they are)."""
        stored, problems = self.recordings(session).add_files(name, [f for f in files if f])
        if not stored and not problems:
            raise RecordingError("Choose audio files to add to the class.")
        skipped = f" Skipped {len(problems)}: {'; '.join(problems[:3])}." if problems else ""
        return f"Added {len(stored)} file(s) to {name!r}.{skipped}"

    def to_zip(self, session: Session) -> Path:
        """The recordings as a folder-per-class zip in the workspace (to download or to use)."""
        return self.recordings(session).to_zip(session.workspace / "exports" / ZIP_NAME)

    def use(self, session: Session) -> DatasetView:
        """Make the recordings the session's dataset, through the same path as an uploaded zip."""
        view = self.datasets.upload(session, self.to_zip(session))
        view.name = "Your recordings"
        return self.datasets.choose(session, view)

    def audio(self, session: Session, name: str, clip: str) -> tuple[int, np.ndarray] | None:
        """(16000, samples) of a recorded clip for a player."""
        return play_audio(self.clip(session, name, clip))
