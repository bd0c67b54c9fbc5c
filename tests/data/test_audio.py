"""Decoding real files of every supported format to 16 kHz mono float32, and clear reasons for bad ones."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from astapp.core.errors import AudioDecodeError
from astapp.data.audio import AUDIO_EXTENSIONS, audio_info, decode, load_audio


def _tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


LOSSLESS = [  # (extension, format, subtype, tolerance vs the original)
    (".wav", "WAV", "PCM_U8", 2e-2), (".wav", "WAV", "PCM_16", 1e-3), (".wav", "WAV", "PCM_24", 1e-4),
    (".wav", "WAV", "PCM_32", 1e-4), (".wav", "WAV", "FLOAT", 1e-6), (".wav", "WAV", "ULAW", 3e-2),
    (".wav", "WAV", "ALAW", 3e-2), (".wav", "WAVEX", "PCM_16", 1e-3), (".flac", "FLAC", "PCM_16", 1e-3),
    (".flac", "FLAC", "PCM_24", 1e-4), (".aiff", "AIFF", "PCM_16", 1e-3),
]


@pytest.mark.parametrize(("ext", "fmt", "subtype", "tol"), LOSSLESS)
def test_lossless_formats_decode_to_the_same_samples(tmp_path, ext, fmt, subtype, tol):
    ref = _tone(0.5, 16_000)
    path = tmp_path / f"clip{ext}"
    sf.write(path, ref, 16_000, format=fmt, subtype=subtype)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert len(wav) == len(ref)
    assert np.max(np.abs(wav - ref)) < tol


def test_wave_format_extensible_header_is_really_extensible(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, _tone(0.1, 16_000), 16_000, format="WAVEX", subtype="PCM_24")
    assert int.from_bytes(path.read_bytes()[20:22], "little") == 0xFFFE  # WAVE_FORMAT_EXTENSIBLE
    assert len(load_audio(path)) == 1600


@pytest.mark.parametrize(("ext", "fmt", "subtype"), [(".ogg", "OGG", "VORBIS"), (".opus", "OGG", "OPUS"),
                                                     (".mp3", "MP3", "MPEG_LAYER_III")])
def test_lossy_formats_keep_duration_and_pitch(tmp_path, ext, fmt, subtype):
    sr = 48_000 if subtype == "OPUS" else 22_050
    path = tmp_path / f"clip{ext}"
    sf.write(path, _tone(1.0, sr, freq=1000.0), sr, format=fmt, subtype=subtype)
    wav = load_audio(path)
    assert wav.dtype == np.float32
    assert abs(len(wav) - 16_000) < 0.06 * 16_000  # codec padding only
    spectrum = np.abs(np.fft.rfft(wav[2000:14000]))
    peak_hz = np.argmax(spectrum) * 16_000 / 12_000
    assert abs(peak_hz - 1000) < 10


@pytest.mark.parametrize("sr", [48_000, 96_000, 8_000, 44_100])
def test_stereo_any_rate_becomes_mono_16k(tmp_path, sr):
    left = _tone(1.0, sr, freq=300.0, amp=0.8)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, sr, subtype="PCM_24")
    wav, info = decode(path)
    assert info.channels == 2 and info.sample_rate == sr and info.duration == pytest.approx(1.0)
    assert len(wav) == 16_000
    # mono is the channel mean: the tone at half amplitude
    assert np.max(np.abs(wav[1000:-1000])) == pytest.approx(0.4, abs=0.02)


def test_audio_info_reads_header_only(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, _tone(2.5, 32_000), 32_000)
    info = audio_info(path)
    assert (info.duration, info.sample_rate, info.channels, info.format) == (2.5, 32_000, 1, "FLAC")


def test_max_seconds_reads_a_prefix_but_reports_the_full_duration(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, _tone(5.0, 16_000), 16_000)
    wav, info = decode(path, max_seconds=1.0)
    assert len(wav) == 16_000 and info.duration == pytest.approx(5.0)


@pytest.mark.parametrize(("content", "name", "reason"), [
    (b"", "empty.wav", "empty"),
    (b"just some notes, not audio\n" * 20, "notes.wav", "text"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "photo.mp3", "PNG"),
    (b"%PDF-1.4\n" + bytes(500), "doc.flac", "PDF"),
    (bytes([0x00, 0x9F, 0x13, 0x80]) * 300, "noise.wav", "not a recognised audio format"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cut.wav", "could not decode"),
    (b"\x00\x00\x00\x20ftypM4A " + bytes(100), "song.mp3", "M4A"),
])
def test_bad_files_get_a_short_reason(tmp_path, content, name, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=reason):
        load_audio(path)


def test_nan_samples_are_rejected(tmp_path):
    wav = _tone(0.2, 16_000)
    wav[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, wav, 16_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio(path)


def test_missing_file_and_extension_set(tmp_path):
    with pytest.raises(AudioDecodeError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    assert {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff"} <= AUDIO_EXTENSIONS
