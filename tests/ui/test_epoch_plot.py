"""The validation plot draws points after one epoch (a one-point line is invisible), a line after two."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from astapp.ui.epoch_plot import epoch_value, lone_points
from astapp.ui.train_tab import add_events, frames, new_curves


def _metrics(epochs: list[str]) -> pd.DataFrame:
    rows = [{"epoch": e, "value": 0.5, "metric": m} for e in epochs for m in ("accuracy", "macro F1")]
    return pd.DataFrame(rows)


def test_one_epoch_is_sent_as_points_and_two_as_a_line():
    plot = gr.LinePlot(x="epoch", y="value", color="metric", render=False)
    one, two = _metrics(["1"]), _metrics(["1", "2"])
    points = plot.postprocess(epoch_value(one))  # a dict passes the plot's postprocess unchanged
    assert points["mark"] == "point"
    assert {k: v for k, v in points.items() if k != "mark"} == \
        {k: v for k, v in plot.postprocess(one).model_dump().items() if k != "mark"}
    assert plot.postprocess(epoch_value(two)).mark == "line"


def test_the_train_tabs_metric_frame_is_points_after_the_first_epoch_only():
    curves = add_events(new_curves("j"), [{"type": "eval", "epoch": 1.0, "accuracy": 0.5, "f1_macro": 0.4}])
    assert frames(curves)[2]["mark"] == "point"
    curves = add_events(curves, [{"type": "eval", "epoch": 2.0, "accuracy": 0.6, "f1_macro": 0.5}])
    assert isinstance(frames(curves)[2], pd.DataFrame)


def test_lone_points_looks_at_each_series():
    assert lone_points(_metrics(["1"]), "epoch", "metric")
    assert not lone_points(_metrics(["1", "2"]), "epoch", "metric")
    assert lone_points(pd.DataFrame({"epoch": [1.0], "value": [0.3]}), "epoch", None)
    assert not lone_points(pd.DataFrame({"epoch": [], "value": []}), "epoch", None)
