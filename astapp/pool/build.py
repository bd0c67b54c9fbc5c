"""Build a pool: recordings and clips -> windows -> embeddings (once per file content) -> the pool folder.

The pool folder holds `embeddings.npy` (float16, unit rows, opened as a memmap), `windows.csv` (file, path,
start, end) and `pool.json` (model, window, hop, files, failures), each written atomically, `pool.json` last:
a pool is complete exactly when its pool.json is there. `cache/` keeps each file's embeddings by content, so a
rebuild (another hop, more files) embeds only what is new. Files that do not decode are listed, the rest kept.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import explain
from astapp.core.fsutil import atomic_write_bytes, atomic_write_text
from astapp.pool.embedder import Embedder, ModelSpec, cache_key, file_digest, fixed_embedder, model_spec
from astapp.pool.windows import PoolError, Window, check_hop, list_sources, table_text, windows_of

POOL_FILE, EMB_FILE, WINDOWS_FILE, CACHE_DIR = "pool.json", "embeddings.npy", "windows.csv", "cache"
Progress = Callable[[float, str], None]
Filler = Callable[[list[tuple[str, Path]], "_Pass"], dict[str, str]]  # files, the pass -> failed {name: why}


def build_pool(sources: str | Path | list[str | Path], model: str, out: str | Path, hop: float | None = None,
               int8: bool = True, progress: Progress | None = None, fill: Filler | None = None) -> dict[str, Any]:
    """Build (or rebuild) the pool in `out` from files, folders and zips of audio; returns pool.json's content.

    `fill` (`astapp.scale.pool`: Ray workers) embeds the files into the cache first and returns the ones that
    failed, with why; the pool is then assembled from the cache exactly as after a single-process pass."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda f, m: None)
    spec = model_spec(model)
    hop_s = check_hop(hop if hop is not None else spec.window_seconds / 2, spec.window_seconds)
    files, missing = list_sources(sources, out / "sources")
    if not files:
        raise PoolError("No audio files were found in what was given; add recordings or clips (WAV, FLAC, MP3, "
                        "OGG; a folder or a zip of them) and build the pool again.")
    t0 = time.time()
    hop_n = max(1, int(round(hop_s * SAMPLE_RATE)))
    pass_ = _Pass(spec, int8, out / CACHE_DIR, hop_n)
    done: list[tuple[str, Path, Path]] = []
    failed = [{"file": name, "reason": "not found"} for name in missing]
    pass_.reuse(files)  # new files follow the pass of the cached ones: one pool, one pass
    early = fill(files, pass_) if fill is not None else {}
    for i, (name, path) in enumerate(files):
        report(i / len(files), f"Embedding {name} ({i + 1}/{len(files)})")
        if name in early:
            failed.append({"file": name, "reason": early[name]})
            continue
        try:
            done.append((name, path, pass_.file(path)))
        except Exception as e:  # noqa: BLE001 - one bad file is listed, the rest are kept
            failed.append({"file": name, "reason": explain(e)})
    if not done:
        raise PoolError(f"None of the {len(files)} file(s) could be decoded (first: {failed[0]['file']}: "
                        f"{failed[0]['reason']}); convert them to WAV or FLAC and try again.")
    windows, dim = _assemble(done, spec, hop_n, out)
    meta = {"model": spec.source, "model_identity": spec.identity, "max_length": spec.max_length,
            "mean": spec.mean, "std": spec.std, "window_seconds": spec.window_seconds, "hop_seconds": hop_s,
            "windows": len(windows), "dim": dim, "files": len(done), "failed": failed,
            "embedded_files": pass_.embedded, "pass": pass_.info(), "seconds": round(time.time() - t0, 2),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "id": os.urandom(6).hex()}
    for stale in out.glob("index*"):
        stale.unlink(missing_ok=True)
    atomic_write_text(out / POOL_FILE, json.dumps(meta, indent=1))
    report(1.0, f"Pool ready: {len(windows)} windows of {len(done)} file(s)")
    return meta


