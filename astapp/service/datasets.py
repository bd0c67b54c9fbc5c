"""Datasets for the app: the example, uploads and Hub ids become the session's chosen dataset.

A dataset is extracted once into the owner's workspace and inspected; the extracted folder (not the
zip) is what previews and training use. The choice and its report are saved in the workspace
(`StateStore`), so a reload shows the same dataset; a rejected upload raises and changes nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.config import AudioConfig, IngestLimits
from astapp.core.errors import AccessError, AudioDecodeError, DatasetError, UploadError
from astapp.core.paths import inside, shared_dir
from astapp.data.ingest.layout import Listing
from astapp.jobs.sessions import Session
from astapp.service.state import StateStore

PLAY_SECONDS = 10.0  # clips are trimmed for the players
MAX_CLIP_CHOICES = 300
PER_CLASS_CHOICES = 20
EXAMPLE_NAME = "Example: everyday sounds"


@dataclass
class DatasetView:
    """The chosen dataset as the tabs show it (plain data; the report is `ValidationReport.to_dict()`)."""

    name: str
    kind: str  # example | upload | hub
    root: str
    clip_root: str  # what clip names are relative to (the scan strips wrapper folders like my_upload/)
    report: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # what the user named: the zip's file name, hf:<id>, the example's path
    version: str = ""  # a dataset version's summary ("v2 = v1 + 3 false alarms → background: 30 clips")

    @property
    def trainable(self) -> bool:
        return bool(self.report.get("trainable"))

    @property
    def labels(self) -> list[str]:
        return [c["name"] for c in self.report.get("classes", [])]

    @property
    def folds(self) -> dict[str, int]:
        """The manifest's folds (fold name -> clips), in their natural order; {} without a fold column."""
        from astapp.data.dataset import fold_order

        folds = self.report.get("folds") or {}
        return {f: int(folds[f]) for f in fold_order(folds)}

    @property
    def auto_fold(self) -> str | None:
        """The fold that validates unless the user picks one (named val/valid/test, else the last)."""
        from astapp.data.dataset import validation_fold

        return validation_fold(list(self.folds)) if len(self.folds) > 1 else None

    @property
    def auto_length(self) -> int | None:
        """What "auto" input length means for this dataset (frames), for the Train tab's hint."""
        durations = self.report.get("durations") or []
        if not durations:
            return None
        from astapp.features.fbank import choose_max_length

        return choose_max_length([float(d) for d in durations])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "root": self.root, "clip_root": self.clip_root,
                "report": self.report, "source": self.source, "version": self.version}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetView:
        return cls(str(d["name"]), str(d.get("kind", "upload")), str(d["root"]), str(d.get("clip_root") or d["root"]),
                   dict(d.get("report") or {}), str(d.get("source") or ""), str(d.get("version") or ""))


def play_audio(path: Path) -> tuple[int, np.ndarray] | None:
    """(16000, mono float32 samples) of a clip, trimmed for a player; None when it cannot be decoded."""
    from astapp.data.audio import load_audio

    try:
        return 16000, load_audio(path, max_seconds=PLAY_SECONDS)
    except AudioDecodeError:
        return None


