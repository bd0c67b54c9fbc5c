"""The unknown score in the app (issue 25), through gradio_client: the Evaluate tab's histogram, threshold and
recalibration with uploaded other sounds; Predict's verdict line and CSV column; Listen live's threshold."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile

import numpy as np
import pytest
from app_helpers import call, client, launched
from gradio_client import handle_file
from train_helpers import KNOWN_TONES, one_thread, tone_run  # noqa: F401 - the fixture

from astapp.evaluation import unknown
from astapp.jobs.manager import JobManager
from astapp.jobs.sessions import owner_id
from astapp.service import Service

RUN_ID = "20260101-000000-abcdef"


@pytest.mark.slow
def test_the_unknown_score_in_the_evaluate_and_predict_tabs(tmp_path, tiny_ast):
    run, data, other = tone_run(tmp_path / "t", tiny_ast, unknown_keep=0.9)
    root = tmp_path / "root"
    svc = Service(JobManager(root, start=False), hub_online=False)
    with launched(svc.manager, service=svc) as url:
        c = client(url)
        dest = root / "runs" / owner_id(c.session_hash) / RUN_ID  # the run belongs to this client's session
        shutil.copytree(run, dest)
        cfg = json.loads((dest / "config.json").read_text())
        (dest / "config.json").write_text(json.dumps({**cfg, "output": str(dest)}))

        summary, plot, slider, shares = call(c, RUN_ID, api_name="/unknown_view")
        trained = unknown.load(dest / "model")
        assert "mahalanobis" in summary and plot["value"]["type"] == "matplotlib"
        assert slider["value"] == pytest.approx(trained.threshold)
        assert slider["minimum"] < min(trained.calibration["known"]) and "known (validation) clips kept" in shares

        low = slider["minimum"] + 1e-3  # below every known clip: everything is "unknown" from now on
        _, _, slider, shares = call(c, RUN_ID, low, api_name="/save_unknown_threshold")
        assert unknown.load(dest / "model").threshold == pytest.approx(low) and "0 of 8 known" in shares
        val = data / json.loads((dest / "metrics.json").read_text())["predictions"][0]["path"]
        label, _, verdict = call(c, RUN_ID, handle_file(str(val)), 2, api_name="/predict_clip")
        assert verdict.startswith("### unknown (not like any class; score ") and f"> {low:.3g}" in verdict
        assert label["label"] in KNOWN_TONES and len(label["confidences"]) == 2  # the classes stay listed

        batch = tmp_path / "batch.zip"
        with zipfile.ZipFile(batch, "w") as zf:
            zf.write(val, "a.wav")
        csv_path, preview = call(c, RUN_ID, handle_file(str(batch)), 2, api_name="/predict_batch")
        with open(csv_path, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows[0]["label"] == "unknown" and float(rows[0]["unknown"]) > low
        assert "unknown" in preview["headers"]

        sess = svc.open(c.session_hash)  # Listen live uses the saved threshold too
        listener = svc.predicting.listener(sess, RUN_ID)
        assert listener.settings.unknown_threshold == pytest.approx(low)
        from astapp.data.audio import load_audio

        listener.feed(load_audio(val))
        assert listener.view()["heard"] in ("unknown", "nothing")

        others = [handle_file(str(p)) for p in sorted(other.rglob("*.wav"))]
        summary, plot, slider, shares = call(c, RUN_ID, others, api_name="/calibrate_unknown", timeout=120)
        saved = unknown.load(dest / "model")
        assert saved.calibration["source"] == "validation+other" and len(saved.calibration["other"]) == 6
        assert "AUROC" in summary and "of 6 other sounds rejected" in shares
        assert slider["value"] == pytest.approx(saved.threshold) and saved.threshold != pytest.approx(low)
        k = np.array(saved.calibration["known"])
        assert f"{int((k <= saved.threshold).sum())} of 8 known" in shares

        (dest / "model" / unknown.STATS_JSON).unlink()  # a model from before unknown scores: one sentence
        summary, _, slider, _ = call(c, RUN_ID, api_name="/unknown_view")
        assert "exported before unknown scores" in summary and slider.get("visible") is False
