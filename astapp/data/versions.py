"""Dataset versions: `v1`, `v2`, ... of the session's dataset, each the previous one plus added clips.

A version is made from a parent and the pending additions (`astapp.data.additions`): the parent's clips are
hard-linked (copied where links fail) into a new folder `<workspace>/versions/vN/`, never rewritten, the
new clips go under `added/vN/<class>/` named by their source recording and time, and a `manifest.csv`
(file, label[, fold]) lists them all, so the version is an ordinary dataset folder that goes through the
upload pipeline (report, training, the CLI's `--data`). Its noise folder comes along.

The first dataset a version is made from (an upload, the example, recordings, corrected labels) is
registered as it is, without a copy: it becomes the version before the first additions, so the list reads
"v1 your upload · v2 v1 + 3 false alarms". Uploading another dataset later starts a new line from it;
versions keep their number, every one stays usable (`versions.json` lists them with what changed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from astapp.core.errors import AccessError, DatasetError
from astapp.core.fsutil import atomic_dir, atomic_write_text
from astapp.core.runfolder import read_json
from astapp.data.additions import Addition, PendingAdditions, clip_name
from astapp.data.folds import TRAIN_FOLDS
from astapp.data.ingest.layout import Listing

VERSIONS_DIR, INDEX_FILE, MANIFEST = "versions", "versions.json", "manifest.csv"
KIND_WORDS = {"confirmed": "confirmed", "relabelled": "relabelled", "false_alarm": "false alarms",
              "missed": "missed sounds"}


@dataclass
class Version:
    """One dataset version as the Data tab lists it and a run's config records it."""

    name: str  # v1, v2, ...
    root: str  # the dataset folder (a registered base is the original folder, not a copy)
    title: str  # what the dataset is called (the upload's name ...)
    parent: str = ""  # the version it adds to ("" for a registered base)
    created: float = 0.0
    clips: int = 0
    changes: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> {class: clips added}
    sources: list[str] = field(default_factory=list)  # the recordings the added clips came from

    @property
    def summary(self) -> str:
        """'v2 = v1 + 3 confirmed (dog 2, cat 1) + 2 false alarms → background (from night.wav)'."""
        if not self.parent:
            return f"{self.name} = {self.title} as chosen ({self.clips} clips)"
        parts = []
        for kind, by_class in self.changes.items():
            n = sum(by_class.values())
            classes = ", ".join(f"{c} {k}" for c, k in sorted(by_class.items()))
            parts.append(f"{n} {KIND_WORDS.get(kind, kind)} → {classes}")
        added = " + ".join(parts) or "nothing"
        origin = f" (from {', '.join(self.sources[:3])}{' …' if len(self.sources) > 3 else ''})" if self.sources else ""
        return f"{self.name} = {self.parent} + {added}{origin}: {self.clips} clips"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Version:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _link(src: Path, dest: Path, made: set[Path] | None = None) -> None:
    if made is None or dest.parent not in made:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if made is not None:
            made.add(dest.parent)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _relative(path: Path, root: Path) -> str:
    """`path` under the (resolved) dataset root; resolving each clip only when it is not plainly inside."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.resolve().relative_to(root).as_posix()


def _fold_for_additions(listing: Listing) -> str:
    """Added clips always train (the model must learn what the user corrected): with folds they join the
    first fold that does not validate, without they are marked "train" and the parent's clips are split
    exactly as before (`data.folds.split_files`), so versions validate on the same clips and compare."""
    from astapp.data.dataset import fold_order, validation_fold

    folds = fold_order({i.fold: 1 for i in listing.items if i.fold})
    val = validation_fold(list(folds)) if len(folds) > 1 else None
    return next((f for f in folds if f != val), TRAIN_FOLDS[0]) if folds else TRAIN_FOLDS[0]


def _label_cell(labels: list[str], multi: bool) -> str:
    return json.dumps(labels, ensure_ascii=False) if multi else labels[0]


class VersionStore:
    """The workspace's dataset versions. Not locked: the service holds a lock per owner."""

    def __init__(self, workspace: Path):
        self.folder = Path(workspace) / VERSIONS_DIR

    def list(self) -> list[Version]:
        rows = read_json(self.folder / INDEX_FILE).get("versions") or []
        return [Version.from_dict(r) for r in rows if isinstance(r, dict) and r.get("name")]

    def get(self, name: str) -> Version:
        for v in self.list():
            if v.name == name:
                if not Path(v.root).is_dir():
                    raise DatasetError(f"The folder of dataset version {name} is gone (deleted by hand?); "
                                       "pick another version or upload the dataset again.")
                return v
        raise AccessError(f"There is no dataset version {name!r}; pick one from the Data tab's list.")

    def of_root(self, root: str | Path) -> Version | None:
        """The version whose folder is `root` (the newest when one folder was registered twice)."""
        target = str(Path(root).resolve())
        hits = [v for v in self.list() if str(Path(v.root).resolve()) == target]
        return hits[-1] if hits else None

    def register(self, title: str, root: str | Path, clips: int) -> Version:
        """The chosen dataset as a version of its own (no copy); the same folder is registered once."""
        known = self.of_root(root)
        if known is not None:
            return known
        v = Version(self._next(), str(Path(root).resolve()), title, created=time.time(), clips=int(clips))
        self._save([*self.list(), v])
        return v

    def create(self, parent: Version, listing: Listing, additions: list[Addition], pending: PendingAdditions,
               background: str) -> Version:
        """A new version: `parent`'s clips (from `listing`, its scan) + `additions` (false alarms labelled
        `background`); the parent's folder is only read."""
        if not additions:
            raise DatasetError("There are no clips to add: confirm, reject or mark sounds first.")
        background = str(background or "").strip()
        if not background:
            raise DatasetError("Name the class false alarms become (e.g. background).")
        name = self._next()
        multi = listing.label_mode == "multi"
        fold = _fold_for_additions(listing)
        rows: list[dict[str, str]] = []
        clip_root = Path(listing.root).resolve()
        inside_versions = self.folder.resolve() in clip_root.parents
        made: set[Path] = set()
        with atomic_dir(self.folder / name) as tmp:
            for item in listing.items:
                rel = _relative(Path(item.path), clip_root)
                rel = rel if inside_versions else f"base/{rel}"
                _link(Path(item.path), tmp / rel, made)
                labels = list(item.labels) if multi and item.labels else [item.label]
                rows.append({"file": rel, "label": _label_cell(labels, multi), "fold": item.fold or ""})
            noise = listing.noise_folder or "_background_noise_"
            for p in listing.noise:
                _link(p, tmp / noise / Path(p).relative_to(clip_root / listing.noise_folder).as_posix()
                      if listing.noise_folder else tmp / noise / Path(p).name)
            changes: dict[str, Counter[str]] = {}
            for a in additions:
                label = a.target(background)
                rel = f"added/{name}/{label}/{clip_name(a)}"
                _link(pending.path(a), tmp / rel)
                rows.append({"file": rel, "label": _label_cell([label], multi), "fold": fold})
                changes.setdefault(a.kind, Counter())[label] += 1
            (tmp / MANIFEST).write_text(_manifest(rows), encoding="utf-8")
            v = Version(name, str((self.folder / name).resolve()), parent.title, parent.name, time.time(), len(rows),
                        {k: dict(c) for k, c in changes.items()}, sorted({a.source for a in additions}))
            (tmp / "version.json").write_text(json.dumps(asdict(v), ensure_ascii=False), encoding="utf-8")
        self._save([*self.list(), v])
        return v

    def _next(self) -> str:
        numbers = [int(v.name[1:]) for v in self.list() if v.name[1:].isdigit()]
        n = max(numbers, default=0) + 1
        while (self.folder / f"v{n}").exists():  # a folder left by a crash before the index was saved
            n += 1
        return f"v{n}"

    def _save(self, versions: list[Version]) -> None:
        atomic_write_text(self.folder / INDEX_FILE, json.dumps({"versions": [asdict(v) for v in versions]},
                                                               ensure_ascii=False))


def find_store(folder: str | Path) -> tuple[VersionStore, str | None]:
    """The version store a folder belongs to, and which version the folder is (None for the store as a whole).

    The CLI takes whatever folder the user has at hand: a version's own folder (`.../versions/v2`, what
    `train --data` is given), the `versions` folder, or the workspace holding it; all three list the same
    versions, so nobody has to know where the index lives.
    """
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise DatasetError(f"{folder} is not a folder: give a dataset version's folder (.../versions/v2), its "
                           "versions folder or the workspace that holds it.")
    if (p / VERSIONS_DIR / INDEX_FILE).is_file():
        return VersionStore(p), None
    if p.name == VERSIONS_DIR and (p / INDEX_FILE).is_file():
        return VersionStore(p.parent), None
    if p.parent.name == VERSIONS_DIR and (p.parent / INDEX_FILE).is_file():
        store = VersionStore(p.parent.parent)
        return store, store.of_root(p).name if store.of_root(p) else None
    raise DatasetError(f"{folder} has no dataset versions: versions are made by \"Add to dataset and retrain\" "
                       "in the app and live under its workspace's versions/ folder (give that folder, the "
                       "workspace or a version's folder).")


def _manifest(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["file", "label", "fold"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
