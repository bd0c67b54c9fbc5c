"""The pool on the embedding map: its windows in 2-D, coloured by their current label, click one to hear it.

The same map as cross-validation's (`evaluation.embedmap.reduce_2d`, drawn by `evaluation.figures.embedding_map`,
a click read back by `map_point` + `nearest`), fed with the pool's frozen embeddings instead of a run's. Why a
sample: t-SNE/UMAP on every window of a million-window pool would take minutes and the picture could not show them
anyway, so up to MAP_MAX windows spread evenly over the pool (every window of a small pool) are placed once per
pool and cached beside it (`map.npz`); labelling recolours them without placing them again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.fsutil import atomic_write_bytes

MAP_MAX = 1500
MAP_FILE = "map.npz"
UNLABELLED = "(unlabelled)"


def map_rows(n: int, limit: int = MAP_MAX) -> np.ndarray:
    """Window indices on the map: all of them, or `limit` spread evenly (every recording gets its share)."""
    return np.arange(n) if n <= limit else np.unique(np.linspace(0, n - 1, limit).astype(np.int64))


def placed(pool: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """(window indices, their (n, 2) map coordinates in [0, 1], the method), placed once per pool and cached."""
    import io

    from astapp.evaluation.embedmap import reduce_2d

    path = Path(pool.folder) / MAP_FILE
    if path.is_file():
        try:
            with np.load(path) as z:
                if str(z["pool"]) == str(pool.meta["id"]):
                    return z["rows"], z["xy"], str(z["method"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is placed again
    from threadpoolctl import threadpool_limits

    rows = map_rows(len(pool))
    with threadpool_limits(
        1
    ):  # t-SNE of 43 windows: 41 s with a threaded BLAS on the busy 2-core box, 1 s without
        xy, method = reduce_2d(np.asarray(pool.embeddings[rows], np.float32))
    buf = io.BytesIO()
    np.savez(buf, rows=rows, xy=xy, method=np.array(method), pool=np.array(str(pool.meta["id"])))
    atomic_write_bytes(path, buf.getvalue())
    return rows, xy, method


def picture(pool: Any, labels_by_key: dict[str, str], selected: int | None = None) -> tuple[Any, str]:
    """The map image (RGB array) with each window coloured by its label, `selected` (a window index) ringed,
    and a caption saying what is shown."""
    from astapp.evaluation.figures import embedding_map

    rows, xy, method = placed(pool)
    labels = [labels_by_key.get(pool.windows[int(i)].key) or UNLABELLED for i in rows]
    at = np.flatnonzero(rows == selected) if selected is not None else np.zeros(0, np.int64)
    image = embedding_map(xy, labels, [""] * len(rows), int(at[0]) if len(at) else None)
    shown = (
        f"all {len(rows)} windows"
        if len(rows) == len(pool)
        else f"{len(rows)} of {len(pool)} windows (spread)"
    )
    return image, f"Map of the pool ({method} of its embeddings): {shown}. Click a dot to hear that window."


def window_at(pool: Any, px: float, py: float, width: int, height: int) -> int:
    """The window whose dot is nearest pixel (px, py) of a map image of that size."""
    from astapp.evaluation.embedmap import nearest
    from astapp.evaluation.figures import map_point

    rows, xy, _ = placed(pool)
    x, y = map_point(px, py, width, height)
    return int(rows[nearest(xy, x, y)])
