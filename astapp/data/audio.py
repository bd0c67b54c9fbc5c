"""Decode any common audio file to 16 kHz mono float32, or say in a few words why not.

soundfile (libsndfile) reads wav/flac/ogg/opus/mp3/aiff; soxr resamples. The first bytes are sniffed
first, so a PNG renamed `.mp3` or a text file renamed `.wav` gets a clear reason instead of
libsndfile's misleading "file does not exist" and decoder noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import AudioDecodeError

AUDIO_EXTENSIONS: set[str] = {
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
    ".au", ".snd", ".caf", ".w64", ".rf64",
}

# Signatures of files people put in audio folders by mistake, for a readable reason.
_NOT_AUDIO = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive"), (b"7z\xbc\xaf", "a 7z archive"),
    (b"\x1f\x8b", "a gzip archive"), (b"Rar!", "a RAR archive"), (b"\x1aE\xdf\xa3", "a WebM/Matroska file"),
    (b"\x7fELF", "a program"), (b"MZ", "a program"), (b"BM", "a bitmap image"),
)


@dataclass
class AudioInfo:
    """Header facts, read without decoding the samples."""

    duration: float
    sample_rate: int
    channels: int
    format: str
    subtype: str


def _sniff(path: Path) -> str | None:
    """None when the first bytes look like a format libsndfile reads, else why it is not audio."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "empty file (0 bytes)"
    if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64"):
        kind = head[8:12]
        if kind in (b"WAVE", b""):
            return None
        if kind == b"WEBP":
            return "not audio: it is a WebP image"
        if kind == b"AVI ":
            return "not audio: it is an AVI video"
        return None
    if head[:4] in (b"fLaC", b"OggS", b"FORM", b".snd", b"caff", b"NIST", b"riff") or head[:3] == b"ID3":
        return None
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio frame sync
        return None
    if head[4:8] == b"ftyp":
        return "MP4/M4A/AAC audio is not supported: convert it to WAV, FLAC or MP3"
    for sig, what in _NOT_AUDIO:
        if head.startswith(sig):
            return f"not audio: it is {what}"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not audio: it looks like a text file"
    return "not a recognised audio format"


def _open_error(path: Path, exc: Exception) -> AudioDecodeError:
    msg = str(exc).split(":")[-1].strip() or type(exc).__name__
    return AudioDecodeError(f"could not decode ({msg[:120]})")


def _checked(path: str | Path) -> Path:
    """The path, once it exists and its first bytes look like audio; else AudioDecodeError."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError("file not found")
    reason = _sniff(path)
    if reason:
        raise AudioDecodeError(reason)
    return path


def audio_info(path: str | Path) -> AudioInfo:
    """Duration, sample rate and channels from the header; raises AudioDecodeError."""
    import soundfile as sf

    path = _checked(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for bad input
        raise _open_error(path, exc) from None
    return AudioInfo(float(info.duration), int(info.samplerate), int(info.channels), info.format, info.subtype)


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Decode to mono float32 at `sr`; raises AudioDecodeError with a short per-file reason.

    `max_seconds` (optional) stops reading after that much audio, to bound memory on huge files.
    """
    return decode(path, sr, max_seconds)[0]


def decode(path: str | Path, sr: int = SAMPLE_RATE, max_seconds: float | None = None) -> tuple[np.ndarray, AudioInfo]:
    """`load_audio` plus the file's header facts (its full duration even when reading stops early)."""
    import soundfile as sf
    import soxr

    path = _checked(path)
    try:
        with sf.SoundFile(str(path)) as f:
            in_sr = int(f.samplerate)
            if not 1000 <= in_sr <= 768_000:
                raise AudioDecodeError(f"implausible sample rate {in_sr} Hz")
            info = AudioInfo(f.frames / in_sr if f.frames > 0 else 0.0, in_sr, int(f.channels), f.format, f.subtype)
            frames = -1 if max_seconds is None else int(math.ceil(max_seconds * in_sr))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except AudioDecodeError:
        raise
    except Exception as exc:
        raise _open_error(path, exc) from None
    if data.size == 0:
        raise AudioDecodeError("contains no audio samples")
    if frames < 0 or data.shape[0] < frames:
        info.duration = data.shape[0] / in_sr  # what was really decoded (headers of truncated files lie)
    wav = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(wav).all():
        raise AudioDecodeError("contains NaN or infinite samples (corrupt float audio)")
    if in_sr != sr:
        wav = soxr.resample(wav, in_sr, sr, quality="HQ")
    return np.ascontiguousarray(wav, dtype=np.float32), info


def audio_files(root: Path) -> list[Path]:
    """Audio files under `root`, sorted, hidden folders and `__MACOSX` left out."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(root).parts))
