"""The Predict tab's wiring: a failed model-card preview or publish says so under its buttons."""

from __future__ import annotations

import gradio as gr

from astapp.jobs.manager import JobManager
from astapp.service import Service
from astapp.ui import predict_tab


def test_a_failed_card_preview_is_reported_next_to_its_button(tmp_path):
    svc = Service(JobManager(tmp_path, start=False), hub_online=False)
    with gr.Blocks() as demo:
        predict_tab.build(svc, gr.State(None))
    comps = demo.config["components"]
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in comps}
    deps = demo.config["dependencies"]
    for api in ("model_card", "publish_model"):
        event = next(d for d in deps if d.get("api_name") == api)
        after = [d["outputs"] for d in deps if d.get("trigger_after") == event["id"]]
        assert any(ids["publish-notice"] in out for out in after), api
        assert not any(ids["predict-notice"] in out for out in after), api
    # the notice sits right under the buttons' row, before the result and the card
    order = [c["id"] for c in comps]
    assert order.index(ids["card-btn"]) < order.index(ids["publish-notice"]) < order.index(ids["publish-result"])
