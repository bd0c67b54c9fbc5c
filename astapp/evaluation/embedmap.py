"""The embedding map: clip embeddings reduced to 2-D (UMAP when installed, else t-SNE, PCA for huge sets)."""

from __future__ import annotations

import importlib.util

import numpy as np

TSNE_MAX = 600  # above this many clips t-SNE takes over ~5 s on 2 cores: PCA (bench/bench_cv.py)
# Up to this many clips t-SNE runs on one thread: its OpenMP threads spin-wait on each other, and on a busy
# machine a 60-clip map took 8.6 s of CPU (139 s of wall time at load 25) instead of 0.26 s on one thread.
ONE_THREAD_MAX = 200


def reduce_2d(emb: np.ndarray, seed: int = 0, method: str = "auto") -> tuple[np.ndarray, str]:
    """(n, 2) coordinates in [0, 1] and the method used ("umap", "t-SNE" or "PCA")."""
    x = np.asarray(emb, dtype=np.float32)
    n = len(x)
    if n < 3:
        return np.full((n, 2), 0.5), "none"
    from sklearn.decomposition import PCA

    x = x - x.mean(0)
    k = min(50, x.shape[1], n - 1)
    xp = PCA(n_components=k, random_state=seed).fit_transform(x)
    if method == "auto":
        method = "umap" if importlib.util.find_spec("umap") is not None else ("t-SNE" if n <= TSNE_MAX else "PCA")
    if method == "umap":
        import umap

        xy = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1)).fit_transform(xp)
    elif method == "t-SNE" and n >= 5:
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

        with threadpool_limits(limits=1 if n <= ONE_THREAD_MAX else None):
            xy = TSNE(n_components=2, random_state=seed, init="pca", perplexity=min(30.0, (n - 1) / 3),
                      max_iter=500).fit_transform(xp)
    else:
        method, xy = "PCA", xp[:, :2] if xp.shape[1] >= 2 else np.c_[xp[:, :1], np.zeros(n)]
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = xy.min(0), xy.max(0)
    return (xy - lo) / np.where(hi - lo > 0, hi - lo, 1.0), method


def nearest(xy: np.ndarray, x: float, y: float) -> int:
    """Index of the point closest to (x, y) in map coordinates."""
    d = (np.asarray(xy)[:, 0] - x) ** 2 + (np.asarray(xy)[:, 1] - y) ** 2
    return int(d.argmin())
