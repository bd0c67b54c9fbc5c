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

REC_DIR, ZIP_NAME = "recordings", "recordings.zip"


class RecordingMixin:
    """Part of `Service`: needs the datasets mixin's `upload` and `_choose`."""

    def recordings(self, session: Session) -> RecordingStore:
        return RecordingStore(session.workspace / REC_DIR)

    def recording_table(self, session: Session) -> list[list[Any]]:
        """[class, clips, seconds] per recorded class."""
        return [[c.name, len(c.clips), round(c.seconds, 1)] for c in self.recordings(session).classes()]

    def recording_clips(self, session: Session, name: str | None) -> list[str]:
        """The clip file names of one class, newest last."""
        for c in self.recordings(session).classes():
            if c.name == name:
                return [p.name for p in c.clips]
        return []

    def recording_clip(self, session: Session, name: str, clip: str) -> Path:
        """A recorded clip on disk (refuses anything outside the recordings folder)."""
        path = inside(session.workspace / REC_DIR, str(name), Path(str(clip)).name)
        if not path.is_file():
            raise RecordingError(f"There is no clip {clip!r} in {name!r}.")
        return path

    def record_add_class(self, session: Session, name: str) -> str:
        clean = self.recordings(session).add_class(name)
        return f"Added the class {clean!r}: now record a few clips of it."

    def record_rename_class(self, session: Session, old: str, new: str) -> str:
        clean = self.recordings(session).rename_class(old, new)
        return f"Renamed {old!r} to {clean!r}."

    def record_delete_class(self, session: Session, name: str) -> str:
        self.recordings(session).delete_class(name)
        return f"Deleted the class {name!r} and its clips."

    def record_delete_clip(self, session: Session, name: str, clip: str) -> str:
        self.recordings(session).delete_clip(name, clip)
        return f"Deleted {Path(str(clip)).name} from {name!r}."

    def record_take(self, session: Session, name: str, audio: tuple[int, np.ndarray] | None,
                    clip_seconds: float, threshold_db: float) -> str:
        """Store a microphone take in class `name`, cut into clips of `clip_seconds` (0 = one clip)."""
        if audio is None:
            raise RecordingError("Nothing was recorded: allow the microphone when the browser asks (or upload "
                                 "files to the class instead).")
        sr, samples = audio
        result = self.recordings(session).add_take(name, samples, int(sr), float(clip_seconds or 0),
                                                   float(threshold_db))
        return result.message(name, float(threshold_db))

    def record_files(self, session: Session, name: str, files: list[str | Path]) -> str:
        """Add uploaded audio files to class `name` (as they are)."""
        stored, problems = self.recordings(session).add_files(name, [f for f in files if f])
        if not stored and not problems:
            raise RecordingError("Choose audio files to add to the class.")
        skipped = f" Skipped {len(problems)}: {'; '.join(problems[:3])}." if problems else ""
        return f"Added {len(stored)} file(s) to {name!r}.{skipped}"

    def recordings_zip(self, session: Session) -> Path:
        """The recordings as a folder-per-class zip in the workspace (to download or to use)."""
        return self.recordings(session).to_zip(session.workspace / "exports" / ZIP_NAME)

    def use_recordings(self, session: Session) -> Any:
        """Make the recordings the session's dataset, through the same path as an uploaded zip."""
        view = self.upload(session, self.recordings_zip(session))  # type: ignore[attr-defined]
        view.name = "Your recordings"
        return self._choose(session, view)  # type: ignore[attr-defined]

    def recording_audio(self, session: Session, name: str, clip: str) -> tuple[int, np.ndarray] | None:
        """(16000, samples) of a recorded clip for a player."""
        from astapp.service.datasets import play_audio

        return play_audio(self.recording_clip(session, name, clip))
