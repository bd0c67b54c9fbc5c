"""Build the training dataset: decode every file once, stream windows into Arrow, split by file.

Memory stays flat with dataset size because clips go straight from the decoder into an Arrow file
under the workspace (memory-mapped afterwards). A second build of the same unchanged source with the
same settings reuses that file instead of decoding again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from astapp.core.config import AudioConfig, IngestLimits
from astapp.core.errors import AudioDecodeError, DatasetError, user_error
from astapp.core.fsutil import atomic_write_text
from astapp.data.audio import decode
from astapp.data.folds import (  # noqa: F401 - API
    check_fold,
    describe_split,
    fold_order,
    source_groups,
    split_files,
    validation_fold,
)
from astapp.data.ingest import Item, Listing, rel_path, resolve, scan
from astapp.data.ingest import labels as multilabels
from astapp.data.ingest.labels import summary as label_summary
from astapp.data.report import ClipStat, UntrainableDatasetError, ValidationReport, build_report

Progress = Callable[[float, str], None]
CACHE_VERSION = 2
SPLIT_FILE = "split.json"  # beside data.arrow: labels, the rows of each split, the report
MAX_SPLIT_SECONDS = 600.0  # in split mode, longer recordings are read up to this much (memory bound)


@dataclass
class DatasetBundle:
    report: ValidationReport
    dataset: object  # datasets.DatasetDict with "train" and "validation"
    labels: list[str]
    root: Path
    cache_dir: Path | None = None
    split: str = ""  # how it was split: "fold:<name>", "cv:I/K", "stratified" or "stratified by <groups>"
    file_folds: dict[str, str | None] = field(default_factory=dict)  # each decoded file's manifest fold
    noise: list[Path] = field(default_factory=list)  # the dataset's background-noise clips (not a class)
    targets: dict[str, np.ndarray] | None = None  # multi-label: each split's (rows, labels) 0/1 targets


@dataclass
class _Decoded:
    item: Item
    rel: str
    wav: np.ndarray | None
    stat: ClipStat | None
    reason: str | None


def to_windows(wav: np.ndarray, cfg: AudioConfig) -> list[np.ndarray]:
    """Pad short clips to `min_seconds`; crop long ones, or split them into full `max_seconds` windows.

    In split mode a leftover tail of at least half a window becomes one more window aligned to the
    end of the clip; shorter tails are dropped.
    """
    n_min = max(1, int(round(cfg.min_seconds * cfg.sample_rate)))
    n_max = max(n_min, int(round(cfg.max_seconds * cfg.sample_rate)))
    if len(wav) < n_min:
        return [np.pad(wav, (0, n_min - len(wav))).astype(np.float32)]
    if len(wav) <= n_max:
        return [wav]
    if cfg.long_clips != "split":
        return [wav[:n_max]]
    windows = [wav[s:s + n_max] for s in range(0, len(wav) - n_max + 1, n_max)]
    tail = len(wav) - len(windows) * n_max
    if tail >= n_max // 2:
        windows.append(wav[len(wav) - n_max:])
    return windows


def _decode_one(item: Item, root: Path, cfg: AudioConfig) -> _Decoded:
    rel = rel_path(item.path, root)
    limit = cfg.max_seconds if cfg.long_clips != "split" else MAX_SPLIT_SECONDS
    try:
        wav, info = decode(item.path, cfg.sample_rate, max_seconds=limit)
    except AudioDecodeError as exc:
        return _Decoded(item, rel, None, None, str(exc))
    except (OSError, MemoryError) as exc:
        return _Decoded(item, rel, None, None, f"could not read ({type(exc).__name__})")
    digest = hashlib.blake2b(wav.tobytes(), digest_size=12).hexdigest()
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    stat = ClipStat(rel, item.label, round(float(info.duration), 4), info.sample_rate, peak, digest)
    return _Decoded(item, rel, wav, stat, None)


def _decode_all(listing: Listing, cfg: AudioConfig, progress: Progress | None) -> Iterator[_Decoded]:
    """Decode in a few threads (soundfile and soxr release the GIL), in order, with bounded look-ahead."""
    items = listing.items
    workers = max(1, min(4, os.cpu_count() or 1))
    n = len(items)
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[_Decoded]] = deque()
        it = iter(items)
        for item in it:
            pending.append(pool.submit(_decode_one, item, listing.root, cfg))
            if len(pending) >= 2 * workers:
                break
        done = 0
        while pending:
            result = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_decode_one, nxt, listing.root, cfg))
            done += 1
            if progress and (done == n or done % 25 == 0):
                progress(done / max(n, 1), f"Decoded {done}/{n} files")
            yield result


def _make_report(listing: Listing, stats: list[ClipStat], failures: list[dict[str, str]],
                 cfg: AudioConfig, folds: Counter) -> ValidationReport:
    skipped = [{"path": s.path, "reason": s.reason} for s in listing.skipped] + failures
    multi = listing.label_mode == "multi"
    listed = {lab for i in listing.items for lab in i.labels} if multi else {i.label for i in listing.items}
    report = build_report(stats, sorted(listed), skipped, listing.warnings, cfg,
                          layout=listing.layout, root=str(listing.root), folds=dict(folds),
                          n_listed=len(listing.items),
                          label_sets={rel_path(i.path, listing.root): i.labels for i in listing.items} if multi
                          else None, multilabel=label_summary(listing.items) if multi else None)
    if listing.noise_folder:
        report.noise = noise_summary(listing, cfg)
    if folds:
        report.folds_from = listing.folds_from or ("the split folders" if listing.layout == "folders:splits"
                                                   else "the manifest")
    report.grouping = source_groups([s.path for s in stats]).how if stats else ""
    return report


def noise_summary(listing: Listing, cfg: AudioConfig) -> dict:
    """Files and seconds of the dataset's noise folder; undecodable files are skipped and listed."""
    seconds, ok, skipped = 0.0, 0, []
    for path in listing.noise:
        try:
            _, info = decode(path, cfg.sample_rate, max_seconds=MAX_SPLIT_SECONDS)
        except (AudioDecodeError, OSError, MemoryError) as exc:
            skipped.append({"path": rel_path(path, listing.root), "reason": str(exc) or type(exc).__name__})
            continue
        ok += 1
        seconds += float(info.duration)
    return {"folder": listing.noise_folder, "files": ok, "seconds": round(seconds, 3), "skipped": skipped}


