"""The predictor cache loads a model once when many requests ask for it at the same moment."""

from __future__ import annotations

import os
import threading
import time

from astapp.service.predicting import PredictorCache


class _SlowPredictor:
    """Counts its constructions; slow enough that concurrent requests overlap while it loads."""

    made: list[str] = []

    def __init__(self, folder):
        time.sleep(0.3)
        type(self).made.append(str(folder))
        self.folder = folder


def test_concurrent_requests_for_one_model_load_it_once(tmp_path, monkeypatch):
    import astapp.predict.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "Predictor", _SlowPredictor)
    _SlowPredictor.made = []
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    cache, got = PredictorCache(size=4), []
    threads = [threading.Thread(target=lambda f=f: got.append(cache.get(f))) for f in (a, a, a, a, b, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(_SlowPredictor.made) == [str(a), str(b)]  # one load per model, not one per request
    first = {id(p): p for p in got if p.folder == a}
    assert len(first) == 1 and len(got) == 6  # every request for `a` got the same loaded model
    os.utime(a / "config.json", (time.time() + 5, time.time() + 5))  # a re-export: a new mtime
    assert cache.get(a) not in first.values()
    assert _SlowPredictor.made.count(str(a)) == 2
