"""Turn what a user uploads (zip, folder, manifest, saved or Hub dataset) into a labelled file list.

Uploads are untrusted: `extract_zip` checks every member's name and header before writing anything,
then counts the bytes it actually inflates while streaming (headers can lie), and never writes outside
the destination. `scan` then discovers the layout: one folder per class, split folders, or a manifest.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from astapp.audio import AUDIO_EXTENSIONS
from astapp.config import IngestLimits
from astapp.errors import UploadError

MANIFEST_EXTENSIONS = {".csv", ".tsv", ".json", ".jsonl"}
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "__macosx", "ehthumbs.db", "$recycle.bin"}
SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing", "dev", "eval"}
VALIDATION_NAMES = ("validation", "valid", "val", "dev", "eval", "test", "testing")
FILE_COLUMNS = ("file", "filename", "file_name", "filepath", "file_path", "path", "audio", "audio_path",
                "audio_file", "audio_filename", "clip", "clip_name", "wav", "wav_file", "fname", "slice_file_name")
LABEL_COLUMNS = ("label", "labels", "category", "class", "class_name", "classname", "label_name", "tag",
                 "species", "genre", "target")
FOLD_COLUMNS = ("fold", "split", "set", "subset", "partition")
_CHUNK = 1 << 20
RATIO_GRACE_BYTES = 2 << 20  # below this a member may be as compressible as it likes (silent clips)


@dataclass
class Item:
    path: Path
    label: str
    fold: str | None = None


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Listing:
    root: Path
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    layout: str = "folders"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def is_junk(name: str) -> bool:
    """macOS/Windows litter and hidden files, ignored silently everywhere."""
    low = name.lower()
    return low in JUNK_NAMES or name.startswith(".") or name.startswith("~$")


# ---------------------------------------------------------------------------------------------------
# Safe zip extraction
# ---------------------------------------------------------------------------------------------------

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
                          "limit. Upload fewer or shorter clips, or use compressed audio (FLAC/MP3).")
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
                raise UploadError(f"Could not write a file from {zip_path.name!r} ({exc.strerror or exc}); "
                                  "check that names are not too long and that there is free disk space.") from None
            raise
    return dest


def _plan(zf: zipfile.ZipFile, archive_size: int, limits: IngestLimits) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Validate every member before writing anything; return (info, safe parts) of files to extract."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise UploadError(f"The zip holds {len(infos)} entries, over the limit of {limits.max_members}. "
                          "Upload a smaller dataset or split it into several zips.")
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
                              f"limit of {limits.max_file_bytes / 2**20:.0f} MB. Shorten or compress that file.")
        if info.file_size > RATIO_GRACE_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UploadError(f"{name!r} is compressed suspiciously well ({info.file_size / max(info.compress_size, 1):.0f}"
                              " to 1), like a zip bomb; it was not extracted. Re-create the zip from real audio files.")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UploadError(f"The zip would extract to more than {limits.max_total_bytes / 2**20:.0f} MB, over the "
                              "limit. Upload fewer or shorter clips, or split the dataset.")
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
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                total += len(chunk)
                if written > limits.max_file_bytes:
                    raise UploadError(f"{'/'.join(parts)!r} inflates past the per-file limit of "
                                      f"{limits.max_file_bytes / 2**20:.0f} MB (its header understated its size); "
                                      "extraction was stopped.")
                if total > limits.max_total_bytes:
                    raise UploadError(f"The zip inflates past the {limits.max_total_bytes / 2**20:.0f} MB limit "
                                      "(its headers understated the size); extraction was stopped.")
                if written > RATIO_GRACE_BYTES and written > limits.max_ratio * compressed:
                    raise UploadError(f"{'/'.join(parts)!r} inflates more than {limits.max_ratio:.0f} to 1, like a "
                                      "zip bomb; extraction was stopped.")
                dst.write(chunk)


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=10)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------

def resolve_source(source: str | Path, workspace: str | Path, limits: IngestLimits | None = None) -> Path:
    """The dataset root for a zip (extracted under `workspace`), folder, manifest, or saved/Hub dataset."""
    return resolve(source, workspace, limits)[0]


def resolve(source: str | Path, workspace: str | Path,
            limits: IngestLimits | None = None) -> tuple[Path, Path | None]:
    """Like `resolve_source`, plus the manifest file when the user pointed at one."""
    limits = limits or IngestLimits()
    workspace = Path(workspace)
    text = str(source).strip()
    if not text:
        raise UploadError("No dataset given: choose a zip, a folder, or a CSV/JSON manifest.")
    if text.startswith("hf:"):
        return _materialise_hub(text[3:].strip(), workspace), None
    path = Path(text).expanduser()
    if not path.exists():
        raise UploadError(f"{text!r} does not exist; check the path (a zip, a folder, or a CSV/JSON manifest).")
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return _materialise_saved(path, workspace), None
        return path, None
    suffix = path.suffix.lower()
    if suffix in MANIFEST_EXTENSIONS:
        root = path.parent
        if not any(p.suffix.lower() in AUDIO_EXTENSIONS for p in _walk(root)):
            root = root.parent  # e.g. ESC-50's meta/esc50.csv next to audio/
        return root, path
    if suffix == ".zip" or zipfile.is_zipfile(path):
        return _extract_cached(path, workspace, limits), None
    raise UploadError(f"{path.name!r} is not a dataset: upload a .zip of class folders, choose a folder, or a "
                      "CSV/JSON manifest listing files and labels.")


def _extract_cached(zip_path: Path, workspace: Path, limits: IngestLimits) -> Path:
    """Extract into workspace/uploads/<name>-<content hash>; the same zip uploaded again is reused."""
    try:
        size = zip_path.stat().st_size
    except OSError:
        raise UploadError(f"The upload {zip_path.name!r} could not be read; upload it again.") from None
    if size > limits.max_upload_bytes:
        return extract_zip(zip_path, workspace, limits)  # raises the size error
    stem = re.sub(r"[^\w.-]+", "_", zip_path.stem)[:40] or "upload"
    uploads = workspace / "uploads"
    final = uploads / f"{stem}-{_file_digest(zip_path)}"
    if final.is_dir():
        return final
    uploads.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=uploads))
    try:
        extract_zip(zip_path, tmp / "x", limits)
        os.replace(tmp / "x", final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _materialise_hub(dataset_id: str, workspace: Path) -> Path:
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", dataset_id):
        raise UploadError(f"{dataset_id!r} is not a Hugging Face dataset id; use hf:owner/name.")
    try:
        import datasets

        ds = datasets.load_dataset(dataset_id)
    except Exception as exc:
        raise UploadError(f"Could not load the Hugging Face dataset {dataset_id!r} ({type(exc).__name__}): the Hub "
                          "may be unreachable or the id wrong. Download it elsewhere and upload a zip instead.") from None
    return _write_dataset_files(ds, workspace / "hub" / re.sub(r"[^\w.-]+", "_", dataset_id), dataset_id)


def _materialise_saved(path: Path, workspace: Path) -> Path:
    try:
        import datasets

        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise UploadError(f"{path.name!r} looks like a saved datasets folder but could not be loaded "
                          f"({type(exc).__name__}: {exc}).") from None
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    return _write_dataset_files(ds, workspace / "saved" / f"{path.name}-{digest}", path.name)


def _write_dataset_files(ds, out: Path, name: str) -> Path:
    """Write a Dataset/DatasetDict's audio bytes as files plus manifest.csv (file, label, split)."""
    import datasets

    if (out / "manifest.csv").is_file():
        return out
    splits = dict(ds) if isinstance(ds, datasets.DatasetDict) else {"": ds}
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=_mkdir(out.parent)))
    rows: list[tuple[str, str, str]] = []
    try:
        for split, part in splits.items():
            audio_col, label_col = _dataset_columns(part, name)
            part = part.cast_column(audio_col, datasets.Audio(decode=False))
            label_feature = part.features[label_col]
            for i, row in enumerate(part):
                audio = row[audio_col] or {}
                label = row[label_col]
                if isinstance(label_feature, datasets.ClassLabel) and isinstance(label, int):
                    label = label_feature.int2str(label)
                src_name = re.sub(r"[^\w.-]+", "_", Path(audio.get("path") or f"{i}.wav").name)[-60:]
                rel = Path("audio") / (split or "all") / f"{i:06d}_{src_name}"
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if audio.get("bytes"):
                    target.write_bytes(audio["bytes"])
                elif audio.get("path") and Path(audio["path"]).is_file():
                    shutil.copyfile(audio["path"], target)
                else:
                    continue
                rows.append((rel.as_posix(), str(label), split))
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["file", "label", "split"] if any(r[2] for r in rows) else ["file", "label"])
        for r in rows:
            writer.writerow(r if r[2] else r[:2])
        (tmp / "manifest.csv").write_text(buf.getvalue(), encoding="utf-8")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _dataset_columns(ds, name: str) -> tuple[str, str]:
    import datasets

    feats = ds.features
    audio = next((c for c, f in feats.items() if isinstance(f, datasets.Audio)), None)
    audio = audio or next((c for c in FILE_COLUMNS if c in feats), None)
    label = next((c for c, f in feats.items() if isinstance(f, datasets.ClassLabel)), None)
    label = label or next((c for c in LABEL_COLUMNS if c in feats), None)
    if not audio or not label:
        raise UploadError(f"Dataset {name!r} needs an audio column and a label column; found columns "
                          f"{', '.join(feats)}.")
    return audio, label


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# ---------------------------------------------------------------------------------------------------
# Layout discovery
# ---------------------------------------------------------------------------------------------------