def _source_listing(source: str | Path, workspace: Path, limits: IngestLimits | None) -> Listing:
    root, manifest = resolve(source, workspace, limits)
    return scan(root, manifest=manifest)


def inspect_source(source: str | Path, workspace: str | Path, audio_cfg: AudioConfig | None = None,
                   limits: IngestLimits | None = None, progress: Progress | None = None) -> ValidationReport:
    """The validation report for a source (decodes every file, writes no Arrow)."""
    cfg = audio_cfg or AudioConfig()
    listing = _source_listing(source, Path(workspace), limits)
    stats, failures, folds = [], [], Counter()
    for d in _decode_all(listing, cfg, progress):
        if d.stat is None:
            failures.append({"path": d.rel, "reason": d.reason or "could not decode"})
        else:
            stats.append(d.stat)
            if d.item.fold is not None:
                folds[d.item.fold] += 1
    return _make_report(listing, stats, failures, cfg, folds)


# ---------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------

def _cache_key(listing: Listing, cfg: AudioConfig, val_split: float, seed: int, val_fold: str) -> str:
    h = hashlib.sha256()
    head = {"v": CACHE_VERSION, "audio": asdict(cfg), "val_split": val_split, "seed": seed, "val_fold": val_fold,
            "layout": listing.layout, "root": os.path.abspath(listing.root),
            **({"multi": True} if listing.label_mode == "multi" else {})}
    h.update(json.dumps(head, sort_keys=True).encode())
    for item in listing.items:
        try:
            st = item.path.stat()
            sig = (st.st_size, st.st_mtime_ns)
        except OSError:
            sig = (-1, -1)
        h.update(f"\n{item.path}\t{item.label}\t{item.fold}\t{sig[0]}\t{sig[1]}".encode())
    for noise in listing.noise:  # the report lists the noise folder, so it is part of what was built
        h.update(f"\nnoise\t{noise}".encode())
    return h.hexdigest()[:20]


