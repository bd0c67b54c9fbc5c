"""The Augment tab's wiring: what follows a change of its controls."""

from __future__ import annotations

import gradio as gr

from astapp.jobs.manager import JobManager
from astapp.service import Service
from astapp.ui import augment_tab


def test_a_preset_change_redraws_the_preview_at_once(tmp_path):
    svc = Service(JobManager(tmp_path, start=False), hub_online=False)
    with gr.Blocks() as demo:
        augment_tab.build(svc, gr.State(None))
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in demo.config["components"]}
    deps = demo.config["dependencies"]
    on_preset = [d["id"] for d in deps if [ids["augment-preset"], "input"] in [list(t) for t in d["targets"]]]
    assert on_preset, "the preset's input event is wired"
    redraw = [d for d in deps if d.get("trigger_after") in on_preset and ids["augment-plot"] in d["outputs"]]
    assert redraw, "a preset change is followed by a preview"