def _walk(root: Path):
    """All non-junk files under root (junk and hidden folders pruned), in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d))
        for f in sorted(filenames):
            if not is_junk(f):
                yield Path(dirpath) / f


def _children(folder: Path) -> tuple[list[Path], list[Path]]:
    dirs, files = [], []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return [], []
    for p in entries:
        if is_junk(p.name):
            continue
        (dirs if p.is_dir() else files).append(p)
    return dirs, files


def _strip_chain(root: Path) -> Path:
    """Descend `my_upload/data/...` while a folder holds exactly one folder and nothing else useful."""
    for _ in range(16):
        dirs, files = _children(root)
        if len(dirs) != 1 or any(f.suffix.lower() in AUDIO_EXTENSIONS | MANIFEST_EXTENSIONS for f in files):
            return root
        sub_dirs, sub_files = _children(dirs[0])
        if not sub_dirs and not any(f.suffix.lower() in MANIFEST_EXTENSIONS for f in sub_files):
            return root  # the only child is itself a class folder (a single-class dataset)
        root = dirs[0]
    return root


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def scan(root: str | Path, manifest: str | Path | None = None) -> Listing:
    """Discover labelled audio files under `root` (folders per class, split folders, or a manifest)."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() in MANIFEST_EXTENSIONS:
        manifest, root = root, root.parent
    if not root.is_dir():
        raise UploadError(f"{str(root)!r} is not a folder.")
    if manifest is not None:
        listing = _scan_manifest(root, Path(manifest))
        if listing is None:
            raise UploadError(f"Could not find a file column and a label column in {Path(manifest).name!r}; name "
                              "them e.g. 'filename' and 'label'.")
        return listing
    root = _strip_chain(root)
    manifests = _find_manifests(root)
    for candidate in manifests:  # a manifest whose label column is named like one wins
        listing = _scan_manifest(root, candidate, by_content=False)
        if listing is not None:
            return listing
    folders = _scan_folders(root)
    if len({i.label for i in folders.items}) >= 2:
        return folders  # class folders beat a guess at some CSV's columns
    for candidate in manifests:
        listing = _scan_manifest(root, candidate, by_content=True)
        if listing is not None:
            return listing
    return folders


