"""Evaluate tab: confusion matrix, per-class precision/recall/F1 and the mistakes of a finished run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.service import Service, fmt_score
from astapp.ui import cv_view
from astapp.ui.common import (
    Guard,
    guarded,
    heavy,
    notice_card,
    pcm16,
    picker_update,
    plural,
    run_choices,
    session,
)

N_PLAYERS = 6
PER_ROW = 3  # wide enough that every player's controls show at 800 px and at 1400 px
PER_CLASS = ["class", "precision", "recall", "f1", "support"]
MISTAKES = ["file", "true", "predicted", "confidence"]


@dataclass
class EvaluateTab:
    tab: gr.Tab
    run: gr.Dropdown


def build(svc: Service, token: gr.State) -> EvaluateTab:
    guard = Guard()
    with gr.Tab("4 · Evaluate", id="evaluate") as tab:
        with gr.Row():
            run = gr.Dropdown(label="Run", choices=[], scale=4, elem_id="eval-run", allow_custom_value=True)
            refresh = gr.Button("Refresh runs", scale=1, size="md", min_width=140)
        notice = notice_card("eval-notice")
        summary = gr.Markdown("Pick a finished run to see how it does on the validation clips.",
                              elem_id="eval-summary")
        with gr.Column() as standard:  # hidden for a cross-validation run (it has no single validation)
            with gr.Row():
                matrix = gr.Plot(label="Confusion matrix", show_label=False, scale=3)
                per_class = gr.Dataframe(label="Per class", interactive=False, scale=2, headers=PER_CLASS)
            gr.Markdown("#### Mistakes on the validation clips")
            mistakes = gr.Dataframe(label="Misclassified", interactive=False, max_height=260, headers=MISTAKES)
            players: list[gr.Audio] = []
            for row in range(N_PLAYERS // PER_ROW):
                with gr.Row(elem_classes=["astapp-players"]):
                    for i in range(PER_ROW):
                        players.append(gr.Audio(label=f"mistake {row * PER_ROW + i + 1}", visible=False,
                                                interactive=False, buttons=[], min_width=300,
                                                elem_classes=["astapp-mistake"]))
        cv = cv_view.build(svc, token, run)

    @guarded
    def refresh_fn(current: str | None, tok: str | None, request: gr.Request) -> Any:
        sess = session(svc, tok, request)
        return picker_update(run_choices(svc.runs(sess, need_metrics=True)),
                             current or svc.state(sess).evaluate_run)

    @guard
    def evaluate_fn(run_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        import pandas as pd

        from astapp.service import confusion_matrix

        if not run_id:
            return ("No finished run yet: train one in the *Train* tab, then pick it here.", gr.Column(visible=True),
                    None,
                    pd.DataFrame(columns=PER_CLASS), pd.DataFrame(columns=MISTAKES),
                    *[gr.Audio(value=None, visible=False)] * N_PLAYERS)
        sess = session(svc, tok, request)
        ev = svc.evaluation(sess, run_id, players=N_PLAYERS)
        svc.remember(sess, evaluate_run=run_id)
        head = (f"### {ev.run.name} · {ev.run.state}\n**Accuracy {fmt_score(ev.accuracy)}** · macro F1 "
                f"{fmt_score(ev.f1_macro)} · {plural(len(ev.predictions), 'validation clip')}, "
                f"{plural(len(ev.mistakes), 'mistake')}")
        if ev.cross_validation:
            head = f"### {ev.run.name} · {ev.run.state}\nA cross-validation run: its folds, map and label issues follow."
        fig = confusion_matrix(ev.confusion, ev.labels) if ev.confusion else None
        mist = pd.DataFrame([{"file": p.get("path", ""), "true": p.get("true", ""), "predicted": p.get("pred", ""),
                              "confidence": round(float(p.get("prob") or 0), 3)} for p in ev.mistakes],
                            columns=MISTAKES)
        outs: list[Any] = [gr.Audio(value=pcm16(audio), visible=True, label=label) for label, audio in ev.players]
        outs += [gr.Audio(value=None, visible=False)] * (N_PLAYERS - len(outs))
        return (head, gr.Column(visible=not ev.cross_validation), fig, pd.DataFrame(ev.per_class, columns=PER_CLASS),
                mist, *outs)

    refresh.click(refresh_fn, [run, token], run, api_name="list_runs")
    tab.select(refresh_fn, [run, token], run, api_visibility="private")
    outputs = [summary, standard, matrix, per_class, mistakes, *players]
    shown = run.change(evaluate_fn, [run, token], outputs, api_name="evaluate_run", **heavy())
    guard.keep(shown, outputs, notice, say=lambda message, *_: f"This run cannot be shown: {message}")
    run.change(guarded(cv.show), [run, token], cv.outputs, api_name="cv_view", **heavy())
    return EvaluateTab(tab, run)
