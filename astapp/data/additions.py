"""Clips waiting for the next dataset version: what the user marked while reviewing detections (confirmed,
relabelled, false alarm, missed sound) or while listening live ("that was wrong").

Each addition is cut from its source at once and kept as a 16 kHz WAV under `<workspace>/pending/`, so a
deleted recording or a restarted server loses nothing; `pending.json` lists them with where they came
from (recording and time). A false alarm carries no label of its own: it becomes the background class
(or the class the user names) when the version is made, so one choice covers every false alarm.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import AccessError, AudioDecodeError, DatasetError
from astapp.core.fsutil import atomic_write_bytes, atomic_write_text
from astapp.core.runfolder import read_json

PENDING_DIR, PENDING_FILE = "pending", "pending.json"
BACKGROUND = "background"  # the default class of false alarms
KINDS = ("confirmed", "relabelled", "false_alarm", "missed")
MIN_CLIP_SECONDS = 0.5  # a shorter event is widened around its centre (the model needs some context)
MAX_CLIP_SECONDS = 30.0  # a longer one is cut to its first 30 s (a merged hour-long event is no clip)
MAX_PENDING = 5000


@dataclass
class Addition:
    """One clip waiting for the next version."""

    id: str
    kind: str  # confirmed | relabelled | false_alarm | missed
    label: str  # the class it will be; "" for a false alarm (the background class, chosen at the version)
    source: str  # the recording's name, or "listen live"
    start: float  # seconds into the source
    end: float
    file: str  # the WAV's name under pending/clips/
    origin: str = ""  # who added it: "review:<recording id>:<event index>" or "listen"

    def target(self, background: str) -> str:
        return self.label if self.kind != "false_alarm" else background

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Addition:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def clip_span(start: float, end: float, duration: float | None = None) -> tuple[float, float]:
    """The part of a source a marked span becomes: at least MIN_CLIP_SECONDS (widened around its centre,
    kept inside the source), at most MAX_CLIP_SECONDS; DatasetError for an empty or reversed span."""
    start, end = float(start), float(end)
    if not (np.isfinite(start) and np.isfinite(end)) or end <= start or start < 0:
        raise DatasetError(f"The span {start:g}–{end:g} s is empty or reversed: the end must come after the start.")
    if duration is not None and start >= duration:
        raise DatasetError(f"The span starts at {start:g} s, after the recording ends ({duration:.2f} s).")
    if end - start < MIN_CLIP_SECONDS:
        mid = (start + end) / 2
        start, end = max(0.0, mid - MIN_CLIP_SECONDS / 2), max(0.0, mid - MIN_CLIP_SECONDS / 2) + MIN_CLIP_SECONDS
        if duration is not None and end > duration:
            start, end = max(0.0, duration - MIN_CLIP_SECONDS), duration
    end = min(end, start + MAX_CLIP_SECONDS)
    if duration is not None:
        end = min(end, duration)
    return round(start, 3), round(end, 3)


def read_span(path: str | Path, start: float, end: float) -> np.ndarray:
    """`start`..`end` seconds of an audio file as 16 kHz mono float32, reading only that part (a recording
    may be hours long)."""
    import soundfile as sf
    import soxr

    try:
        with sf.SoundFile(str(path)) as f:
            rate = int(f.samplerate)
            first = max(0, int(round(start * rate)))
            f.seek(min(first, max(0, f.frames)))
            data = f.read(frames=max(1, int(round((end - start) * rate))), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - one sentence for the user
        raise AudioDecodeError(f"{Path(path).name} could not be read at {start:.2f} s ({exc}).") from None
    if data.size == 0:
        raise AudioDecodeError(f"{Path(path).name} has no audio at {start:.2f} s.")
    wav = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        wav = soxr.resample(wav, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(np.nan_to_num(wav), dtype=np.float32)


def wav_bytes(wav: np.ndarray) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav, dtype=np.float32), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def clip_name(a: Addition) -> str:
    """The file name a clip gets in a version: where it came from, when, and its id (never two alike)."""
    stem = re.sub(r"[^\w.-]+", "_", Path(a.source).stem).strip("._")[:40] or "clip"
    return f"{stem}-{a.start:.2f}s-{a.end:.2f}s-{a.id[:8]}.wav"


class PendingAdditions:
    """The workspace's clips waiting for the next version. Not locked: the service holds a lock per owner."""

    def __init__(self, workspace: Path):
        self.folder = Path(workspace) / PENDING_DIR

    def list(self) -> list[Addition]:
        rows = read_json(self.folder / PENDING_FILE).get("additions") or []
        return [Addition.from_dict(r) for r in rows if isinstance(r, dict) and (self.folder / "clips" /
                                                                                 str(r.get("file", ""))).is_file()]

    def path(self, a: Addition) -> Path:
        return self.folder / "clips" / a.file

    def add(self, wav: np.ndarray, kind: str, label: str, source: str, start: float, end: float,
            origin: str = "") -> Addition:
        """Keep `wav` (16 kHz mono) as a pending clip of `kind`."""
        if kind not in KINDS:
            raise DatasetError(f"Unknown kind of addition {kind!r}: one of {', '.join(KINDS)}.")
        label = str(label or "").strip()
        if kind != "false_alarm" and not label:
            raise DatasetError("Name the class of the clip (a confirmed, relabelled or missed sound needs one).")
        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        if wav.size < SAMPLE_RATE // 100 or not np.isfinite(wav).all():
            raise AudioDecodeError("The clip to keep is empty or not audio; nothing was added.")
        current = self.list()
        if len(current) >= MAX_PENDING:
            raise DatasetError(f"{MAX_PENDING} clips are already waiting: add them to the dataset first.")
        a = Addition(uuid.uuid4().hex[:12], kind, label, str(source), round(float(start), 3), round(float(end), 3),
                     "", origin)
        a.file = f"{a.id}.wav"
        atomic_write_bytes(self.path(a), wav_bytes(wav))
        self._save([*current, a])
        return a

    def add_span(self, recording: Path, start: float, end: float, duration: float | None, kind: str, label: str,
                 source: str, origin: str = "") -> Addition:
        """Cut `start`..`end` (see `clip_span`) from a recording and keep it."""
        a, b = clip_span(start, end, duration)
        return self.add(read_span(recording, a, b), kind, label, source, a, b, origin)

    def remove(self, ids: set[str]) -> None:
        """Drop additions (their clips too): undone decisions, or ones a version has taken."""
        keep = []
        for a in self.list():
            if a.id in ids:
                self.path(a).unlink(missing_ok=True)
            else:
                keep.append(a)
        self._save(keep)

    def remove_origin(self, origin: str) -> None:
        self.remove({a.id for a in self.list() if a.origin == origin})

    def get(self, addition_id: str) -> Addition:
        for a in self.list():
            if a.id == addition_id:
                return a
        raise AccessError(f"There is no pending clip {addition_id!r}; pick one from the list.")

    def _save(self, additions: list[Addition]) -> None:
        atomic_write_text(self.folder / PENDING_FILE, json.dumps({"additions": [asdict(a) for a in additions]},
                                                                 ensure_ascii=False))