class _Pass:
    """Each file's (starts, embeddings), from the cache or from one pass of the backbone.

    Every cache entry names the pass that made it (int8 or fp32: the embedder decides on its first windows),
    so a rebuild from the cache reports the pass the rows really came from (queries are embedded the same
    way) and new files follow that pass instead of deciding again: a pool never mixes int8 and fp32 rows."""

    def __init__(self, spec: ModelSpec, int8: bool, cache: Path, hop_n: int) -> None:
        self.spec, self.int8, self.cache, self.hop_n = spec, int8, cache, hop_n
        self.embedder: Embedder | None = None
        self.embedded = 0
        self.filled: dict[str, Any] | None = None  # the pass info of a `fill` that embedded files elsewhere
        self.cached: dict[str, Any] | None = None  # the pass named by the cache entries reused
        self._targets: dict[Path, Path] = {}  # each file is hashed once per build (reuse, fill and file all ask)

    def info(self) -> dict[str, Any]:
        if self.embedder:
            return dict(self.embedder.info)
        return dict(self.filled or self.cached or {"one_off_pass": "cached"})

    def target(self, path: Path) -> Path:
        """Where `path`'s embeddings are cached: by content, model, windows and pass."""
        if path not in self._targets:
            key = cache_key(file_digest(path), self.spec, self.hop_n, self.int8)
            self._targets[path] = self.cache / f"{key}.npz"
        return self._targets[path]

    def file(self, path: Path) -> Path:
        target = self.target(path)
        if target.is_file():
            return target
        atomic_write_bytes(target, embed_file(self._embed, self.spec, self.hop_n, path, self._pass_name))
        self.embedded += 1
        return target

    def reuse(self, files: list[tuple[str, Path]]) -> dict[str, Any] | None:
        """The pass the cached entries of `files` were made with (None when none names one), kept for the
        files still to embed; asked before any file is embedded."""
        for _, path in files:
            target = self.target(path)
            if target.is_file() and (found := _pass_of(target)):
                self.cached = {"one_off_pass": found, "message": f"Windows from the cache, passed in {found}."}
                break
        return self.cached

    def _pass_name(self) -> str:
        return str(self.embedder.info.get("one_off_pass", "")) if self.embedder else ""

    def _embed(self, wavs: list[np.ndarray]) -> np.ndarray:
        if self.embedder is None:
            self.embedder = (fixed_embedder(self.spec, self.int8, self.cached) if self.cached
                             else Embedder(self.spec, self.int8))
        return self.embedder(wavs)


def _pass_of(entry: Path) -> str:
    """The pass a cache entry names ('' for an entry from before entries named it)."""
    with np.load(entry) as z:
        return str(z["one_off_pass"]) if "one_off_pass" in z.files else ""


def embed_file(embed: Callable[[list[np.ndarray]], np.ndarray], spec: ModelSpec, hop_n: int, path: Path,
               pass_name: str | Callable[[], str] = "") -> bytes:
    """One file's cache entry (.npz): its window starts, their embeddings (float16), its length and the pass
    that made them (`pass_name`, or a function asked after embedding: the embedder decides on its first batch)."""
    from astapp.data.audio import load_audio

    wav = load_audio(path)
    win = spec.window_samples
    starts = [int(round(w.start * SAMPLE_RATE)) for w in windows_of("", path, len(wav), win, hop_n)]
    emb = embed([wav[s:s + win] for s in starts])
    name = pass_name() if callable(pass_name) else pass_name
    buf = io.BytesIO()
    np.savez(buf, starts=np.asarray(starts, np.int64), emb=emb.astype(np.float16), samples=len(wav),
             one_off_pass=np.str_(name))
    return buf.getvalue()


def _assemble(done: list[tuple[str, Path, Path]], spec: ModelSpec, hop_n: int, out: Path) -> tuple[list[Window], int]:
    """Stream every file's cached rows into one float16 memmap (never all in memory) and the windows table."""
    win = spec.window_samples
    windows: list[Window] = []
    sizes = []
    for name, path, cached in done:
        with np.load(cached) as z:
            n, dim = z["emb"].shape
            ws = windows_of(name, path, int(z["samples"]), win, hop_n)
            sizes.append(n)
            windows += ws if len(ws) == n else ws[:n]
    tmp = out / f".{EMB_FILE}.{os.getpid()}.tmp"
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(sum(sizes), dim))
        row = 0
        for (_, _, cached), n in zip(done, sizes, strict=True):
            with np.load(cached) as z:
                arr[row:row + n] = z["emb"]
            row += n
        arr.flush()
        del arr
        os.replace(tmp, out / EMB_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(out / WINDOWS_FILE, table_text(windows))
    return windows, int(dim)
