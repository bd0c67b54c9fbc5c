"""The validation curve's value: drawn as points while there is one epoch to draw.

Gradio 6.31 draws a line plot with a vega-lite `line` mark, and a line through one point has no length:
after the first epoch the chart looks empty. The mark travels with each value (`PlotData.mark`), and a
native plot passes a value that is already a dict through unchanged, so a frame whose every series has a
single point is sent as that dict with a `point` mark; from the second epoch on it is a line again. (A
subclass of `gr.LinePlot` would do it too, but Gradio writes a `.pyi` file beside every component class.)
"""

from __future__ import annotations

import json
from typing import Any


def lone_points(value: Any, x: str, color: str | None) -> bool:
    """Whether no series of `value` (a DataFrame) has two x values: nothing to draw a line between."""
    if value is None or not hasattr(value, "groupby") or len(value) == 0 or x not in value:
        return False
    groups = value.groupby(color)[x] if color and color in value else [(None, value[x])]
    return all(series.nunique() <= 1 for _, series in groups)


def as_points(frame: Any) -> dict[str, Any]:
    """`frame` as a native plot's value (what `gr.LinePlot.postprocess` makes of it) with a point mark."""
    import pandas as pd

    split = json.loads(frame.to_json(orient="split"))
    types = {c: "quantitative" if pd.api.types.is_numeric_dtype(frame[c]) else "nominal" for c in frame.columns}
    return {"columns": split["columns"], "data": split["data"], "datatypes": types, "mark": "point"}


def epoch_value(frame: Any, x: str = "epoch", color: str | None = "metric") -> Any:
    """The value for the per-epoch plot: points while each series has one, else the frame (a line)."""
    return as_points(frame) if lone_points(frame, x, color) else frame
