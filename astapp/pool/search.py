"""Search by example: a query window's embedding -> the pool's most similar windows (cosine, higher = closer).

Rows are unit vectors, so cosine is a dot product. Up to BRUTE_MAX windows numpy scans the float16 memmap in
chunks (exact, < 100 ms: bench/bench_pool.py); above it a faiss IVF index with 8-bit codes, built once per pool
and saved beside it, finds candidates that are then re-scored exactly from the memmap, so scores are always
exact cosines. Why faiss IVF and not an HNSW graph (usearch): on 2 cores the graph took minutes to build for
100 000 vectors where IVF takes seconds, for the same query time (docs/BENCHMARKS.md, section "pool").
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass

import numpy as np

from astapp.core.fsutil import atomic_write_text
from astapp.pool.store import Pool
from astapp.pool.windows import PoolError, Window

BRUTE_MAX = 20_000  # windows: numpy's exact scan of float16 rows stays under ~100 ms up to here on 2 cores
CHUNK = 8192
INDEX_FILE, INDEX_META = "index.faiss", "index.json"
RERANK = 8  # candidates per hit asked of the index, re-scored exactly
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Hit:
    index: int
    window: Window
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"file": self.window.file, "start": round(self.window.start, 3), "end": round(self.window.end, 3),
                "score": round(min(self.score, 1.0), 4), "index": self.index, "path": self.window.path}


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if len(scores) > k:
        part = np.argpartition(-scores, k)[:k]
        scores, ids = scores[part], ids[part]
    order = np.argsort(-scores, kind="stable")
    return scores[order], ids[order]


def brute(emb: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact (scores, ids) of the k best rows (all rows, or only `rows`), scanning a chunk at a time."""
    q = np.asarray(q, np.float32).ravel()
    best_s, best_i = np.zeros(0, np.float32), np.zeros(0, np.int64)
    ids_all = np.arange(len(emb)) if rows is None else np.asarray(rows, np.int64)
    for a in range(0, len(ids_all), CHUNK):
        ids = ids_all[a:a + CHUNK]
        block = emb[a:a + CHUNK] if rows is None else emb[np.sort(ids)]
        ids = ids if rows is None else np.sort(ids)
        s = np.asarray(block, np.float32) @ q
        best_s, best_i = _top(np.r_[best_s, s], np.r_[best_i, ids], k)
    return best_s, best_i


class PoolIndex:
    """The faiss IVF index of one pool (built once, saved; rebuilt when the pool is rebuilt)."""

    def __init__(self, pool: Pool) -> None:
        import faiss

        self.pool = pool
        path, meta = pool.folder / INDEX_FILE, pool.folder / INDEX_META
        built_for = json.loads(meta.read_text()).get("pool") if meta.is_file() else None
        if path.is_file() and built_for == pool.meta["id"]:
            self.index = faiss.read_index(str(path))
        else:
            self.index = build_index(pool.embeddings)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            faiss.write_index(self.index, str(tmp))
            os.replace(tmp, path)
            atomic_write_text(meta, json.dumps({"pool": pool.meta["id"], "kind": "IVF-SQ8"}))
        self.index.nprobe = nprobe(self.index.nlist)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, cand = self.index.search(np.asarray(q, np.float32).reshape(1, -1), max(k * RERANK, 64))
        cand = cand[0][cand[0] >= 0]
        return brute(self.pool.embeddings, q, k, cand)


def nlist_for(n: int) -> int:
    """About sqrt(n) lists (at most 1024): a query's cost is the codes it scans, nprobe x n / nlist, and at
    1 000 000 windows 250 lists of 4 000 codes took 236 ms for 32 probes where 1024 lists of ~1 000 took 60 ms under
    the same load (docs/BENCHMARKS.md section 24); more lists cost build time (each row is assigned once) only."""
    return int(max(16, min(1024, np.sqrt(n))))


def nprobe(nlist: int) -> int:
    """Lists scanned per query: 1/32 of them, at least 16 (the re-scored candidates come from these lists)."""
    return int(max(16, nlist // 32))


def build_index(emb: np.ndarray, train_max: int = 30_000, seed: int = 0):
    """IVF with 8-bit scalar codes (a quarter of float32's memory), trained on a sample, filled in chunks."""
    import faiss

    n, d = emb.shape
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist_for(n), faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    train_max = max(train_max, 40 * index.nlist)  # faiss's k-means wants ~40 points per list
    sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, train_max), replace=False))
    index.train(np.asarray(emb[sample], np.float32))
    for a in range(0, n, 65536):
        index.add(np.asarray(emb[a:a + 65536], np.float32))
    return index


_INDEXES: dict[tuple[str, str], PoolIndex] = {}


def index_of(pool: Pool) -> PoolIndex:
    key = (str(pool.folder.resolve()), str(pool.meta["id"]))
    with _LOCK:
        if key not in _INDEXES:
            _INDEXES[key] = PoolIndex(pool)
        return _INDEXES[key]


def search(pool: Pool, q: np.ndarray, k: int = 10, exclude: set[int] | None = None) -> list[Hit]:
    """The k windows most similar to the query embedding `q`, best first (windows in `exclude` left out)."""
    if len(pool) == 0:
        raise PoolError("The pool is empty: build it from recordings first.")
    k = max(1, int(k))
    want = k + len(exclude or ())
    s, ids = brute(pool.embeddings, q, want) if len(pool) <= BRUTE_MAX else index_of(pool).search(q, want)
    hits = [Hit(int(i), pool.windows[int(i)], float(x)) for x, i in zip(s, ids, strict=True)
            if not exclude or int(i) not in exclude]
    return hits[:k]


def query_embedding(pool: Pool, wav: np.ndarray, embedder) -> tuple[np.ndarray, str]:
    """A query clip's embedding with the pool's model, and what was done to it (cut to the window: said)."""
    win = embedder.spec.window_samples
    note = ""
    if len(wav) == 0:
        raise PoolError("The query clip is empty; record or choose a clip with the sound you are looking for.")
    if len(wav) > win:
        note = (f"The query clip ({len(wav) / 16000:.2f} s) is longer than the model's window "
                f"({win / 16000:.2f} s): only its first {win / 16000:.2f} s were used; cut the clip to the sound.")
        wav = wav[:win]
    return embedder([np.asarray(wav, np.float32)])[0], note