def _features(labels: list[str]):
    from datasets import ClassLabel, Features, List, Value

    return Features({"audio": List(Value("float32")), "label": ClassLabel(names=labels),
                     "path": Value("string"), "duration": Value("float32")})


def _load_cached(cache: Path, root: Path) -> DatasetBundle:
    from datasets import Dataset, DatasetDict

    meta = json.loads((cache / SPLIT_FILE).read_text(encoding="utf-8"))
    ds = Dataset.from_file(str(cache / "data.arrow"))
    dd = DatasetDict(train=ds.select(meta["train_rows"]), validation=ds.select(meta["val_rows"]))
    report = ValidationReport.from_dict(meta["report"])
    targets = None
    if meta.get("multi_hot") is not None:
        hot = multilabels.multi_hot(meta["multi_hot"], len(meta["labels"]))
        targets = {"train": hot[meta["train_rows"]], "validation": hot[meta["val_rows"]]}
    return DatasetBundle(report, dd, list(meta["labels"]), root, cache, str(meta.get("split", "")),
                         dict(meta.get("file_folds") or {}), targets=targets)


def build_dataset(source: str | Path, workspace: str | Path, audio_cfg: AudioConfig | None = None,
                  val_split: float = 0.2, seed: int = 0, limits: IngestLimits | None = None,
                  progress: Progress | None = None, val_fold: str = "", multi_label: bool = False) -> DatasetBundle:
    """Decode, validate and split a source into a DatasetDict; raises DatasetError if not trainable
    (`UntrainableDatasetError`, with the report, when the report has blocking errors).

    Multi-label (detected from the manifest, or `multi_label`): the classes are the single labels and
    the bundle's `targets` hold each row's 0/1 labels."""
    cfg = audio_cfg or AudioConfig()
    workspace = Path(workspace)
    if progress:
        progress(0.0, "Reading the dataset")
    listing = _source_listing(source, workspace, limits)
    if multi_label and listing.label_mode != "multi":
        listing.label_mode = multilabels.apply(listing.items, listing.warnings, forced=True)
    multi = listing.label_mode == "multi"
    cache_root = workspace / "datasets"
    cache = cache_root / _cache_key(listing, cfg, val_split, seed, val_fold)
    reused = _reuse_cached(cache, listing, progress)
    if reused is not None:
        return reused

    labels = sorted({lab for i in listing.items for lab in i.labels} if multi else {i.label for i in listing.items})
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root))
    try:
        files = _write_arrow(listing, cfg, labels, tmp / "data.arrow",
                             progress and (lambda f, m: progress(0.9 * f, m)))
        report = _make_report(listing, files.stats, files.failures, cfg, files.folds)
        train_f, val_f, how = split_files(files.labels, files.folds_of, val_split, seed, val_fold, files.paths)
        if not multi:
            _check_split(report, files.labels, train_f, val_f, how)
        elif report.trainable:
            multilabels.check_split(report.errors, report.warnings, [files.label_sets[i] for i in train_f],
                                    [files.label_sets[i] for i in val_f], how)
        if not report.trainable:
            raise UntrainableDatasetError(report)
        train_rows = [r for i in train_f for r in files.rows[i]]
        val_rows = [r for i in val_f for r in files.rows[i]]
        meta = {"labels": labels, "train_rows": train_rows, "val_rows": val_rows, "split": how,
                "report": report.to_dict(), "file_folds": dict(zip(files.paths, files.folds_of, strict=True)),
                **({"multi_hot": files.hot_rows} if multi else {})}
        atomic_write_text(tmp / SPLIT_FILE, json.dumps(meta, ensure_ascii=False))
        _publish(tmp, cache)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if user_error(exc, cache_root) is not None:
            raise user_error(exc, cache_root) from exc
        raise DatasetError(f"Could not write the prepared dataset under {cache_root} ({exc.strerror or exc}); "
                           "check that the folder is writable and try again.") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        progress(1.0, f"Dataset ready: {len(train_rows)} training and {len(val_rows)} validation examples")
    bundle = _load_cached(cache, listing.root)
    bundle.noise = list(listing.noise)
    return bundle


