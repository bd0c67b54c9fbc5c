"""The Train tab's "Find good settings" accordion: a settings search over the form's run (any mode),
live (trial number, best so far, score per trial), stop and continue, then "train the best" as a normal run.

Everything shown is read back from the search's run folder (`svc.tuning.view`), so a reload loses nothing.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from astapp.service import Service, fmt_score, series_plot
from astapp.ui.common import guarded, session

TRIALS = ["trial", "macro F1", "state", "settings"]
POLL_SECONDS = 2.0


def build(svc: Service, token: gr.State, form: dict[str, Any], tab: gr.Tab) -> None:
    """Inside the Train tab (`tab`: the view loads when it opens); `form` is the Train form's {field: control}."""
    with gr.Accordion("Find good settings (search; frozen / last-N trials take seconds, full / LoRA trials are trainings)", open=False, elem_id="tune-box"):
        with gr.Row():
            trials = gr.Number(30, label="Trials", precision=0, minimum=1, maximum=1000, min_width=120,
                               info="1 to 1000: frozen / last-N: a head fit on one cached pass (seconds); full / LoRA: a training")
            minutes = gr.Number(0, label="Time budget (minutes, 0: none)", min_width=120)
            start = gr.Button("Find good settings", variant="secondary", elem_id="tune-start")
            stop = gr.Button("Stop search", variant="stop", size="md")
            resume = gr.Button("Continue search", size="md")
            best = gr.Button("Train the best", variant="primary", size="md", elem_id="tune-train-best")
        status = gr.Markdown("No search yet.", elem_id="tune-status")
        with gr.Row():
            plot = gr.Plot(show_label=False, scale=3, elem_id="tune-plot")
            table = gr.Dataframe(headers=TRIALS, interactive=False, max_height=300, scale=2, elem_id="tune-trials")
        timer = gr.Timer(POLL_SECONDS, active=False)
    _wire(svc, token, form, locals())


def _status(v: Any) -> str:
    if v.run_id is None:
        return v.message
    n = len(v.trials)
    best = f"best so far: trial {v.best['number']}, macro F1 {fmt_score(v.best['value'])}" if v.best else "no result yet"
    head = f"**Search {v.run_id} · {v.state}** · trial {n}/{v.planned or '?'} · {best}"
    if v.default_value is not None:
        head += f" · default settings {fmt_score(v.default_value)}"
    if v.test:
        t = v.test
        head += (f"\n\nHeld-back test ({t.get('clips')} clips, scored once): default "
                 f"{fmt_score((t.get('default') or {}).get('f1_macro'))}"
                 + (f", best {fmt_score(t['best']['f1_macro'])}" if t.get("best") else ""))
    return head + (f"\n\n{v.message}" if v.message else "")


def _render(v: Any) -> tuple[Any, ...]:
    xs = [t["number"] for t in v.trials]
    series = {"trial": (xs, [t["value"] for t in v.trials]),
              "best so far": (xs, v.best_so_far())}
    if v.default_value is not None and xs:
        series["default settings"] = ([min(xs), max(xs)], [v.default_value] * 2)
    fig = series_plot({k: (x, y) for k, (x, y) in series.items() if not all(math.isnan(i) for i in y)},
                      "trial", "macro F1 (search validation)", "Score per trial", marker="o") if xs else None
    rows = [[t["number"], round(float(t["value"]), 4), t["state"],
             ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())]
            for t in v.trials]
    return _status(v), fig, rows, gr.Timer(active=v.state in ("queued", "running"))


def _wire(svc: Service, token: gr.State, form: dict[str, Any], c: dict[str, Any]) -> None:
    outputs = [c["status"], c["plot"], c["table"], c["timer"]]

    def show(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return _render(svc.tuning.view(session(svc, tok, request)))

    def start(tok: str | None, trials: Any, minutes: Any, request: gr.Request, **values: Any) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        run_id = svc.tuning.start(sess, values, trials, minutes)
        return _render(svc.tuning.view(sess, run_id))

    def stop(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        svc.tuning.stop(session(svc, tok, request))
        return show(tok, request)

    def resume(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        return _render(svc.tuning.view(sess, svc.tuning.resume(sess)))

    def train_best(tok: str | None, request: gr.Request) -> str:
        run_id = svc.tuning.train_best(session(svc, tok, request))
        return f"Training the best settings as run {run_id}: follow it above; it is a normal run (Evaluate, Predict)."

    c["start"].click(guarded(start), [token, c["trials"], c["minutes"]], outputs, inputs_kwargs=form,
                     api_name="tune_start")
    c["tab"].select(guarded(show), [token], outputs, api_visibility="private", show_progress="hidden")
    c["timer"].tick(guarded(show), [token], outputs, api_name="tune_poll", show_progress="hidden")
    c["stop"].click(guarded(stop), [token], outputs, api_name="tune_stop")
    c["resume"].click(guarded(resume), [token], outputs, api_name="tune_resume")
    c["best"].click(guarded(train_best), [token], c["status"], api_name="tune_train_best")
