"""The Data tab's "start from unlabeled recordings" panel over HTTP: build, search, label, a keyboard round, use."""

from __future__ import annotations

import time

import pytest
from app_helpers import call, client, launched
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from pool_helpers import CLASSES, tone

from astapp.data.synth import write_wav

pytest_plugins = ["pool_helpers"]


def class_of(name: str) -> str:
    """Uploaded files land side by side: the class is in the name (high_003.wav, long_low.wav)."""
    return next(c for c in CLASSES if c in name)


@pytest.mark.slow
def test_pool_panel_loop(tmp_path, tiny_ast, pool_data):
    from astapp.jobs.manager import JobManager

    manager = JobManager(root=tmp_path / "root")
    try:
        with launched(manager, _frontend=False) as url:  # no localhost HEAD check (3 s) that a busy CPU misses
            c = client(url)
            files = [handle_file(str(p)) for p in sorted(pool_data.glob("*/*.wav"))[:12]]
            summary, _ = call(c, files, str(tiny_ast), 0.5, api_name="/pool_build")
            assert summary.startswith("Building")
            hits = None
            for _ in range(240):  # the build runs in the background; search answers once the pool is there
                try:
                    note, hits, *_ = call(c, None, None, 0, 8, api_name="/pool_search")
                    break
                except AppError:
                    time.sleep(0.5)
            assert hits is not None and len(hits["data"]) == 8
            query = tmp_path / "q.wav"
            write_wav(query, tone(CLASSES["high"], 1.2, 5))
            note, hits, picked, *_ = call(c, handle_file(str(query)), None, None, 6, api_name="/pool_search")
            rows = hits["data"]
            assert class_of(rows[0][1]) == "high"
            ids = [r[0] for r in rows if class_of(r[1]) == "high"][:3]
            assert call(c, ids, "high", api_name="/pool_label") == f"Labelled {len(ids)} window(s) 'high'."
            write_wav(query, tone(CLASSES["low"], 1.4, 6))
            low = [r[0] for r in call(c, handle_file(str(query)), None, None, 10, api_name="/pool_search")[1]["data"]
                   if class_of(r[1]) == "low"][:3]
            assert len(low) == 3
            call(c, low, "low", api_name="/pool_label")
            stats, _audio, _note, names = call(c, "high, low", "mix", 4, api_name="/pool_next_round")
            assert "Round 1" in stats and names == "high, low"
            for key in ("1", "s", "0"):
                stats, _a, note, _n, cleared = call(c, key, "high, low", api_name="/pool_key")
                assert cleared == "" and note.startswith("Labelled 1 window(s)")
            out = call(c, api_name="/pool_use_labels")
            assert "Your labelled pool" in out[0] and "Ready to train" in out[0]  # (the State output is not returned)
            with pytest.raises(AppError, match="class name"):
                call(c, ids, "a/b", api_name="/pool_label")
    finally:
        manager.shutdown(timeout=30)
