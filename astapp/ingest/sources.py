"""Where a dataset comes from: a zip (extracted into the workspace, once), a folder, a manifest, or a
saved / Hugging Face dataset (written out as files plus a manifest)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from astapp.audio import AUDIO_EXTENSIONS
from astapp.config import IngestLimits
from astapp.errors import UploadError
from astapp.ingest.layout import FILE_COLUMNS, LABEL_COLUMNS, MANIFEST_EXTENSIONS, walk
from astapp.ingest.zipsafe import extract_zip, file_digest


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
        if not any(p.suffix.lower() in AUDIO_EXTENSIONS for p in walk(root)):
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
