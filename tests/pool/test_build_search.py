"""Building a pool (windows, failures listed, cache by content) and searching it by example."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import build_tiny_ast
from pool_helpers import CLASSES, class_of, tone

from astapp.core.errors import explain
from astapp.pool import search as search_mod
from astapp.pool.build import build_pool
from astapp.pool.search import query_embedding, search
from astapp.pool.store import Pool
from astapp.pool.windows import PoolError, window_starts

pytest_plugins = ["pool_helpers"]  # the fixtures pool_data and built_pool, shared by the session


def test_window_starts_cover_the_file_and_end_at_its_end():
    assert window_starts(100, 200, 50) == [0]
    assert window_starts(1000, 400, 200) == [0, 200, 400, 600]
    assert window_starts(1000, 400, 350) == [0, 350, 600]


def test_pool_has_windows_failures_and_unit_float16_rows(built_pool, pool_data):
    pool = Pool(built_pool)
    meta = pool.meta
    assert meta["files"] == 19 and [f["file"] for f in meta["failed"]] == ["notes.wav"]
    assert "not audio" in meta["failed"][0]["reason"]
    assert pool.embeddings.dtype == np.float16 and pool.embeddings.shape == (len(pool.windows), meta["dim"])
    assert isinstance(pool.embeddings, np.memmap)
    norms = np.linalg.norm(np.asarray(pool.embeddings, np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)
    long = [w for w in pool.windows if w.file == "low/long_low.wav"]
    assert [round(w.start, 1) for w in long] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 2.7]  # the last ends at 4.0 s
    assert long[-1].end == pytest.approx(4.0) and long[0].end == pytest.approx(meta["window_seconds"])
    assert meta["pass"]["one_off_pass"] in ("int8", "fp32", "bf16")


@pytest.mark.slow
def test_rebuild_reuses_embeddings_by_content(built_pool, pool_data, tiny_ast, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(built_pool, out)
    first = np.asarray(Pool(out).embeddings)
    made_with = Pool(out).meta["pass"]["one_off_pass"]
    meta = build_pool(pool_data, str(tiny_ast), out, hop=0.5)
    assert meta["embedded_files"] == 0 and np.array_equal(np.asarray(Pool(out).embeddings), first)
    # all from the cache: the pool still names the pass its rows came from (queries are embedded the same way)
    assert meta["pass"]["one_off_pass"] == made_with and Pool(out).embedder().int8 == (made_with == "int8")
    for entry in (out / "cache").glob("*.npz"):
        with np.load(entry) as z:
            assert str(z["one_off_pass"]) == made_with
    meta = build_pool(pool_data, str(tiny_ast), out, hop=1.0)  # other windows: embedded again
    assert meta["embedded_files"] == 19 and meta["windows"] < len(first)


def test_search_returns_the_query_class_first(built_pool):
    pool = Pool(built_pool)
    embedder = pool.embedder()
    right = 0
    for c, (name, freq) in enumerate(CLASSES.items()):
        for seed in range(4):
            q, note = query_embedding(pool, tone(freq, 1.5, 100 + 10 * c + seed), embedder)
            hits = search(pool, q, 5)
            assert "first 1.29 s" in note and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            right += class_of(hits[0].window.file) == name
    assert right >= 10  # of 12 (chance: 4); the tiny random AST is a weak but real embedder


def test_a_window_of_the_pool_finds_itself_first_and_a_long_query_is_cut(built_pool):
    pool = Pool(built_pool)
    embedder = pool.embedder()
    w = pool.windows[3]
    from astapp.data.audio import load_audio

    wav = load_audio(w.path)[int(w.start * 16000):int(w.end * 16000)]
    q, _ = query_embedding(pool, wav, embedder)
    assert search(pool, q, 1)[0].index == 3
    q2, note = query_embedding(pool, np.r_[wav, np.zeros(32000, np.float32)], embedder)
    assert "longer than the model's window" in note and "only its first" in note
    assert search(pool, q2, 1)[0].index == 3
    with pytest.raises(PoolError, match="empty"):
        query_embedding(pool, np.zeros(0, np.float32), embedder)


def test_the_index_finds_what_the_exact_scan_finds(built_pool, monkeypatch, tmp_path):
    out = tmp_path / "p"
    shutil.copytree(built_pool, out)
    pool = Pool(out)
    q = np.asarray(pool.embeddings[5], np.float32)
    exact = [h.index for h in search(pool, q, 5)]
    monkeypatch.setattr(search_mod, "BRUTE_MAX", 0)
    hits = search(pool, q, 5)
    assert [h.index for h in hits] == exact and (out / "index.faiss").is_file()
    assert json.loads((out / "index.json").read_text())["pool"] == pool.meta["id"]
    search_mod._INDEXES.clear()
    assert [h.index for h in search(Pool(out), q, 5)] == exact  # read back, not rebuilt


def test_bad_input_sentences(tmp_path, tiny_ast, built_pool):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PoolError, match="No audio files"):
        build_pool(empty, str(tiny_ast), tmp_path / "p1")
    (empty / "a.wav").write_bytes(b"\x89PNG....")
    with pytest.raises(PoolError, match="None of the 1 file"):
        build_pool(empty, str(tiny_ast), tmp_path / "p2")
    with pytest.raises(PoolError, match="hop must be"):
        build_pool(empty, str(tiny_ast), tmp_path / "p3", hop=0)
    with pytest.raises(PoolError, match="not a finished pool"):
        Pool(tmp_path / "nothing")
    pool = Pool(built_pool)
    assert pool.model_problem(str(tiny_ast)) is None
    other = build_tiny_ast(tmp_path / "other", seed=5)
    text = pool.model_problem(str(other))
    assert "not with the model now selected" in text and "switch back" in text
    assert explain(PoolError("x.")) == "x."
