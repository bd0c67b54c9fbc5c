"""Safe extraction of untrusted zips: nothing outside the destination, no links, no bombs.

Every member's name and header are checked before anything is written; while streaming, the bytes
actually inflated are counted against the per-file, total and ratio caps (headers can lie), so a bomb
is stopped after at most one chunk past a cap. On any failure the partial output is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from astapp.core.config import IngestLimits
from astapp.core.errors import UploadError, user_error
from astapp.data.ingest.layout import is_junk

CHUNK = 1 << 20
RATIO_GRACE_BYTES = 2 << 20  # below this a member may be as compressible as it likes (silent clips)


def _raise_with(env: str, how: str = "is set by") -> str:
    return f" Running astapp yourself? The limit {how} {env}."


def _protects(env: str) -> str:
    """Why a size limit exists and what helps, for messages about an upload that is too big."""
    return ("This limit protects the server: a zip bomb (a small archive that expands to gigabytes) would "
            "fill its disk. Split long recordings into shorter files, or leave that file out."
            + _raise_with(env, "can be raised with"))


def _member_name(info: zipfile.ZipInfo) -> str:
    """The member name as text; legacy (non-UTF-8-flagged) names are tried as UTF-8, then cp437."""
    name = info.orig_filename
    if not info.flag_bits & 0x800:
        raw = name.encode("cp437")  # zipfile decoded the raw bytes as cp437; this is lossless
        with contextlib.suppress(UnicodeDecodeError):
            name = raw.decode("utf-8")
    return name


def _safe_parts(name: str) -> list[str]:
    """Path components of a member, or UploadError when the name could escape the destination."""
    if "\x00" in name:
        raise UploadError(f"The zip contains a file name with a NUL byte ({name!r}); it is not safe to extract. "
                          "Re-create the zip with ordinary file names.")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise UploadError(f"The zip contains an absolute path ({name!r}), which is not allowed. "
                          "Re-create the zip from inside your dataset folder.")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UploadError(f"The zip contains a path that climbs out of the folder ({name!r}), which is not "
                          "allowed. Re-create the zip from inside your dataset folder.")
    return parts


def extract_zip(zip_path: str | Path, dest_dir: str | Path, limits: IngestLimits | None = None) -> Path:
    """Extract an untrusted zip into `dest_dir` (created if needed) and return `dest_dir`.

    All names and declared sizes are checked before anything is written; while streaming, the bytes
    actually inflated are counted against the per-file, total and ratio caps, so a bomb whose header
    lies is stopped after at most one chunk past a cap. On any failure the partial output is removed.
    """
    limits = limits or IngestLimits()
    zip_path, dest = Path(zip_path), Path(dest_dir)
    try:
        size = zip_path.stat().st_size
    except OSError:
        raise UploadError(f"The upload {zip_path.name!r} could not be read; upload it again.") from None
    if size > limits.max_upload_bytes:
        raise UploadError(f"The upload is {size / 2**20:.0f} MB, over the {limits.max_upload_bytes / 2**20:.0f} MB "
                          "limit. Upload fewer or shorter clips, or use compressed audio (FLAC/MP3)."
                          + _raise_with("ASTAPP_MAX_UPLOAD_MB"))
    bad_zip = ("is not a valid zip archive (it may be truncated or corrupt, or another format); "
               "create it again with your system's 'Compress' / 'Send to zip' and re-upload")
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.LargeZipFile:
        raise UploadError(f"{zip_path.name!r} is too large a zip to handle; split it into smaller zips.") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, UnicodeDecodeError) as exc:
        raise UploadError(f"{zip_path.name!r} {bad_zip}.") from exc
    with zf:
        plan = _plan(zf, size, limits)
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        try:
            _stream_members(zf, plan, dest.resolve(), size, limits, written)
        except BaseException as exc:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                for p in written:
                    p.unlink(missing_ok=True)
            if isinstance(exc, UploadError | KeyboardInterrupt):
                raise
            if isinstance(exc, zipfile.BadZipFile | EOFError | ValueError | zlib.error):
                raise UploadError(f"{zip_path.name!r} {bad_zip} ({exc}).") from None
            if isinstance(exc, NotImplementedError):
                raise UploadError(f"{zip_path.name!r} uses a compression method that is not supported ({exc}); "
                                  "re-create it with standard (deflate) compression.") from None
            if isinstance(exc, OSError):
                known = user_error(exc, dest)
                if known is not None:
                    raise known from None
                raise UploadError(f"Could not write a file from {zip_path.name!r} ({exc.strerror or exc}); "
                                  "check that names are not too long and that the folder is writable.") from None
            raise
    return dest


def _plan(zf: zipfile.ZipFile, archive_size: int, limits: IngestLimits) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Validate every member before writing anything; return (info, safe parts) of files to extract."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise UploadError(f"The zip holds {len(infos)} entries, over the limit of {limits.max_members}. "
                          "Upload a smaller dataset or split it into several zips." + _raise_with("ASTAPP_MAX_FILES"))
    plan: list[tuple[zipfile.ZipInfo, list[str]]] = []
    total = 0
    seen: set[str] = set()
    for info in infos:
        name = _member_name(info)
        parts = _safe_parts(name)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadError(f"The zip contains a symbolic link ({name!r}); links are not allowed. "
                              "Re-create the zip with the real files instead of links.")
        if info.flag_bits & 0x1:
            raise UploadError("The zip is password-protected (encrypted); upload a zip made without a password.")
        if not parts or info.is_dir() or any(is_junk(p) for p in parts):
            continue
        key = "/".join(parts)
        if key in seen:
            continue
        seen.add(key)
        if info.compress_size > archive_size:
            raise UploadError(f"The zip's header for {name!r} is corrupt (declares more data than the file has); "
                              "create the zip again and re-upload.")
        if info.file_size > limits.max_file_bytes:
            raise UploadError(f"{name!r} would be {info.file_size / 2**20:.0f} MB when extracted, over the per-file "
                              f"limit of {limits.max_file_bytes / 2**20:.0f} MB. " + _protects("ASTAPP_MAX_FILE_MB"))
        if info.file_size > RATIO_GRACE_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UploadError(f"{name!r} is compressed suspiciously well ({info.file_size / max(info.compress_size, 1):.0f}"
                              " to 1), like a zip bomb; it was not extracted. Re-create the zip from real audio files.")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UploadError(f"The zip would extract to more than {limits.max_total_bytes / 2**20:.0f} MB, over the "
                              "limit. " + _protects("ASTAPP_MAX_EXTRACT_MB"))
        plan.append((info, parts))
    return plan


def _stream_members(zf: zipfile.ZipFile, plan: list[tuple[zipfile.ZipInfo, list[str]]], dest: Path,
                    archive_size: int, limits: IngestLimits, written_paths: list[Path]) -> None:
    total = 0
    for info, parts in plan:
        out = dest.joinpath(*parts)
        if not out.resolve().is_relative_to(dest) or out.resolve() == dest:
            raise UploadError(f"The zip member {info.orig_filename!r} would be written outside the upload folder; "
                              "it was rejected.")
        out.parent.mkdir(parents=True, exist_ok=True)
        compressed = max(min(info.compress_size, archive_size), 1)
        written = 0
        written_paths.append(out)
        with zf.open(info) as src, open(out, "wb") as dst:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                total += len(chunk)
                if written > limits.max_file_bytes:
                    raise UploadError(f"{'/'.join(parts)!r} inflates past the per-file limit of "
                                      f"{limits.max_file_bytes / 2**20:.0f} MB (its header understated its size); "
                                      "extraction was stopped. " + _protects("ASTAPP_MAX_FILE_MB"))
                if total > limits.max_total_bytes:
                    raise UploadError(f"The zip inflates past the {limits.max_total_bytes / 2**20:.0f} MB limit "
                                      "(its headers understated the size); extraction was stopped. "
                                      + _protects("ASTAPP_MAX_EXTRACT_MB"))
                if written > RATIO_GRACE_BYTES and written > limits.max_ratio * compressed:
                    raise UploadError(f"{'/'.join(parts)!r} inflates more than {limits.max_ratio:.0f} to 1, like a "
                                      "zip bomb; extraction was stopped.")
                dst.write(chunk)


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=10)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
