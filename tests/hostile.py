"""Builders of real hostile and odd zip files (raw header edits included), reusable by any test.

Each builder writes an actual archive to disk the way an attacker or an unusual tool would, so tests
exercise the real extraction code path, never a stub.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np

from astapp.data.synth import KINDS, make_signal

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"


def wav_bytes(seconds: float = 0.5, sr: int = 16_000, kind: str = "tone", seed: int = 0,
              subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, make_signal(kind, seconds, sr, np.random.default_rng(seed)), sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def class_members(n_classes: int = 2, per_class: int = 3, seconds: float = 0.5, prefix: str = "") -> dict[str, bytes]:
    """{"<prefix><class>/<i>.wav": wav bytes} for a small valid dataset."""
    out = {}
    for c in range(n_classes):
        for i in range(per_class):
            out[f"{prefix}{KINDS[c]}/{i}.wav"] = wav_bytes(seconds, kind=KINDS[c], seed=c * 100 + i)
    return out


def make_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Write members verbatim (names are not sanitised: '../x' and '/tmp/x' stay as given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def symlink_zip(path: Path, name: str = "dog/link.wav", target: str = "/etc/passwd",
                extra: dict[str, bytes] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in (extra or {}).items():
            zf.writestr(n, data)
        info = zipfile.ZipInfo(name)
        info.create_system = 3  # unix
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return path


def bomb_zip(path: Path, inflated_bytes: int, name: str = "dog/bomb.wav", declared_size: int | None = None,
             extra: dict[str, bytes] | None = None) -> Path:
    """A member of `inflated_bytes` zeros, deflated; optionally its headers lie (`declared_size`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in (extra or {}).items():
            zf.writestr(n, data)
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=False) as dst:
            chunk = bytes(1 << 20)
            left = inflated_bytes
            while left > 0:
                dst.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    if declared_size is not None:
        patch_member(path, name, file_size=declared_size)
    return path


def _headers(data: bytes, name: bytes):
    """Offsets of the local and central headers whose file name is `name`."""
    out = []
    for sig, name_len_off, fixed in ((LOCAL_SIG, 26, 30), (CENTRAL_SIG, 28, 46)):
        pos = data.find(sig)
        while pos >= 0:
            n = struct.unpack_from("<H", data, pos + name_len_off)[0]
            if data[pos + fixed: pos + fixed + n] == name:
                out.append((sig, pos))
            pos = data.find(sig, pos + 4)
    return out


def patch_member(path: Path, name: str, file_size: int | None = None, set_flags: int = 0,
                 new_name: bytes | None = None) -> Path:
    """Rewrite a member's header fields in place: declared size, flag bits, or raw name bytes
    (same length), in both the local and the central directory header."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    raw = name.encode("ascii")
    found = _headers(bytes(data), raw)
    assert found, f"member {name!r} not found"
    for sig, pos in found:
        flag_off, size_off, fixed = (6, 22, 30) if sig == LOCAL_SIG else (8, 24, 46)
        if file_size is not None:
            struct.pack_into("<I", data, pos + size_off, file_size)
        if set_flags:
            flags = struct.unpack_from("<H", data, pos + flag_off)[0] | set_flags
            struct.pack_into("<H", data, pos + flag_off, flags)
        if new_name is not None:
            assert len(new_name) == len(raw)
            data[pos + fixed: pos + fixed + len(raw)] = new_name
    path.write_bytes(bytes(data))
    return path


def legacy_name_zip(path: Path, raw_names: list[bytes], data: bytes) -> Path:
    """Members whose names are raw legacy bytes (cp437, cp866, Shift-JIS ...) without the UTF-8 flag."""
    path = Path(path)
    placeholders = [f"p{i}".ljust(len(raw), "x") for i, raw in enumerate(raw_names)]
    make_zip(path, {p: data for p in placeholders})
    for p, raw in zip(placeholders, raw_names, strict=True):
        patch_member(path, p, new_name=raw)
    return path


def encrypted_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip whose members carry the 'encrypted' flag (bit 0), as password-protected zips do."""
    make_zip(path, members)
    for name in members:
        patch_member(path, name, set_flags=0x1)
    return path


def truncated_zip(path: Path, members: dict[str, bytes], keep: float = 0.5) -> Path:
    make_zip(path, members)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return path


def corrupt_zip(path: Path, members: dict[str, bytes]) -> Path:
    """Valid directory, damaged compressed data (flipped bytes in the middle of the first member)."""
    make_zip(path, members)
    data = bytearray(Path(path).read_bytes())
    first = next(iter(members))
    (_, pos), *_ = _headers(bytes(data), first.encode())
    n, extra = struct.unpack_from("<HH", data, pos + 26)
    start = pos + 30 + n + extra
    for i in range(start + 20, start + 60):
        data[i] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    return path


def disk_usage(root: Path) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def esc_like_zip(path: Path, folds: int = 4, classes: tuple[str, ...] = ("dog", "rain", "clock_tick"),
                 per_fold: int = 2, seconds: float = 0.5, kind: str | None = None) -> Path:
    """An ESC-50-style upload: `audio/{fold}-{source}-A-{target}.wav` plus `meta/esc50.csv` (filename,
    fold, target, category). With `kind="noise"` every class is the same noise (a model can't tell
    them apart: there will be mistakes to look at); by default each class has its own sound."""
    rows, members = ["filename,fold,target,category"], {}
    for f in range(1, folds + 1):
        for t, name in enumerate(classes):
            for i in range(per_fold):
                fname = f"{f}-{100 * t + 10 * f + i}-A-{t}.wav"
                members[f"esc/audio/{fname}"] = wav_bytes(seconds, kind=kind or KINDS[t], seed=1000 * f + 10 * t + i)
                rows.append(f"{fname},{f},{t},{name}")
    members["esc/meta/esc50.csv"] = ("\n".join(rows) + "\n").encode()
    return make_zip(path, members)
