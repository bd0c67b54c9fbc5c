"""The Train tab's live curves as the page gets them, poll after poll (issue 24: the epoch axis)."""

from __future__ import annotations

import gradio as gr

from astapp.service import Poll
from astapp.ui.train_tab import new_curves, render

METRIC = 7  # render()'s outputs: job, curves, shown, status, progress, loss, lr, metric, log, timer


def _metric_plot(update):
    """What the page's metric plot receives: the value as the component sends it, and its x range."""
    plot = gr.LinePlot(x="epoch", y="value", color="metric")
    value = update["value"] if isinstance(update, dict) else update
    return plot.postprocess(value), update.get("x_lim") if isinstance(update, dict) else None


def _eval(epoch: float, acc: float) -> dict:
    return {"type": "eval", "epoch": epoch, "accuracy": acc, "f1_macro": acc - 0.1}


def test_the_epoch_axis_is_numeric_with_the_runs_range_from_the_first_point_to_the_last():
    """The page keeps the x type of the first value it gets: epochs were text up to 9 points and numbers
    from 10, so a long run's axis garbled mid-run. Every poll now sends numeric epochs (fractional ones
    too) and the range of the run's epochs, fixed from the first poll."""
    drawn, cursor, seen = new_curves(), 0, []
    evals = [_eval(0.5, 0.2)] + [_eval(e, 0.3 + e / 40) for e in range(1, 13)]
    for i, ev in enumerate([None, *evals]):  # the first poll: running, no eval yet
        snap = {"state": "running", "run_id": "r", "epochs": 12, "progress": i / len(evals)}
        poll = Poll(snap, [ev] if ev else [], cursor + (1 if ev else 0), "r", reset=cursor == 0 and i == 0)
        out = render(poll, drawn)
        drawn, cursor = out[1], poll.cursor
        value, x_lim = _metric_plot(out[METRIC])
        assert x_lim == [0, 12], (i, x_lim)
        if value is not None:
            assert value.datatypes["epoch"] == "quantitative", (i, value.datatypes)
            seen.append(sorted({row[value.columns.index("epoch")] for row in value.data}))
    assert seen[0] == [0.5] and seen[-1] == [0.5, *range(1, 13)]
    finished = render(Poll({"state": "finished", "run_id": "r", "epochs": 12}, [], cursor, "r"), drawn)
    value, x_lim = _metric_plot(finished[METRIC])
    assert value.datatypes["epoch"] == "quantitative" and x_lim == [0, 12]