class Datasets:
    """The session's dataset: choosing one (example, upload, Hub id), reading it back, its clips."""

    def __init__(self, root: Path, store: StateStore):
        self.root = root  # the data root (the example is extracted once under its shared folder)
        self.store = store
        self._example: DatasetView | None = None
        self._example_lock = threading.Lock()

    # --- choosing a dataset ------------------------------------------------------------------
    def use_example(self, session: Session) -> DatasetView:
        return self.choose(session, self._example_view())

    def upload(self, session: Session, file: str | Path | None) -> DatasetView:
        """Extract (checked, reused when the same zip comes again) and inspect an uploaded zip."""
        if not file:
            raise UploadError("Choose a .zip file first.")
        from astapp.data.ingest import resolve_source

        src = Path(file)
        root = resolve_source(src, session.workspace, IngestLimits())
        view = self.inspect(f"Your dataset: {src.name}", "upload", root, session.workspace)
        view.source = src.name
        return self.choose(session, view)

    def from_hub(self, session: Session, dataset_id: str) -> DatasetView:
        dataset_id = str(dataset_id or "").strip().removeprefix("hf:")
        if not dataset_id:
            raise UploadError("Type a dataset id such as user/dataset.")
        from astapp.data.ingest import resolve_source

        root = resolve_source("hf:" + dataset_id, session.workspace, IngestLimits())
        view = self.inspect(f"Hub dataset: {dataset_id}", "hub", root, session.workspace)
        view.source = "hf:" + dataset_id
        return self.choose(session, view)

    def current(self, session: Session) -> DatasetView:
        """The session's chosen dataset, or the example before any choice (first visit, API clients)."""
        saved = self.store.dataset(session)
        return DatasetView.from_dict(saved) if saved else self._example_view()

    def trainable(self, session: Session) -> DatasetView:
        """The chosen dataset when it can be trained on; DatasetError naming the way out when not."""
        view = self.current(session)
        if not view.trainable:
            raise DatasetError(f"The chosen dataset ({view.name}) has blocking problems (see the Data tab); "
                               "fix them and upload it again, or pick another dataset.")
        return view

    def choose(self, session: Session, view: DatasetView) -> DatasetView:
        """Make `view` the session's dataset (recordings and corrected labels arrive here too)."""
        self.store.set_dataset(session, view.to_dict())
        return view

    # --- what the tabs show of it ------------------------------------------------------------
    def sample_clips(self, view: DatasetView, n: int) -> list[tuple[str, tuple[int, np.ndarray] | None]]:
        """A few clips per class, round-robin over classes, as (caption, playable audio)."""
        by_class: dict[str, list[Path]] = {}
        for item in self.listing(view).items:
            by_class.setdefault(item.label, []).append(Path(item.path))
        picked: list[tuple[str, tuple[int, np.ndarray] | None]] = []
        depth = 0
        while len(picked) < n and any(len(v) > depth for v in by_class.values()):
            for label in sorted(by_class):
                if len(picked) < n and len(by_class[label]) > depth:
                    path = by_class[label][depth]
                    picked.append((f"{label} · {path.name}", play_audio(path)))
            depth += 1
        return picked

    def clip_choices(self, session: Session) -> list[str]:
        """Clips of the chosen dataset as paths relative to its root (the first few per class)."""
        view = self.current(session)
        root = Path(view.clip_root).resolve()
        per_class: dict[str, int] = {}
        out: list[str] = []
        for it in self.listing(view).items:
            if per_class.get(it.label, 0) < PER_CLASS_CHOICES and len(out) < MAX_CLIP_CHOICES:
                per_class[it.label] = per_class.get(it.label, 0) + 1
                out.append(Path(it.path).resolve().relative_to(root).as_posix())
        return out

    def clip_path(self, session: Session, clip: str | None) -> Path:
        """A clip of the chosen dataset on disk; refuses anything outside the dataset folder."""
        view = self.current(session)
        if not clip:
            choices = self.clip_choices(session)
            if not choices:
                raise DatasetError("The dataset has no clips to preview.")
            clip = choices[0]
        path = inside(Path(view.clip_root), clip)
        if not path.is_file():
            raise AccessError(f"There is no clip {clip!r} in this dataset; pick one from the list.")
        return path

    # --- for the other parts (augmenting, recording, cross-validation) ----------------------
    def listing(self, view: DatasetView) -> Listing:
        """The dataset's folder scanned again: its labelled items, noise clips and clip root."""
        from astapp.data.ingest import scan

        return scan(Path(view.clip_root))

    def inspect(self, name: str, kind: str, root: Path, workspace: Path) -> DatasetView:
        """A dataset folder inspected through the upload pipeline (the report the Data tab shows)."""
        from astapp.data.dataset import inspect_source
        from astapp.data.ingest import scan

        report = inspect_source(root, workspace, AudioConfig(), IngestLimits())
        try:
            clip_root = str(scan(root).root)
        except UploadError:
            clip_root = str(root)
        return DatasetView(name, kind, str(root), clip_root, report.to_dict())

    def _example_view(self) -> DatasetView:
        """The example dataset, extracted and inspected once per installation (it never changes)."""
        with self._example_lock:
            if self._example is not None and Path(self._example.root).is_dir():
                return self._example
            from astapp.data import examples

            root = examples.example_dir(shared_dir(self.root))
            self._example = self.inspect(EXAMPLE_NAME, "example", root, root.parent)
            self._example.source = examples.EXAMPLE_SOURCE
            return self._example
