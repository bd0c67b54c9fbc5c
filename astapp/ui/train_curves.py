"""The Train tab's live curves: the points a page has been sent, and when its plots are redrawn.

A line plot's update is the most expensive thing a poll asks of the page: the browser re-runs the
chart (layout and SVG) for all its points, three charts each time. Sent every second, that kept a
Train tab's main thread busy all the time on a loaded 2-core machine (issue 24), so clicks (Stop) and
the status waited seconds behind it. The status and progress bar still change on every poll; the
plots of a running job are redrawn at most every PLOT_SECONDS, and only those whose points changed.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

PLOT_SECONDS = 5.0  # a running job's plots are redrawn at most this often (status and progress: every poll)


def new_curves(job_id: str | None = None) -> dict[str, Any]:
    """What the page has drawn of one job: its cursor and the points of every curve."""
    return {
        "job": job_id,
        "cursor": 0,
        "loss": [],
        "lr": [],
        "metric": [],
        "max_length": None,
        "split": None,
        "epochs": None,
        "plotted": {"at": None, "sizes": None},  # when, and with how many points, the plots were last sent
    }


def add_events(curves: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Add the points of new events: loss and learning rate per step, accuracy/F1 per epoch."""
    for e in events:
        kind = e.get("type")
        if isinstance(e.get("max_length"), int):
            curves["max_length"] = e["max_length"]
        if kind == "stage" and e.get("stage") == "split":
            curves["split"] = e.get("message")
        if kind == "log" and e.get("step") is not None:
            if isinstance(e.get("loss"), (int, float)):
                curves["loss"].append({"step": int(e["step"]), "loss": float(e["loss"])})
            if isinstance(e.get("lr"), (int, float)):
                curves["lr"].append({"step": int(e["step"]), "learning rate": float(e["lr"])})
        elif kind == "eval" and isinstance(e.get("epoch"), (int, float)):
            epoch = float(e["epoch"])  # a number (possibly fractional), from the first point to the last
            for key, name in (("accuracy", "accuracy"), ("f1_macro", "macro F1")):
                if isinstance(e.get(key), (int, float)):
                    curves["metric"].append({"epoch": epoch, "value": float(e[key]), "metric": name})
    return curves


def frames(curves: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The curves as DataFrames for the line plots.

    An empty series is None, not an empty frame: a Gradio 6.31 line plot that first receives an empty
    frame keeps an empty color domain and later draws its lines with no stroke (invisible).
    """
    import pandas as pd

    loss, lr, metrics = curves["loss"], curves["lr"], curves["metric"]
    # Explicit dtypes so the axes are numeric (object columns would be drawn as categories). Epochs too, from
    # the first point: the page keeps the axis type of the first value it gets, so text labels for the first
    # few then numbers would garble it (issue 24); the run's epochs fix the axis range once (no rescaling).
    epochs = curves.get("epochs")
    metric = (
        pd.DataFrame(metrics).astype({"epoch": "float64", "value": "float64", "metric": "str"})
        if metrics
        else None
    )
    return (
        pd.DataFrame(loss).astype({"step": "int64", "loss": "float64"}) if loss else None,
        pd.DataFrame(lr).astype({"step": "int64", "learning rate": "float64"}) if lr else None,
        gr.update(value=metric, x_lim=[0, epochs]) if epochs else metric,
    )


def plot_updates(curves: dict[str, Any], force: bool, now: float | None = None) -> list[Any]:
    """The loss, learning-rate and metric plots' updates for one poll: all of them when `force` (a new run
    on screen, or one that has ended: its whole curve), else only the grown ones, and only once
    PLOT_SECONDS have passed since the last redraw (`now`: a monotonic clock, for tests)."""
    now = time.monotonic() if now is None else now
    sizes = [len(curves["loss"]), len(curves["lr"]), len(curves["metric"])]
    last = curves.get("plotted") or {"at": None, "sizes": None}
    recent = last["at"] is not None and now - last["at"] < PLOT_SECONDS
    if not force and (sizes == last["sizes"] or recent):
        return [gr.update()] * 3
    curves["plotted"] = {"at": now, "sizes": sizes}
    drawn = frames(curves)
    if force or last["sizes"] is None:
        return list(drawn)
    return [frame if n != m else gr.update() for frame, n, m in zip(drawn, sizes, last["sizes"], strict=True)]
