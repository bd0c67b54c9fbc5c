"""Unlabeled recordings for the app and the CLI: the session's pool, search by example, labels, label next.

The pool lives in the session workspace (`pool/`: embeddings, windows, labels.jsonl; `pool-sources/`: the
uploaded recordings), so a reload or a restart finds it and its labels. Building runs in a background thread
of this part (embedding is minutes, not a training job: it takes no queue slot); its progress is polled.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import AccessError, UploadError, explain
from astapp.core.fsutil import atomic_write_text
from astapp.jobs.sessions import Session
from astapp.service.datasets import Datasets, DatasetView

POOL_DIR, SOURCES_DIR, DATASET_DIR = "pool", "pool-sources", "pool-dataset"
ROUND_FILE = "round.json"  # the label-next round on screen: proposals, how far the user got, the key classes
PLAY_SECONDS = 10.5


# --- what the CLI runs ----------------------------------------------------------------------------
def build_pool_files(data: str | list[str], model: str, output: str, hop: float | None = None,
                     progress: Any = None) -> dict[str, Any]:
    """`python -m astapp pool`: build the pool in `output`; returns its summary (pool.json)."""
    from astapp.pool.build import build_pool

    return build_pool(data, model, output, hop=hop, progress=progress)


def search_pool(pool_dir: str, query: str, top: int = 10) -> tuple[list[dict[str, Any]], str]:
    """`python -m astapp search`: the best windows for a query file, and a note (query cut) or ''."""
    from astapp.data.audio import load_audio
    from astapp.pool.search import query_embedding, search
    from astapp.pool.store import Pool

    pool = Pool(pool_dir)
    if top < 1:
        raise UploadError(f"--top must be at least 1, not {top}.")
    q, note = query_embedding(pool, load_audio(query), pool.embedder())
    return [h.to_dict() for h in search(pool, q, top)], note


# --- the app's part ------------------------------------------------------------------------------
@dataclass
class BuildStatus:
    running: bool = False
    fraction: float = 0.0
    message: str = ""
    error: str = ""


class Pooling:
    """The session's pool: build (background), search, label, label next, use the labels as the dataset."""

    def __init__(self, datasets: Datasets, default_model: str) -> None:
        self.datasets = datasets
        self.default_model = default_model
        self._status: dict[str, BuildStatus] = {}
        self._embedders: dict[str, Any] = {}
        self._lock = threading.Lock()

    # --- building ---------------------------------------------------------------------------------
    def folder(self, session: Session) -> Path:
        return session.workspace / POOL_DIR

    def add_sources(self, session: Session, files: list[str | Path] | None) -> str:
        """Copy uploaded recordings, clips or zips into the workspace (they must outlive the upload)."""
        if not files:
            raise UploadError("Choose recordings first (audio files, or a zip or folder of them).")
        dest = session.workspace / SOURCES_DIR
        dest.mkdir(parents=True, exist_ok=True)
        for f in files:
            src = Path(f)
            if not src.is_file():
                raise UploadError(f"{src.name} was not received; upload it again.")
            shutil.copyfile(src, dest / src.name)
        return f"{len(files)} file(s) added; build the pool to embed them."

    def sources(self, session: Session) -> list[str]:
        dest = session.workspace / SOURCES_DIR
        return sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []

    def start_build(self, session: Session, model: str | None = None, hop: float | None = None,
                    wait: bool = False) -> BuildStatus:
        """Build the pool from the session's sources in a background thread (`wait`: in this one)."""
        if not self.sources(session):
            raise UploadError("The pool is empty: add recordings (audio files or a zip of them) first.")
        with self._lock:
            status = self._status.setdefault(session.owner, BuildStatus())
            if status.running:
                return status
            status.running, status.fraction, status.message, status.error = True, 0.0, "Starting", ""

        def run() -> None:
            from astapp.pool.build import build_pool

            def report(f: float, msg: str) -> None:
                status.fraction, status.message = f, msg

            try:
                sources = sorted((session.workspace / SOURCES_DIR).iterdir())  # files and zips, each expanded
                meta = build_pool([str(p) for p in sources], model or self.default_model,
                                  self.folder(session), hop=hop, progress=report)
                status.message = describe_build(meta)
            except Exception as e:  # noqa: BLE001 - shown as one sentence on the page
                status.error = explain(e, self.folder(session))
            finally:
                status.running = False

        if wait:
            run()
        else:
            threading.Thread(target=run, name=f"pool-{session.owner}", daemon=True).start()
        return status

    def build_status(self, session: Session) -> BuildStatus:
        return self._status.get(session.owner, BuildStatus())

    # --- reading it back ----------------------------------------------------------------------
    def pool(self, session: Session):
        from astapp.pool.store import Pool

        return Pool(self.folder(session))

    def has_pool(self, session: Session) -> bool:
        return (self.folder(session) / "pool.json").is_file()

    def summary(self, session: Session, selected_model: str | None = None) -> dict[str, Any]:
        """What the Label tab shows: the pool, its labels, failures, and a note when the model differs."""
        if not self.has_pool(session):
            return {"ready": False, "text": "No pool yet: add recordings and build it."}
        pool = self.pool(session)
        counts = self.store(session).counts()
        return {"ready": True, "windows": len(pool), "model": pool.model, "counts": counts,
                "failed": pool.failed(), "model_note": pool.model_problem(selected_model or ""),
                "text": describe_build(pool.meta) + " Labels: " +
                        (", ".join(f"{k} {v}" for k, v in counts.items()) or "none yet") + "."}

    def store(self, session: Session):
        from astapp.pool.labels import LabelStore

        return LabelStore(self.folder(session))

    def embedder(self, session: Session):
        pool = self.pool(session)
        key = f"{pool.meta['model_identity']}:{pool.meta.get('pass', {}).get('one_off_pass')}"
        with self._lock:
            if key not in self._embedders:
                self._embedders.clear()  # one model in memory per process is plenty
                self._embedders[key] = pool.embedder()
            return self._embedders[key]

    def window(self, session: Session, index: int) -> Any:
        pool = self.pool(session)
        if not 0 <= int(index) < len(pool):
            raise AccessError(f"There is no window {index} in this pool (it has {len(pool)}).")
        return pool.windows[int(index)]

    def window_audio(self, session: Session, index: int) -> tuple[int, np.ndarray] | None:
        """(16000, samples) of one window for a player."""
        from astapp.data.audio import load_audio

        w = self.window(session, index)
        try:
            wav = load_audio(w.path, max_seconds=w.end + 0.01)
        except Exception:  # noqa: BLE001 - a source gone: no player, not an error page
            return None
        return 16000, wav[int(w.start * 16000):int(w.end * 16000)]

    # --- search, labels, label next ---------------------------------------------------------------
    def search(self, session: Session, clip: str | Path | None = None, window: int | None = None,
               k: int = 12, dataset_clip: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Hits for a query clip (an uploaded or recorded file), a window of the pool, or a clip of the session's
        labelled dataset (its path relative to the dataset, as `Datasets.clip_choices` lists them), with each
        window's current label."""
        from astapp.pool.search import query_embedding, search

        pool = self.pool(session)
        if window is not None:
            self.window(session, window)
            q, note, skip = np.asarray(pool.embeddings[int(window)], np.float32), "", {int(window)}
        elif clip or dataset_clip:
            from astapp.data.audio import load_audio

            path = clip or self.datasets.clip_path(session, dataset_clip)  # refuses paths outside the dataset
            q, note = query_embedding(pool, load_audio(path), self.embedder(session))
            skip = set()
        else:
            raise UploadError("Give a query: upload or record a clip, pick a clip of your dataset, or a window of "
                              "the pool.")
        labels = self.store(session).current()
        hits = [{**h.to_dict(), "label": labels.get(h.window.key, "")} for h in search(pool, q, k, skip)]
        return hits, note

    def map(self, session: Session, selected: int | None = None) -> tuple[Any, str]:
        """The pool on the embedding map (`service.pool_map`): the image and its caption."""
        from astapp.service.pool_map import picture

        return picture(self.pool(session), self.store(session).current(), selected)

    def map_click(self, session: Session, px: float, py: float, width: int, height: int) -> int:
        """The window under a click at pixel (px, py) of the map image."""
        from astapp.service.pool_map import window_at

        return window_at(self.pool(session), px, py, width, height)

    def label(self, session: Session, indices: list[int], label: str, round_no: int | None = None) -> str:
        """Label windows (one act); the sentence says what changed from an earlier label."""
        pool = self.pool(session)
        if not indices:
            raise UploadError("Select the windows to label first.")
        bad = [i for i in indices if not 0 <= int(i) < len(pool)]
        if bad:
            raise AccessError(f"There is no window {bad[0]} in this pool (it has {len(pool)}).")
        keys = [pool.windows[int(i)].key for i in indices]
        changes = self.store(session).add(keys, label, round_no)
        text = f"Labelled {len(keys)} window(s) {label!r}."
        if changes:
            text += " Changed: " + "; ".join(f"{c.key.replace('|', ' @ ')} s was {c.old!r}" for c in changes[:5]) + \
                    (f" (+{len(changes) - 5} more)" if len(changes) > 5 else "") + "; the latest label wins."
        return text

    def undo(self, session: Session) -> str:
        n = self.store(session).undo()
        return f"Undid the last labelling ({n} window(s))." if n else "Nothing to undo."

    def next_round(self, session: Session, n: int = 10, strategy: str = "mix") -> tuple[Any, list[dict[str, Any]]]:
        """The next windows to label, with the head's CV accuracy and labels used (`pool.active.Round`)."""
        from astapp.pool.active import next_round
        from astapp.pool.labels import SKIP

        pool = self.pool(session)
        cur = self.store(session).current()
        idx = {w.key: i for i, w in enumerate(pool.windows)}
        labelled = {idx[k]: v for k, v in cur.items() if k in idx and v != SKIP}
        skipped = {idx[k] for k, v in cur.items() if k in idx and v == SKIP}
        groups = np.asarray([w.path for w in pool.windows])
        rnd = next_round(pool.embeddings, labelled, groups, n, strategy, skipped)
        rows = [{**pool.windows[i].__dict__, "index": i, "why": why, "probs": rnd.probs.get(i, {})}
                for i, why in zip(rnd.proposals, rnd.reasons, strict=True)]
        old = self.round(session)
        stats = {"cv_accuracy": rnd.cv_accuracy, "cv_folds": rnd.cv_folds, "labels_used": rnd.labels_used,
                 "message": rnd.message, "strategy": strategy}
        self._save_round(session, {"round": int(old.get("round", 0)) + 1, "rows": rows, "at": 0, "stats": stats,
                                   "classes": old.get("classes", [])})
        return rnd, rows

    def round(self, session: Session) -> dict[str, Any]:
        """The round on screen (survives a reload): rows, `at` (the next to answer), stats, key classes."""
        import json

        try:
            return json.loads((self.folder(session) / ROUND_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"round": 0, "rows": [], "at": 0, "stats": {}, "classes": []}

    def _save_round(self, session: Session, data: dict[str, Any]) -> None:
        import json

        atomic_write_text(self.folder(session) / ROUND_FILE, json.dumps(data))

    def set_key_classes(self, session: Session, text: str) -> list[str]:
        """The classes keys 1-9 give, from "dog, cat, bird" (checked like any label)."""
        from astapp.pool.labels import check_label

        names = list(dict.fromkeys(check_label(x) for x in str(text or "").split(",") if x.strip()))[:9]
        data = self.round(session)
        data["classes"] = names
        self._save_round(session, data)
        return names

    def answer(self, session: Session, key: str) -> str:
        """A key for the current proposal: 1-9 its class, 0 none of these, s skip, u undo the last answer."""
        from astapp.pool.labels import NONE, SKIP

        data = self.round(session)
        key = str(key or "").strip().lower()[-1:]
        if key == "u":
            data["at"] = max(0, int(data.get("at", 0)) - 1)
            self._save_round(session, data)
            return self.undo(session)
        rows, at, classes = data.get("rows", []), int(data.get("at", 0)), data.get("classes", [])
        if at >= len(rows):
            return "This round is done: press Next round for new proposals."
        if key == "s":
            label = SKIP
        elif key == "0":
            label = NONE
        elif key.isdigit() and 1 <= int(key) <= len(classes):
            label = classes[int(key) - 1]
        else:
            return f"Keys: 1-{len(classes) or 9} a class ({', '.join(classes) or 'name the classes first'}), " \
                   "0 none of these, s skip, u undo."
        text = self.label(session, [rows[at]["index"]], label, int(data.get("round", 0)))
        data["at"] = at + 1
        self._save_round(session, data)
        return text

    # --- into the normal flow ---------------------------------------------------------------------
    def use_labels(self, session: Session) -> DatasetView:
        """The labelled windows as a dataset folder, inspected, made the session's dataset."""
        from astapp.pool.dataset import export_dataset

        out = export_dataset(self.pool(session), self.store(session), session.workspace / DATASET_DIR)
        view = self.datasets.inspect("Your labelled pool", "upload", out, session.workspace)
        view.source = "labels of the pool"
        return self.datasets.choose(session, view)

    def download(self, session: Session) -> tuple[Path, Path]:
        """(the dataset zip, the labels CSV) in the workspace's exports/."""
        from astapp.pool.dataset import export_dataset, labels_csv

        pool, store = self.pool(session), self.store(session)
        exports = session.workspace / "exports"
        csv_path = exports / "pool-labels.csv"
        atomic_write_text(csv_path, labels_csv(pool, store))
        with tempfile.TemporaryDirectory(dir=session.workspace) as tmp:
            folder = export_dataset(pool, store, Path(tmp) / "pool-dataset")
            zip_base = exports / "pool-dataset"
            made = Path(shutil.make_archive(str(zip_base) + ".partial", "zip", folder))
            made.replace(exports / "pool-dataset.zip")
        return exports / "pool-dataset.zip", csv_path


def describe_build(meta: dict[str, Any]) -> str:
    failed = meta.get("failed") or []
    text = (f"Pool: {meta['windows']} windows ({meta['window_seconds']:.2f} s, hop {meta['hop_seconds']:.2f} s) of "
            f"{meta['files']} file(s), embedded with {meta['model']}.")
    if failed:
        text += f" {len(failed)} file(s) could not be used: " + "; ".join(
            f"{f['file']} ({f['reason']})" for f in failed[:3]) + (" ..." if len(failed) > 3 else "") + "."
    return text
