"""The cross-validation section: the label issues' reasons in words, and a one-click manifest download."""

from __future__ import annotations

import gradio as gr

from astapp.ui.cv_view import ISSUE_WIDTHS, ISSUES, why


def test_why_says_the_reason_in_words():
    label = why({"kind": "label", "given": "rain", "suggested": "wind", "score": 0.93})
    assert "'rain' only 7%" in label and "'wind'" in label
    disagrees = why({"kind": "prediction disagrees", "given": "rain", "suggested": "wind", "score": 0.6})
    assert "predicts 'wind'" in disagrees and "'rain' only 40%" in disagrees
    dup = why({"kind": "near-duplicate of a/b.wav", "given": "rain", "suggested": "wind", "score": 0.49})
    assert dup == "near-duplicate of a/b.wav with another label ('wind')"
    assert len(ISSUE_WIDTHS) == len(ISSUES)


def test_the_manifest_is_ready_before_its_download_button_is_clicked(tmp_path):
    from astapp.jobs.manager import JobManager
    from astapp.service import Service
    from astapp.ui import cv_view

    svc = Service(JobManager(tmp_path, start=False), hub_online=False)
    with gr.Blocks() as demo:
        run = gr.Dropdown(choices=[], allow_custom_value=True)
        cv_view.build(svc, gr.State(None), run)
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in demo.config["components"]}
    issues = next(c for c in demo.config["components"] if c["id"] == ids["cv-issues"])
    assert issues["props"]["wrap"] is True
    prepared = [d for d in demo.config["dependencies"] if [ids["cv-issues"], "change"] in
                [list(t) for t in d["targets"]] and ids["cv-manifest"] in d["outputs"]]
    assert prepared, "a change of the corrections prepares the download button's file"
