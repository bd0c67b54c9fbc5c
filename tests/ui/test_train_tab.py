"""The Train tab's live curves as the page gets them, poll after poll (issue 24: the epoch axis)."""

from __future__ import annotations

import gradio as gr

from astapp.service import Poll
from astapp.ui.train_curves import PLOT_SECONDS
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
        out = render(poll, drawn, now=i * PLOT_SECONDS)  # every poll a redraw (the next test: fewer)
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


def _step(step: int) -> dict:
    return {"type": "log", "step": step, "loss": 1.0 / step, "lr": 1e-4}


def test_a_running_jobs_plots_are_redrawn_at_most_every_plot_seconds_and_only_those_that_grew():
    """Issue 24: a redraw of three charts every second kept a loaded browser's main thread busy, so Stop
    waited behind it. The status and progress change on every poll; the plots of a running job only every
    PLOT_SECONDS (the accuracy plot only when an epoch was evaluated), and all of them once it has ended."""
    drawn, sent = new_curves(), []
    for i in range(1, 13):  # a poll a second, with a new step each time and an evaluation at poll 8
        events = [_step(i)] + ([_eval(1.0, 0.5)] if i == 8 else [])
        snap = {"state": "running", "run_id": "r", "epochs": 2, "progress": i / 24}
        out = render(Poll(snap, events, i, "r", reset=i == 1), drawn, now=float(i))
        drawn = out[1]
        sent.append(
            [isinstance(u, dict) and u.get("__type__") == "update" and "value" not in u for u in out[5:8]]
        )  # True: the plot is left as it is
        assert f"{i / 24 * 100:.0f}%" in out[4]  # the progress bar follows every poll
    redrawn = [i + 1 for i, skipped in enumerate(sent) if not all(skipped)]
    assert redrawn == [1, 6, 11], redrawn  # the first poll, then every PLOT_SECONDS
    assert sent[5] == [False, False, True] and sent[10] == [False, False, False], (
        sent
    )  # accuracy once evaluated
    finished = render(Poll({"state": "finished", "run_id": "r", "epochs": 2}, [], 12, "r"), drawn, now=12.5)
    assert all(u is not None and not (isinstance(u, dict) and "value" not in u) for u in finished[5:8]), (
        finished[5:8]
    )
