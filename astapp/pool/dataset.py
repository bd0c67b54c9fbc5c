""""Use these labels": the labelled windows of a pool as a dataset folder the normal report and training accept.

Layout: one folder per class (`<class>/<recording>-<id>_seg<start ms>.wav`) plus `labels.csv` (file, label,
source, start, end, labelled_at). The manifest is what the ingest reads (its `file` and `label` columns); the
clip names follow the "…_seg N" convention of `astapp.data.folds`, so grouped folds keep the windows of one
recording on one side of every split, and the source and times stay with each clip. Windows labelled "none of
these" are left out unless asked for (then they are a class of their own, `none`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.fsutil import atomic_dir, atomic_write_text
from astapp.pool.labels import NONE, LabelStore
from astapp.pool.store import Pool
from astapp.pool.windows import PoolError, Window

MANIFEST = "labels.csv"
NONE_CLASS = "none"
COLUMNS = ("file", "label", "source", "start", "end", "labelled_at")


def _stem(window: Window) -> str:
    """A file-name-safe name of the recording, unique per source path (two `a.wav` in two folders differ)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(window.file).stem).strip("._") or "rec"
    return f"{base[:40]}-{hashlib.sha1(window.path.encode()).hexdigest()[:6]}"


def labelled_windows(pool: Pool, store: LabelStore, include_none: bool = False) -> list[tuple[Window, str, str]]:
    """(window, class, time labelled) of every labelled window still in the pool, in pool order."""
    times = {e["key"]: e["time"] for e in store.log()}
    labels = store.labelled()
    out = []
    for w in pool.windows:
        label = labels.get(w.key)
        if label is None or (label == NONE and not include_none):
            continue
        out.append((w, NONE_CLASS if label == NONE else label, times.get(w.key, "")))
    return out


def labels_csv(pool: Pool, store: LabelStore) -> str:
    """The labels as CSV text (source file, start, end, label, time): for download, or another tool."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("source", "start", "end", "label", "labelled_at"))
    for win, label, when in labelled_windows(pool, store, include_none=True):
        w.writerow((win.file, f"{win.start:.3f}", f"{win.end:.3f}", label, when))
    return buf.getvalue()


def export_dataset(pool: Pool, store: LabelStore, out: str | Path, include_none: bool = False) -> Path:
    """Write the dataset folder `out` (replaced atomically); PoolError when there is nothing to train on."""
    import soundfile as sf

    from astapp.data.audio import load_audio

    rows = labelled_windows(pool, store, include_none)
    classes = sorted({label for _, label, _ in rows})
    if len(classes) < 2:
        raise PoolError(f"A dataset needs labelled windows of at least 2 classes; so far: "
                        f"{', '.join(classes) or 'none'}. Label more windows (search by example finds them), then "
                        "use the labels.")
    by_path: dict[str, list[tuple[Window, str, str]]] = {}
    for row in rows:
        by_path.setdefault(row[0].path, []).append(row)
    table = []
    with atomic_dir(Path(out)) as tmp:
        for path, group in by_path.items():
            try:
                wav = load_audio(path)
            except Exception as e:  # noqa: BLE001 - a source gone since the pool was built
                raise PoolError(f"{group[0][0].file} (a source of labelled windows) can no longer be read ({e}); "
                                "put it back or build the pool again.") from e
            for w, label, when in group:
                a, b = int(round(w.start * SAMPLE_RATE)), int(round(w.end * SAMPLE_RATE))
                name = f"{label}/{_stem(w)}_seg{int(round(w.start * 1000)):08d}.wav"
                (tmp / label).mkdir(exist_ok=True)
                sf.write(str(tmp / name), np.asarray(wav[a:b], np.float32), SAMPLE_RATE, subtype="PCM_16")
                table.append((name, label, w.file, f"{w.start:.3f}", f"{w.end:.3f}", when))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(sorted(table))
        atomic_write_text(tmp / MANIFEST, buf.getvalue())
    return Path(out)
