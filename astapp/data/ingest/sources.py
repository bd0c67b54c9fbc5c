"""Where a dataset comes from: a zip (extracted into the workspace, once), a folder, a manifest, or a
saved / Hugging Face dataset (written out as files plus a manifest)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from astapp.core.config import IngestLimits
from astapp.core.errors import UploadError
from astapp.data.audio import AUDIO_EXTENSIONS
from astapp.data.ingest.hubfiles import find_tables, materialise_tables, write_dataset_files
from astapp.data.ingest.layout import MANIFEST_EXTENSIONS, walk
from astapp.data.ingest.zipsafe import extract_zip, file_digest


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
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return _materialise_saved(path, workspace), None
        return _tables_or(path, workspace, limits), None
    suffix = path.suffix.lower()
    if suffix in MANIFEST_EXTENSIONS:
        root = path.parent
        if not any(p.suffix.lower() in AUDIO_EXTENSIONS for p in walk(root)):
            root = root.parent  # e.g. ESC-50's meta/esc50.csv next to audio/
        return root, path
    if suffix == ".zip" or zipfile.is_zipfile(path):
        return _tables_or(_extract_cached(path, workspace, limits), workspace, limits), None
    raise UploadError(f"{path.name!r} is not a dataset: upload a .zip of class folders, choose a folder, or a "
                      "CSV/JSON manifest listing files and labels.")


def _tables_or(root: Path, workspace: Path, limits: IngestLimits) -> Path:
    """A folder of Hub-layout Parquet/Arrow files (and no audio files) is materialised; others stay as they are."""
    tables = find_tables(root)
    if not tables or any(p.suffix.lower() in AUDIO_EXTENSIONS for p in walk(root)):
        return root
    return materialise_tables(root, tables, workspace, limits)


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
    final = uploads / f"{stem}-{file_digest(zip_path)}"
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
    """A Dataset/DatasetDict's audio bytes as files plus manifest.csv (file, label, fold), folds kept."""
    import datasets

    return write_dataset_files(dict(ds) if isinstance(ds, datasets.DatasetDict) else {"": ds}, out, name)
