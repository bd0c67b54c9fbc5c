"""Layout discovery: which files of a dataset folder are clips, and what label (and fold) each has.

One folder per class (optionally inside wrapper folders, or split into train/val folders), or a
CSV/TSV/JSON manifest whose file, label and fold columns are found by name or by content.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from astapp.core.errors import UploadError
from astapp.data.audio import AUDIO_EXTENSIONS
from astapp.data.ingest import labels

MANIFEST_EXTENSIONS = {".csv", ".tsv", ".json", ".jsonl"}
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "__macosx", "ehthumbs.db", "$recycle.bin"}
SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing", "dev", "eval"}
VALIDATION_NAMES = ("validation", "valid", "val", "dev", "eval", "test", "testing")
FILE_COLUMNS = ("file", "filename", "file_name", "filepath", "file_path", "path", "audio", "audio_path",
                "audio_file", "audio_filename", "clip", "clip_name", "wav", "wav_file", "fname", "slice_file_name")
LABEL_COLUMNS = ("label", "labels", "category", "class", "class_name", "classname", "label_name", "tag",
                 "species", "genre", "target")
FOLD_COLUMNS = ("fold", "split", "set", "subset", "partition")
# ESC-50's file names: {fold}-{Freesound clip id}-{take}-{class id}.wav
ESC50_NAME = re.compile(r"^(\d+)-(\d+)-[A-Za-z]-\d+$")
# a top-level folder of background noise (Speech Commands' convention), not a class
NOISE_FOLDERS = ("_background_noise_", "_noise_", "background_noise")
WARNINGS_FILE = ".astapp-warnings.txt"  # what materialising a table noticed, shown in the report


@dataclass
class Item:
    path: Path
    label: str
    fold: str | None = None
    labels: tuple[str, ...] = ()  # multi-label: every label of the clip (label is then their joined name)


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
    noise: list[Path] = field(default_factory=list)  # clips of a top-level noise folder (not a class)
    noise_folder: str = ""
    folds_from: str = ""  # where the items' folds come from, when they have any
    label_mode: str = "single"  # "multi" when a manifest gives clips several labels


def is_noise_folder(name: str) -> bool:
    return name.strip().lower() in NOISE_FOLDERS


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def is_junk(name: str) -> bool:
    """macOS/Windows litter and hidden files, ignored silently everywhere."""
    low = name.lower()
    return low in JUNK_NAMES or name.startswith(".") or name.startswith("~$")


def walk(root: Path):
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


def rel_path(path: Path, root: Path) -> str:
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
        return _with_notes(listing)
    root = _strip_chain(root)
    return _with_noise(_scan_root(root), root)


def _with_noise(listing: Listing, root: Path) -> Listing:
    """Attach the clips of the top-level noise folder (used by AddBackgroundNoise, never labelled)."""
    for d in _children(root)[0]:
        if is_noise_folder(d.name) and not listing.noise_folder:
            listing.noise_folder = d.name
            for f in walk(d):
                if f.suffix.lower() in AUDIO_EXTENSIONS:
                    listing.noise.append(f)
                else:
                    listing.skipped.append(Skipped(rel_path(f, root), "not an audio file (in the noise folder)"))
    noise = set(listing.noise)
    listing.items = [i for i in listing.items if i.path not in noise]
    return listing


def _scan_root(root: Path) -> Listing:
    manifests = _find_manifests(root)
    for candidate in manifests:  # a manifest whose label column is named like one wins
        listing = _scan_manifest(root, candidate, by_content=False)
        if listing is not None:
            return _with_notes(listing)
    folders = _scan_folders(root)
    if len({i.label for i in folders.items}) >= 2:
        return folders  # class folders beat a guess at some CSV's columns
    for candidate in manifests:
        listing = _scan_manifest(root, candidate, by_content=True)
        if listing is not None:
            return listing
    return folders


def _with_notes(listing: Listing) -> Listing:
    """Add the warnings a materialised Hub table left beside its manifest."""
    try:
        notes = (listing.root / WARNINGS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return listing
    listing.warnings += [n for n in notes if n.strip()]
    return listing


def _scan_folders(root: Path) -> Listing:
    listing = Listing(root=root, layout="folders")
    dirs, files = _children(root)
    dirs = [d for d in dirs if not is_noise_folder(d.name)]
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
    _folds_from_names(listing)
    return listing


def _folds_from_names(listing: Listing) -> None:
    """Class folders of ESC-50 clips carry the official folds in their names: when every file follows
    `fold-source-take-target`, its fold is the first number, as the dataset's own manifest would say. A
    validation fold then keeps the published protocol (and `--val-fold 4` works on a folder zip)."""
    hits = [ESC50_NAME.match(i.path.stem) for i in listing.items]
    if len(hits) < 2 or not all(hits) or len({h.group(1) for h in hits}) < 2:
        return
    for item, h in zip(listing.items, hits, strict=True):
        item.fold = str(int(h.group(1)))
    listing.folds_from = "file names (ESC-50: fold-source-take-target)"


def _collect_classes(listing: Listing, root: Path, dirs: list[Path], fold: str | None) -> None:
    empty: list[str] = []
    for d in dirs:
        label = nfc(d.name)
        n = 0
        for f in walk(d):
            if f.suffix.lower() in AUDIO_EXTENSIONS:
                listing.items.append(Item(f, label, fold))
                n += 1
            else:
                listing.skipped.append(Skipped(rel_path(f, root), f"not an audio file ({f.suffix or 'no extension'})"))
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
    return [{str(k).strip(): "" if v is None else json.dumps(v, ensure_ascii=False) if isinstance(v, list)
             else str(v).strip() for k, v in row.items() if isinstance(v, str | int | float | list) or v is None}
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
        for f in walk(root):
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
    hot = [] if label_col else labels.multi_hot_columns(rows, [c for c in columns if c not in (file_col, fold_col)])
    if hot:
        rows = [{**r, labels.MULTI_PREFIX: labels.hot_cell(r, hot)} for r in rows]
        label_col = labels.MULTI_PREFIX
    if label_col is None and by_content:
        label_col = _label_by_content(rows, [c for c in columns if c not in (file_col, fold_col)])
    if label_col is None:
        return None
    listing = Listing(root=root, layout=f"manifest:{rel_path(manifest, root)}")
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
            listing.skipped.append(Skipped(rel_path(path, root), "no label in the manifest"))
            continue
        if path in listed:
            continue
        listed.add(path)
        fold = row.get(fold_col, "").strip() if fold_col else None
        listing.items.append(Item(path, label, fold or None))
    if not listing.items:
        return None
    listing.label_mode = labels.apply(listing.items, listing.warnings)
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
