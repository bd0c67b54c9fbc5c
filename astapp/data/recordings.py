"""Sounds recorded in the browser: classes of clips kept as folders, takes cut into clips, silence dropped.

A `RecordingStore` is one folder of class folders (`<class>/<class>_0001.wav`, 16 kHz mono PCM16),
so what it holds is exactly a folder-per-class dataset: `to_zip` writes it as the zip the upload
path takes (the same extraction, report and training as any upload), and a reload finds it again.
A take is cut into clips of a chosen length; a clip whose loudest 50 ms stays below the level
threshold counts as silence and is dropped. Limits are checked before anything is stored.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import AudioDecodeError, UploadError
from astapp.data.audio import AUDIO_EXTENSIONS, decode

MAX_TAKE_SECONDS = 300.0  # one recording; a longer one is refused before it is stored
MAX_CLASSES = 50
MAX_CLIPS_PER_CLASS = 1000
MAX_TOTAL_SECONDS = 3600.0
MAX_NAME = 40
DEFAULT_CLIP_SECONDS = 1.0  # like Teachable Machine
DEFAULT_THRESHOLD_DB = -45.0  # loudest 50 ms below this (dBFS) = silence
FRAME_SECONDS = 0.05
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_NAME = re.compile(r"[\w][\w .()'+-]*")


class RecordingError(UploadError):
    """A recording, class name or clip the store refuses (the message says what to do)."""


@dataclass
class ClassClips:
    name: str
    clips: list[Path] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class TakeResult:
    """What a take became: clips stored, silent stretches dropped, and the take's loudness."""

    kept: list[Path]
    dropped: int
    take_seconds: float
    peak_db: float

    def message(self, name: str, threshold_db: float) -> str:
        if not self.kept:
            return (f"Nothing added to {name!r}: the {self.take_seconds:.1f} s take is silence (its loudest "
                    f"moment is {self.peak_db:.0f} dBFS, below the {threshold_db:.0f} dBFS threshold). Check the "
                    "microphone, or lower the threshold.")
        dropped = f"; {self.dropped} silent stretch(es) dropped" if self.dropped else ""
        return (f"Added {len(self.kept)} clip(s) to {name!r} from a {self.take_seconds:.1f} s take{dropped} "
                f"(loudest {self.peak_db:.0f} dBFS, silence threshold {threshold_db:.0f} dBFS).")


def to_mono16k(samples: np.ndarray, sr: int) -> np.ndarray:
    """Any PCM array (ints or floats, (n,) or (n, channels)) as 16 kHz mono float32 in [-1, 1]."""
    import soxr

    x = np.asarray(samples)
    if x.dtype.kind in "iu":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)  # (frames, channels), as browsers and soundfile give it
    x = np.nan_to_num(x.reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    if sr != SAMPLE_RATE and x.size:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return np.clip(x, -1.0, 1.0)


def loudest_db(wav: np.ndarray) -> float:
    """The level (dBFS RMS) of the loudest 50 ms of `wav`; -120 for silence."""
    n = max(1, int(FRAME_SECONDS * SAMPLE_RATE))
    if wav.size == 0:
        return -120.0
    pad = (-wav.size) % n
    frames = np.pad(wav, (0, pad)).reshape(-1, n)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)).max()
    return float(20 * np.log10(max(rms, 1e-6)))


def cut_take(wav: np.ndarray, clip_seconds: float = DEFAULT_CLIP_SECONDS,
             threshold_db: float = DEFAULT_THRESHOLD_DB) -> tuple[list[np.ndarray], int]:
    """(clips, silent ones dropped): consecutive clips of `clip_seconds` (0 = the whole take as one);
    a last piece of at least half a clip is kept, zero-padded; silent clips are dropped."""
    n = wav.size if clip_seconds <= 0 else max(1, int(round(clip_seconds * SAMPLE_RATE)))
    pieces = [wav[s:s + n] for s in range(0, wav.size, n)] if wav.size else []
    if len(pieces) > 1 and pieces[-1].size < n:
        tail = pieces.pop()
        if tail.size >= n // 2:
            pieces.append(np.pad(tail, (0, n - tail.size)))
    kept = [p for p in pieces if loudest_db(p) >= threshold_db]
    return kept, len(pieces) - len(kept)


def check_name(name: str) -> str:
    """The class name, normalised (NFC, trimmed), or RecordingError saying why it cannot be a folder."""
    clean = unicodedata.normalize("NFC", str(name or "")).strip()
    if not clean:
        raise RecordingError("Type a name for the class first (e.g. 'clap' or 'background').")
    if len(clean) > MAX_NAME:
        raise RecordingError(f"Class names can be at most {MAX_NAME} characters; {clean[:20]!r}... is longer.")
    if not _NAME.fullmatch(clean) or clean.endswith(".") or clean.lower().split(".")[0] in _RESERVED:
        raise RecordingError(f"{clean!r} cannot be a class name: use letters, digits, spaces and - _ . ( ) ' + "
                             "(starting with a letter or digit; not a reserved file name like CON or NUL).")
    return clean