def _scan_folders(root: Path) -> Listing:
    listing = Listing(root=root, layout="folders")
    dirs, files = _children(root)
    loose = [f for f in files if f.suffix.lower() in AUDIO_EXTENSIONS]
    if loose:
        listing.warnings.append(f"{len(loose)} audio file(s) at the top level are not inside a class folder and "
                                "were ignored; move each into a folder named after its class.")
        listing.skipped += [Skipped(f.name, "not inside a class folder (no label)") for f in loose]
    split_dirs = [d for d in dirs if d.name.lower() in SPLIT_NAMES]
    if dirs and len(split_dirs) == len(dirs) and all(_children(d)[0] for d in dirs):
        listing.layout = "folders:splits"
        for split_dir in dirs:
            sub_dirs, sub_files = _children(split_dir)
            _collect_classes(listing, root, sub_dirs, fold=split_dir.name.lower())
            n_loose = sum(f.suffix.lower() in AUDIO_EXTENSIONS for f in sub_files)
            if n_loose:
                listing.warnings.append(f"{n_loose} audio file(s) directly in {split_dir.name!r} have no class "
                                        "folder and were ignored.")
        return listing
    _collect_classes(listing, root, dirs, fold=None)
    return listing


def _collect_classes(listing: Listing, root: Path, dirs: list[Path], fold: str | None) -> None:
    empty: list[str] = []
    for d in dirs:
        label = nfc(d.name)
        n = 0
        for f in _walk(d):
            if f.suffix.lower() in AUDIO_EXTENSIONS:
                listing.items.append(Item(f, label, fold))
                n += 1
            else:
                listing.skipped.append(Skipped(_rel(f, root), f"not an audio file ({f.suffix or 'no extension'})"))
        if n == 0:
            empty.append(label)
    if empty:
        listing.warnings.append(f"Folder(s) with no audio files were ignored: {', '.join(empty[:10])}"
                                f"{' ...' if len(empty) > 10 else ''}.")


