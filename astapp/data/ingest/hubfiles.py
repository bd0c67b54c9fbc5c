"""Datasets as the Hub ships them: Parquet/Arrow files (`data/train-00000-of-00001.parquet`, ...) whose
`audio` column holds the encoded bytes, read offline through `datasets` and written out once as audio
files plus a manifest (file, label, fold), so the rest of ingestion (report, folds, limits) is the
same as for a zip of clips.

Untrusted tables are checked like zips: row counts and inflated sizes come from the Parquet footer
before anything is read (a tiny file expanding to GBs is refused), and the bytes actually written are
counted against the same caps while streaming.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from astapp.core.config import IngestLimits
from astapp.core.errors import UploadError
from astapp.data.ingest.layout import (
    FILE_COLUMNS,
    FOLD_COLUMNS,
    LABEL_COLUMNS,
    SPLIT_NAMES,
    WARNINGS_FILE,
    is_junk,
    rel_path,
)

TABLE_EXTENSIONS = {".parquet", ".arrow"}
RATIO_GRACE_BYTES = 8 << 20  # small tables may compress well (silence, metadata) without being bombs
HELD_OUT = "test"  # with a validation split as well, the test split is kept out of training
MANIFEST = "manifest.csv"
BATCH_BYTES = 64 << 20  # memory of one batch read from a table


def find_tables(root: Path, max_depth: int = 4) -> list[Path]:
    """Parquet/Arrow files under root (a few levels deep, junk pruned), in a stable order."""
    found: list[Path] = []
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d)) if depth < max_depth else []
        found += [Path(dirpath) / f for f in sorted(filenames)
                  if Path(f).suffix.lower() in TABLE_EXTENSIONS and not is_junk(f)]
    return found


def split_of(path: Path) -> str:
    """The split a Hub file belongs to: `train-00000-of-00002.parquet`, `esc50-test.arrow`, `validation/x.parquet`."""
    tokens = [t for t in re.split(r"[-_.\s]+", path.stem.lower()) if t]
    named = [t for t in tokens if t in SPLIT_NAMES]
    if named:
        return named[0]
    if path.parent.name.lower() in SPLIT_NAMES:
        return path.parent.name.lower()
    return "train"


def tables_by_split(tables: Iterable[Path]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for t in tables:
        out.setdefault(split_of(t), []).append(t)
    return out


def check_tables(tables: list[Path], root: Path, limits: IngestLimits) -> int:
    """Refuse corrupt files and bombs from the Parquet footer alone (rows, inflated bytes, ratio); return the
    rows per read batch that keep one batch near BATCH_BYTES even if every row repeats the largest value
    (dictionary encoding lets a 40 MB value stand for thousands of rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = total = largest = 0
    for t in tables:
        name = rel_path(t, root)
        if t.suffix.lower() != ".parquet":
            try:
                with pa.memory_map(str(t)) as src:
                    pa.ipc.open_stream(src).schema  # noqa: B018  # a corrupt header fails here
            except (pa.ArrowInvalid, OSError):
                try:
                    pa.ipc.open_file(str(t)).schema  # noqa: B018
                except (pa.ArrowInvalid, OSError):
                    raise UploadError(f"{name!r} is not a readable Arrow file (corrupt or another format); export "
                                      "the dataset again and re-upload.") from None
            continue
        try:
            meta = pq.ParquetFile(str(t)).metadata
        except (pa.ArrowException, OSError) as exc:
            raise UploadError(f"{name!r} is not a readable Parquet file ({str(exc)[:120]}); it may be truncated or "
                              "corrupt: download or export it again and re-upload.") from None
        inflated = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if group.total_byte_size > limits.max_file_bytes:
                raise UploadError(f"A row group of {name!r} inflates to {group.total_byte_size / 2**20:.0f} MB, over "
                                  f"the {limits.max_file_bytes / 2**20:.0f} MB limit; write it with smaller row groups "
                                  "(e.g. row_group_size=100).")
            inflated += group.total_byte_size
            largest = max([largest] + [group.column(c).total_uncompressed_size for c in range(group.num_columns)])
        size = max(t.stat().st_size, 1)
        if inflated > RATIO_GRACE_BYTES and inflated > limits.max_ratio * size:
            raise UploadError(f"{name!r} is compressed suspiciously well ({inflated / size:.0f} to 1), like a "
                              "Parquet bomb; it was not read. Upload the real audio dataset.")
        rows += meta.num_rows
        total += inflated
        if rows > limits.max_members:
            raise UploadError(f"The dataset holds more than {limits.max_members} rows, over the limit; upload a "
                              "smaller dataset.")
        if total > limits.max_total_bytes:
            raise UploadError(f"The dataset's tables inflate to more than {limits.max_total_bytes / 2**20:.0f} MB, "
                              "over the limit; upload a smaller dataset.")
    return int(max(1, min(256, BATCH_BYTES // max(largest, 1))))


def materialise_tables(root: Path, tables: list[Path], workspace: Path, limits: IngestLimits) -> Path:
    """Hub-layout tables under root -> workspace/tables/<name>-<digest>/ (audio files + manifest.csv), once."""
    batch = check_tables(tables, root, limits)
    h = hashlib.blake2b(digest_size=8)
    for t in tables:
        st = t.stat()
        h.update(f"{os.path.abspath(t)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    stem = re.sub(r"[^\w.-]+", "_", root.name)[:40] or "tables"
    out = Path(workspace) / "tables" / f"{stem}-{h.hexdigest()}"
    if (out / MANIFEST).is_file():
        return out
    import datasets

    by_split = tables_by_split(tables)
    kinds = {t.suffix.lower().lstrip(".") for t in tables}
    if len(kinds) > 1:
        raise UploadError("The upload mixes Parquet and Arrow files; keep one format per dataset.")
    kind = kinds.pop()
    try:
        dd = datasets.load_dataset(kind, data_files={s: [str(t) for t in ts] for s, ts in by_split.items()},
                                   streaming=True, **({"batch_size": batch} if kind == "parquet" else {}))
    except Exception as exc:  # noqa: BLE001  # datasets raises many types for a bad table
        raise UploadError(f"The dataset files could not be read ({type(exc).__name__}: {str(exc)[:160]}); they may "
                          "be corrupt: export them again and re-upload.") from None
    return write_dataset_files(dict(dd), out, root.name, limits, metadata_names(root))


def metadata_names(root: Path) -> dict[str, list[str]]:
    """Class names per column from dataset_info.json or the README's YAML front matter, for tables written
    without `datasets`' own schema metadata (their label column is then plain integers)."""
    import yaml

    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("dataset_info.json"))[:4] + sorted(root.rglob("README.md"))[:4]:
        try:
            text = path.read_text(encoding="utf-8")[:1 << 20]
            if path.suffix == ".json":
                feats = (json.loads(text) or {}).get("features") or {}
                items = [{"name": k, **v} for k, v in feats.items() if isinstance(v, dict)]
            else:
                head = text.split("---")[1] if text.startswith("---") and text.count("---") >= 2 else ""
                info = (yaml.safe_load(head) or {}).get("dataset_info") or {}
                items = [f for i in (info if isinstance(info, list) else [info]) if isinstance(i, dict)
                         for f in i.get("features") or [] if isinstance(f, dict)]
        except (OSError, ValueError, yaml.YAMLError, AttributeError, IndexError):
            continue
        for f in items:
            names, dtype = f.get("names"), f.get("dtype")
            if names is None and isinstance(dtype, dict):
                names = (dtype.get("class_label") or {}).get("names")
            if isinstance(names, dict):
                names = [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
            if isinstance(names, list) and names and f.get("name"):
                found.setdefault(str(f["name"]), [str(n) for n in names])
    return found


def dataset_columns(features, name: str) -> tuple[str, str, str | None, list[str]]:
    """(audio, label, fold or None, warnings): names beat integer ids, a ClassLabel gives names."""
    import datasets

    feats = dict(features or {})
    audio = next((c for c, f in feats.items() if isinstance(f, datasets.Audio)), None)
    audio = audio or next((c for c, f in feats.items() if isinstance(f, dict) and "bytes" in f), None)
    audio = audio or next((c for c in FILE_COLUMNS if c in feats), None)
    if audio is None:
        raise UploadError(f"Dataset {name!r} has no audio column (columns: {', '.join(feats) or 'none'}); it needs "
                          "one holding the audio bytes, like the Hub's 'audio' {bytes, path}.")
    rest = [c for c in feats if c != audio]
    label = next((c for c in rest if isinstance(feats[c], datasets.ClassLabel)), None)
    by_name = [c for n in LABEL_COLUMNS for c in rest if c.lower() == n]
    texts = [c for c in by_name if getattr(feats[c], "dtype", "") in ("string", "large_string")]
    label = label or (texts[0] if texts else None) or (by_name[0] if by_name else None)
    if label is None:
        raise UploadError(f"Dataset {name!r} has no label column (columns: {', '.join(feats)}); name one e.g. "
                          "'label' or 'category'.")
    warnings = []
    if not isinstance(feats[label], datasets.ClassLabel) and "int" in str(getattr(feats[label], "dtype", "")):
        warnings.append(f"The labels in {label!r} are integers without names; they are used as the class names. "
                        "Add a column of names (e.g. 'category') or a ClassLabel to see real names.")
    fold = next((c for n in FOLD_COLUMNS for c in rest if c.lower() == n and c != label), None)
    return audio, label, fold, warnings


def write_dataset_files(splits: dict, out: Path, name: str, limits: IngestLimits | None = None,
                        class_names: dict[str, list[str]] | None = None) -> Path:
    """Write each split's audio bytes as files plus manifest.csv (file, label, fold), counted against the caps.

    The fold is the split when there are several (a `test` split is held out when a validation split
    exists too), else the table's own fold column, so the fold logic and cross-validation apply.
    """
    import datasets

    limits = limits or IngestLimits()
    if (out / MANIFEST).is_file():
        return out
    splits = {s: p for s, p in splits.items() if p is not None}
    names = {s.lower() for s in splits}
    held = [s for s in splits if s.lower() == HELD_OUT] if names & {"validation", "valid", "val", "dev"} else []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=out.parent))
    rows: list[tuple[str, str, str]] = []
    warnings: list[str] = []
    total = 0
    try:
        for split, part in splits.items():
            if split in held:
                warnings.append(f"The {split!r} split is held out (not used for training or validation).")
                continue
            audio_col, label_col, fold_col, notes = dataset_columns(part.features, name)
            named = (class_names or {}).get(label_col)  # class names from dataset_info.json / README metadata
            warnings += [n for n in notes if n not in warnings and not named]
            part = part.cast_column(audio_col, datasets.Audio(decode=False))
            label_feature = part.features[label_col] if part.features else None
            folder = os.path.join(tmp, "audio", split or "all")
            os.makedirs(folder, exist_ok=True)
            for i, row in enumerate(_rows(part, name)):
                audio = row.get(audio_col) or {}
                if isinstance(audio, str):
                    audio = {"path": audio}
                label = row.get(label_col)
                if label is None or str(label).strip() == "":
                    continue
                if isinstance(label_feature, datasets.ClassLabel) and isinstance(label, int) and label >= 0:
                    label = label_feature.int2str(label)
                elif named and isinstance(label, int) and 0 <= label < len(named):
                    label = named[label]
                data = audio.get("bytes")
                if not data:
                    continue  # a path into someone else's disk is never followed
                total += len(data)
                if len(data) > limits.max_file_bytes or total > limits.max_total_bytes:
                    raise UploadError(f"The audio in {name!r} inflates past the "
                                      f"{min(limits.max_total_bytes, limits.max_file_bytes) / 2**20:.0f} MB limit; "
                                      "reading was stopped. Upload a smaller dataset.")
                if len(rows) >= limits.max_members:
                    raise UploadError(f"{name!r} holds more than {limits.max_members} clips, over the limit.")
                src_name = re.sub(r"[^\w.-]+", "_", os.path.basename(str(audio.get("path") or f"{i}.wav")))[-60:]
                name_i = f"{i:06d}_{src_name or 'clip.wav'}"
                with open(os.path.join(folder, name_i), "wb") as fh:  # plain strings: 10,000s of files
                    fh.write(data)
                fold = split if len(splits) - len(held) > 1 else (str(row.get(fold_col) or "") if fold_col else "")
                rows.append((f"audio/{split or 'all'}/{name_i}", str(label), fold))
        if not rows:
            raise UploadError(f"No clips with audio bytes and a label were found in {name!r}.")
        buf = io.StringIO()
        writer = csv.writer(buf)
        with_fold = any(r[2] for r in rows)
        writer.writerow(["file", "label", "fold"] if with_fold else ["file", "label"])
        writer.writerows(r if with_fold else r[:2] for r in rows)
        (tmp / MANIFEST).write_text(buf.getvalue(), encoding="utf-8")
        (tmp / WARNINGS_FILE).write_text("\n".join(warnings), encoding="utf-8")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _rows(part, name: str):
    """Iterate a (streamed) split; a table that breaks midway becomes one clear error."""
    import pyarrow as pa

    try:
        for i, row in enumerate(part):
            if i % 256 == 255:  # hand freed read buffers back: memory stays flat with the number of rows
                pa.default_memory_pool().release_unused()
            yield row
    except UploadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UploadError(f"Reading {name!r} failed midway ({type(exc).__name__}: {str(exc)[:160]}); the file may be "
                          "corrupt: export it again and re-upload.") from None