class RecordingStore:
    """The classes and clips of one workspace's recordings (one folder per class)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def classes(self) -> list[ClassClips]:
        out = []
        if self.folder.is_dir():
            for d in sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                clips = sorted(f for f in d.iterdir() if f.suffix.lower() == ".wav")
                out.append(ClassClips(d.name, clips, round(sum(_seconds(f) for f in clips), 3)))
        return out

    def names(self) -> list[str]:
        return [c.name for c in self.classes()]

    def total_seconds(self) -> float:
        return sum(c.seconds for c in self.classes())

    def _dir(self, name: str) -> Path:
        clean = unicodedata.normalize("NFC", str(name or "")).strip()
        if clean not in self.names():
            raise RecordingError(f"There is no class {clean!r}; add it first (classes: "
                                 f"{', '.join(self.names()) or 'none yet'}).")
        return self.folder / clean

    def _free(self, name: str, ignore: str | None = None) -> str:
        clean = check_name(name)
        for existing in self.names():
            if existing != ignore and existing.casefold() == clean.casefold():
                same = "already exists" if existing == clean else "differs only in upper/lower case"
                raise RecordingError(f"{clean!r} {same} from the class {existing!r}; choose another name (on "
                                     "many disks and zips they would be the same folder).")
        return clean

    def add_class(self, name: str) -> str:
        clean = self._free(name)
        if len(self.names()) >= MAX_CLASSES:
            raise RecordingError(f"At most {MAX_CLASSES} classes can be recorded; delete one first.")
        (self.folder / clean).mkdir(parents=True, exist_ok=False)
        return clean

    def rename_class(self, old: str, new: str) -> str:
        src = self._dir(old)
        clean = self._free(new, ignore=src.name)
        if clean == src.name:
            return clean
        dst = self.folder / clean
        tmp = self.folder / f".rename-{src.name}"
        src.rename(tmp)  # via a temporary name: a case-only rename works on case-insensitive disks too
        tmp.rename(dst)
        for f in sorted(dst.glob("*.wav")):  # clip names follow the class (they read well in the zip)
            f.rename(dst / f.name.replace(src.name, clean, 1) if f.name.startswith(src.name) else f)
        return clean

    def delete_class(self, name: str) -> None:
        shutil.rmtree(self._dir(name))

    def delete_clip(self, name: str, clip: str) -> None:
        path = self._dir(name) / Path(str(clip)).name
        if not path.is_file():
            raise RecordingError(f"There is no clip {Path(str(clip)).name!r} in {name!r}.")
        path.unlink()

    def _room(self, name: str, n: int, seconds: float) -> Path:
        d = self._dir(name)
        have = len(list(d.glob("*.wav")))
        if have + n > MAX_CLIPS_PER_CLASS:
            raise RecordingError(f"{name!r} would have {have + n} clips; at most {MAX_CLIPS_PER_CLASS} per class.")
        if self.total_seconds() + seconds > MAX_TOTAL_SECONDS:
            raise RecordingError(f"The recordings would exceed {MAX_TOTAL_SECONDS / 60:.0f} minutes in all; "
                                 "delete some clips or download them and start a new set.")
        return d

    def _write(self, d: Path, clips: list[np.ndarray]) -> list[Path]:
        import soundfile as sf

        used = {int(m.group(1)) for f in d.glob("*.wav") if (m := re.search(r"_(\d+)\.wav$", f.name))}
        nxt, out = max(used, default=0) + 1, []
        for clip in clips:
            path = d / f"{d.name}_{nxt:04d}.wav"
            sf.write(str(path), clip, SAMPLE_RATE, subtype="PCM_16")
            out.append(path)
            nxt += 1
        return out

    def add_take(self, name: str, samples: np.ndarray, sr: int, clip_seconds: float = DEFAULT_CLIP_SECONDS,
                 threshold_db: float = DEFAULT_THRESHOLD_DB) -> TakeResult:
        """Cut a recording into clips and store the non-silent ones (refused above MAX_TAKE_SECONDS)."""
        raw = np.asarray(samples)
        frames = raw.shape[0] if raw.ndim else 0
        seconds = frames / float(sr) if sr else 0.0
        if not sr or sr < 1000 or seconds <= 0:
            raise RecordingError("The recording is empty; press record, make the sound, then stop.")
        if seconds > MAX_TAKE_SECONDS:
            raise RecordingError(f"This take is {seconds / 60:.1f} minutes; takes are limited to "
                                 f"{MAX_TAKE_SECONDS / 60:.0f} minutes. Record shorter takes.")
        wav = to_mono16k(raw, int(sr))
        clips, dropped = cut_take(wav, clip_seconds, threshold_db)
        d = self._room(name, len(clips), sum(c.size for c in clips) / SAMPLE_RATE)
        return TakeResult(self._write(d, clips), dropped, seconds, loudest_db(wav))

    def add_files(self, name: str, files: list[str | Path]) -> tuple[list[Path], list[str]]:
        """Decode audio files into the class (as they are, not cut); returns (stored, problems)."""
        clips, problems = [], []
        for f in files:
            path = Path(f)
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                problems.append(f"{path.name}: not an audio file")
                continue
            try:
                wav, _ = decode(path, SAMPLE_RATE, max_seconds=MAX_TAKE_SECONDS)
            except (AudioDecodeError, OSError) as exc:
                problems.append(f"{path.name}: {exc}")
                continue
            clips.append(np.clip(wav, -1.0, 1.0))
        d = self._room(name, len(clips), sum(c.size for c in clips) / SAMPLE_RATE)
        return self._write(d, clips), problems

    def to_zip(self, dest: str | Path) -> Path:
        """The recordings as a folder-per-class zip (what the Data tab's upload takes)."""
        classes = [c for c in self.classes() if c.clips]
        if not classes:
            raise RecordingError("There are no recordings yet: add a class and record a few clips.")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for c in classes:
                for clip in c.clips:
                    zf.write(clip, f"recordings/{c.name}/{clip.name}")
        tmp.replace(dest)
        return dest


def _seconds(path: Path) -> float:
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception:  # noqa: BLE001 - a damaged file counts as 0 s; the report will name it
        return 0.0
