"""A recording of any length as 16 kHz mono float32 blocks: decoded and resampled streaming, never whole.

Hours of 48 kHz stereo audio are gigabytes as float32, so the file is read in blocks of `BLOCK_SECONDS`
with soundfile, mixed down to mono, and resampled by soxr's `ResampleStream` (which keeps its filter
state between blocks, so the blocks concatenated equal `soxr.resample` of the whole file exactly). Memory
stays flat in the recording's length. Everything a user can get wrong is checked before any model work,
each as one `AudioDecodeError` sentence naming the file and the fix: missing, empty, not audio, over the
size limit (`ASTAPP_DETECT_MAX_MB`), a sample rate outside 8-96 kHz, nothing decodable, corrupt midway.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.env import env_int
from astapp.core.errors import AudioDecodeError
from astapp.data.audio import audio_info

BLOCK_SECONDS = 30.0
MIN_RATE, MAX_RATE = 8_000, 96_000
MAX_MB_ENV = "ASTAPP_DETECT_MAX_MB"


def max_file_bytes() -> int:
    """The size limit of one recording (default 16 GiB, about 24 h of 48 kHz stereo 16-bit WAV)."""
    return env_int(MAX_MB_ENV, 16 * 1024) << 20


@dataclass
class StreamInfo:
    """What the header says: the sample rate and channels, and the duration it claims."""

    path: Path
    sample_rate: int
    channels: int
    frames: int  # as the header says (0 when it does not know)
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def check_recording(path: str | Path, max_bytes: int | None = None) -> StreamInfo:
    """The header facts of a recording detection can read, else one AudioDecodeError sentence."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise AudioDecodeError(f"{name}: file not found; check the path.")
    limit = max_file_bytes() if max_bytes is None else max_bytes
    size = path.stat().st_size
    if size > limit:
        raise AudioDecodeError(f"{name} is {size / 2**20:.0f} MB, over the {limit / 2**20:.0f} MB limit for one "
                               f"recording; split it, or raise the limit with {MAX_MB_ENV}.")
    try:
        info = audio_info(path)
    except AudioDecodeError as e:
        raise AudioDecodeError(f"{name} cannot be read ({e}); convert it to WAV, FLAC, OGG or MP3.") from None
    if not MIN_RATE <= info.sample_rate <= MAX_RATE:
        raise AudioDecodeError(f"{name} has a sample rate of {info.sample_rate} Hz, outside the 8-96 kHz "
                               "detection reads; resample it into that range (e.g. to 16 or 48 kHz).")
    return StreamInfo(path, info.sample_rate, info.channels, int(round(info.duration * info.sample_rate)),
                      info.format)


def stream_blocks(info: StreamInfo, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """16 kHz mono float32 blocks of the recording, in order; the last one flushes the resampler.

    A file that fails midway (truncated FLAC/MP3, a bad sector) raises one sentence saying how far it got.
    """
    import soundfile as sf
    import soxr

    in_sr = info.sample_rate
    resampler = soxr.ResampleStream(in_sr, SAMPLE_RATE, 1, dtype="float32", quality="HQ") if in_sr != SAMPLE_RATE \
        else None
    block = max(1, int(block_seconds * in_sr))
    done = 0
    try:
        with sf.SoundFile(str(info.path)) as f:
            while True:
                data = f.read(frames=block, dtype="float32", always_2d=True)
                last = data.shape[0] < block
                done += data.shape[0]
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0].copy()
                if not np.isfinite(mono).all():
                    raise AudioDecodeError(f"{info.path.name} has NaN or infinite samples after {done / in_sr:.1f} s "
                                           "(corrupt float audio); export it again as 16-bit WAV or FLAC.")
                out = mono if resampler is None else resampler.resample_chunk(mono, last=last)
                if out.size:
                    yield np.ascontiguousarray(out, dtype=np.float32)
                if last:
                    break
    except AudioDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for a corrupt file
        raise AudioDecodeError(f"{info.path.name} is truncated or corrupt after {done / in_sr:.1f} s "
                               f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}); "
                               "repair or re-export it.") from None
    if done == 0:
        raise AudioDecodeError(f"{info.path.name} contains no audio samples; check the recording.")


def read_all(path: str | Path) -> np.ndarray:
    """The whole recording at 16 kHz mono (tests and short files): the streamed blocks joined."""
    return np.concatenate(list(stream_blocks(check_recording(path))))
