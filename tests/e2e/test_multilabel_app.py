"""The app on a multi-label run (gradio_client): Evaluate shows mAP and editable per-label thresholds that
the exported model then uses; Predict shows every label over its threshold."""

from __future__ import annotations

import json
import shutil

import pytest
from app_helpers import call, client, launched, train_args, wait_state
from conftest import build_tiny_ast
from gradio_client import handle_file

from astapp.data.synth import make_multilabel_dataset

KINDS = ["chirp", "noise", "square"]


@pytest.mark.slow
def test_multi_label_run_in_evaluate_and_predict(tmp_path):
    from astapp.jobs.manager import JobManager

    data = make_multilabel_dataset(tmp_path / "mix" / "sounds", kinds=tuple(KINDS), per_combo=3, seconds=0.6,
                                   seed=3)
    upload = shutil.make_archive(str(tmp_path / "mix_upload"), "zip", data.parent, data.name)
    ckpt = build_tiny_ast(tmp_path / "ckpt", max_length=128)
    manager = JobManager(root=tmp_path / "root")
    try:
        with launched(manager) as url:
            c = client(url)
            summary, *_ = call(c, handle_file(upload), api_name="/upload_dataset")
            assert "**Multi-label**" in summary and "21 clips" in summary  # not the overlapping per-label sum
            call(c, **train_args(1, model=str(ckpt), max_length="64", batch_size=8), api_name="/start_training")
            snap = wait_state(c, ("finished", "failed"), timeout=180)
            assert "finished" in snap["status"], snap["log"]

            run_id = call(c, None, api_name="/list_runs")["value"]
            head, curves, _per_class, _mistakes, *rest = call(c, run_id, api_name="/evaluate_run")
            assert curves and curves.get("type") == "matplotlib"  # precision/recall per label
            assert rest[6]["visible"] is True
            table = rest[6]["value"]  # after the 6 players; shown through an update (made visible)
            assert "mAP" in head and "micro F1" in head
            rows = {r[0]: dict(zip(table["headers"], r, strict=True)) for r in table["data"]}
            assert sorted(rows) == KINDS and all(0 < r["threshold"] < 1 for r in rows.values())

            edited = {"headers": table["headers"],
                      "data": [[*r[:2], 0.001 if r[0] == "chirp" else r[2], *r[3:]] for r in table["data"]]}
            _head, _matrix, _per_class, _mistakes, *rest = call(c, run_id, edited, api_name="/save_thresholds")
            saved = {r[0]: r[2] for r in rest[6]["value"]["data"]}
            assert saved["chirp"] == 0.001 and saved["noise"] == rows["noise"]["threshold"]
            config = json.loads(next((tmp_path / "root" / "runs").rglob("model/config.json")).read_text())
            assert config["thresholds"]["chirp"] == 0.001  # the exported model uses the edited threshold

            clip = next(data.glob("clips/01_*.wav"))  # a 'noise' clip: chirp now passes its tiny threshold
            label, _timeline, _verdict = call(c, run_id, handle_file(str(clip)), 3, api_name="/predict_clip")
            shown = {item["label"] for item in label.get("confidences") or []}
            assert "chirp" in shown and shown <= set(KINDS)

            bad = dict(edited, data=[[r[0], r[1], 1.5, *r[3:]] for r in edited["data"]])
            try:
                call(c, run_id, bad, api_name="/save_thresholds")
                raise AssertionError("a threshold of 1.5 was accepted")
            except Exception as exc:  # noqa: BLE001 - gradio_client raises AppError with the sentence
                assert "between 0 and 1" in str(exc)
    finally:
        manager.shutdown(timeout=30)