def _find_manifests(root: Path) -> list[Path]:
    """CSV/TSV/JSON files within two folder levels of root, shallowest first."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d)) if depth < 2 else []
        found += [(depth, Path(dirpath) / f) for f in sorted(filenames)
                  if Path(f).suffix.lower() in MANIFEST_EXTENSIONS and not is_junk(f)]
    return [p for _, p in sorted(found, key=lambda t: (t[0], str(t[1])))]


def _read_table(path: Path) -> list[dict[str, str]] | None:
    """Rows of a CSV/TSV/JSON/JSONL manifest as string dicts, or None when it is not tabular."""
    try:
        if path.stat().st_size > 256 << 20:
            return None
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif suffix == ".json":
            data = json.loads(text)
        else:
            delim = "\t" if suffix == ".tsv" else None
            if delim is None:
                try:
                    delim = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
                except csv.Error:
                    delim = ","
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
                    for row in csv.DictReader(io.StringIO(text), delimiter=delim)]
    except (ValueError, csv.Error):
        return None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if lists:
            data = max(lists, key=len)
        elif all(isinstance(v, str | int) for v in data.values()):
            data = [{"file": k, "label": str(v)} for k, v in data.items()]
        else:
            return None
    if not isinstance(data, list):
        return None
    return [{str(k).strip(): "" if v is None else str(v).strip() for k, v in row.items()
             if isinstance(v, str | int | float) or v is None}
            for row in data if isinstance(row, dict)]


class _Resolver:
    """Find the file a manifest value names, only ever inside the dataset root."""

    def __init__(self, root: Path, manifest: Path) -> None:
        self.root = Path(os.path.abspath(root))
        bases = [manifest.parent, manifest.parent.parent, root]
        bases += [Path(d) for d, _, _ in os.walk(root) if Path(d).name.lower() in ("audio", "audios", "wav", "wavs",
                                                                                  "clips", "sounds", "data")]
        self.bases = []
        for b in bases:
            b = Path(os.path.abspath(b))
            if b.is_relative_to(self.root) and b not in self.bases:
                self.bases.append(b)
        by_name: dict[str, list[Path]] = {}
        for f in _walk(root):
            if f.suffix.lower() in AUDIO_EXTENSIONS:
                by_name.setdefault(f.name, []).append(f)
        self.by_name = by_name

    def __call__(self, value: str) -> Path | None:
        value = value.strip().replace("\\", "/")
        if not value or "\x00" in value:
            return None
        rel = value.lstrip("/")
        for base in self.bases:
            cand = Path(os.path.normpath(base / rel))
            if cand.is_relative_to(self.root) and cand.is_file():
                return cand
        hits = self.by_name.get(Path(value).name, [])
        return hits[0] if len(hits) == 1 else None


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.lower().strip(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def _scan_manifest(root: Path, manifest: Path, by_content: bool = True) -> Listing | None:
    rows = _read_table(manifest)
    if not rows:
        return None
    columns = list(dict.fromkeys(k for row in rows[:50] for k in row))
    resolve = _Resolver(root, manifest)
    sample = rows[:200]
    file_col = _pick(columns, FILE_COLUMNS)
    if file_col is None or sum(resolve(r.get(file_col, "")) is not None for r in sample) == 0:
        scores = {c: sum(resolve(r.get(c, "")) is not None for r in sample) for c in columns}
        file_col = max(scores, key=scores.get) if scores and max(scores.values()) > 0 else None
    if file_col is None:
        return None
    fold_col = _pick([c for c in columns if c != file_col], FOLD_COLUMNS)
    label_col = _pick([c for c in columns if c not in (file_col, fold_col)], LABEL_COLUMNS)
    if label_col is None and by_content:
        label_col = _label_by_content(rows, [c for c in columns if c not in (file_col, fold_col)])
    if label_col is None:
        return None
    listing = Listing(root=root, layout=f"manifest:{_rel(manifest, root)}")
    missing = 0
    listed: set[Path] = set()
    for i, row in enumerate(rows):
        value = row.get(file_col, "")
        label = nfc(row.get(label_col, ""))
        path = resolve(value)
        if path is None:
            missing += 1
            listing.skipped.append(Skipped(value or f"row {i + 2}", "listed in the manifest but not found"))
            continue
        if not label:
            listing.skipped.append(Skipped(_rel(path, root), "no label in the manifest"))
            continue
        if path in listed:
            continue
        listed.add(path)
        fold = row.get(fold_col, "").strip() if fold_col else None
        listing.items.append(Item(path, label, fold or None))
    if not listing.items:
        return None
    if missing:
        listing.warnings.append(f"{missing} file(s) listed in {manifest.name!r} were not found and were skipped.")
    unlisted = sum(len(v) for v in resolve.by_name.values()) - len(listed)
    if unlisted > 0:
        listing.warnings.append(f"{unlisted} audio file(s) are not listed in {manifest.name!r} and were ignored.")
    return listing


def _label_by_content(rows: list[dict[str, str]], columns: list[str]) -> str | None:
    """The text column with few distinct values (2 .. half the rows): most likely the class."""
    best, best_score = None, 0.0
    n = len(rows)
    for c in columns:
        values = Counter(r.get(c, "") for r in rows)
        values.pop("", None)
        k = len(values)
        if k < 2 or k > max(2, n // 2):
            continue
        numeric = all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in values)
        score = sum(values.values()) / n - (0.5 if numeric else 0.0)
        if score > best_score:
            best, best_score = c, score
    return best