def _reuse_cached(cache: Path, listing: Listing, progress: Progress | None) -> DatasetBundle | None:
    """The bundle an earlier build of the same source and settings left in `cache`, or None (a broken one
    is removed)."""
    if (cache / SPLIT_FILE).is_file() and (cache / "data.arrow").is_file():
        try:
            bundle = _load_cached(cache, listing.root)
            bundle.noise = list(listing.noise)
            if progress:
                progress(1.0, "Reused the decoded dataset from the cache")
            return bundle
        except (OSError, ValueError, KeyError):
            shutil.rmtree(cache, ignore_errors=True)
    return None


@dataclass
class _Files:
    """What streaming the decoded files into Arrow found; the per-file lists are in decoding order."""

    stats: list[ClipStat] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)  # {path, reason} of undecodable files
    folds: Counter = field(default_factory=Counter)  # clips per manifest fold
    rows: list[list[int]] = field(default_factory=list)  # each file's Arrow rows (its windows)
    labels: list[str] = field(default_factory=list)
    label_sets: list[tuple[str, ...]] = field(default_factory=list)
    folds_of: list[str | None] = field(default_factory=list)  # each file's manifest fold
    paths: list[str] = field(default_factory=list)
    hot_rows: list[list[int]] = field(default_factory=list)  # each row's label ids


def _write_arrow(listing: Listing, cfg: AudioConfig, labels: list[str], path: Path,
                 progress: Progress | None) -> _Files:
    """Decode every file and stream its windows into the Arrow file at `path` (memory stays flat)."""
    from datasets.arrow_writer import ArrowWriter

    multi = listing.label_mode == "multi"
    label_id = {lab: i for i, lab in enumerate(labels)}
    n_max = int(round(cfg.max_seconds * cfg.sample_rate))
    batch = max(8, int((64 << 20) // max(n_max * 4, 1)))  # ~64 MB of audio per Arrow batch
    writer = ArrowWriter(features=_features(labels or ["_"]), path=str(path), writer_batch_size=batch)
    files = _Files()
    row = 0
    try:
        for d in _decode_all(listing, cfg, progress):
            if d.stat is None or d.wav is None:
                files.failures.append({"path": d.rel, "reason": d.reason or "could not decode"})
                continue
            files.stats.append(d.stat)
            if d.item.fold is not None:
                files.folds[d.item.fold] += 1
            rows = []
            for w in to_windows(d.wav, cfg):
                ids = [label_id[lab] for lab in d.item.labels] if multi else [label_id[d.item.label]]
                writer.write({"audio": w, "label": ids[0] if ids else 0, "path": d.rel,
                              "duration": len(w) / cfg.sample_rate})
                files.hot_rows.append(ids)
                rows.append(row)
                row += 1
            files.rows.append(rows)
            files.labels.append(d.item.label)
            files.label_sets.append(d.item.labels)
            files.folds_of.append(d.item.fold)
            files.paths.append(d.rel)
    finally:
        writer.finalize()
        writer.close()
    return files


def _publish(tmp: Path, cache: Path) -> None:
    """Move the finished build into place; another job that built the same cache at the same moment wins."""
    shutil.rmtree(cache, ignore_errors=True)
    try:
        os.replace(tmp, cache)
    except OSError:  # another job built the same cache at the same moment: use theirs
        if not (cache / SPLIT_FILE).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _check_split(report: ValidationReport, labels: list[str], train: list[int], val: list[int], how: str) -> None:
    """Warn (or block) when a split misses a class, e.g. a manifest fold without some class."""
    if not report.trainable:
        return
    in_train = {labels[i] for i in train}
    in_val = {labels[i] for i in val}
    if not val:
        report.errors.append("The validation split is empty; add more clips or choose a larger validation split.")
        return
    if not train:
        report.errors.append("The training split is empty; the manifest's folds put every clip in validation.")
        return
    missing_train = sorted(set(labels) - in_train)
    if missing_train:
        report.errors.append(f"No training clips for class(es) {', '.join(map(repr, missing_train))} "
                             f"(split: {how}); add clips for them or change the folds.")
    missing_val = sorted(set(labels) - in_val)
    if missing_val:
        report.warnings.append(f"The validation split ({how}) has no clips of {', '.join(map(repr, missing_val))}; "
                               "their accuracy cannot be measured.")

