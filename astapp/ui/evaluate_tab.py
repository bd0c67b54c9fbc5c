"""Evaluate tab: confusion matrix, per-class precision/recall/F1 and the mistakes of a finished run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.service import Service, fmt_score
from astapp.ui import cv_view, distill_panel, runs_view, unknown_view
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
THRESHOLDS = ["label", "ap", "threshold", "precision", "recall", "f1", "support"]  # multi-label runs


@dataclass
class EvaluateTab:
    tab: gr.Tab
    run: gr.Dropdown


def build(svc: Service, token: gr.State) -> EvaluateTab:
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
            thresholds = gr.Dataframe(label="Per label (multi-label): edit a threshold, then save; the exported "
                                      "model and Predict use the saved ones", headers=THRESHOLDS, interactive=True,
                                      visible=False, elem_id="eval-thresholds")
            save = gr.Button("Save thresholds", visible=False, size="md", elem_id="eval-save-thresholds")
            unknown_view.build(svc, token, run, notice)
            gr.Markdown("#### Mistakes on the validation clips")
            mistakes = gr.Dataframe(label="Misclassified", interactive=False, max_height=260, headers=MISTAKES)
            players = _players()
        cv = cv_view.build(svc, token, run)
        distill_panel.table(svc, token, run)
        runs_view.build(svc, token, tab)
    outputs = [summary, standard, matrix, per_class, mistakes, *players, thresholds, save]
    _wire(svc, token, tab, run, refresh, notice, outputs, save)
    run.change(guarded(cv.show), [run, token], cv.outputs, api_name="cv_view", **heavy())
    return EvaluateTab(tab, run)


def _players() -> list[gr.Audio]:
    """Players for the first mistakes, a few per row (hidden until a run has them)."""
    players: list[gr.Audio] = []
    for row in range(N_PLAYERS // PER_ROW):
        with gr.Row(elem_classes=["astapp-players"]):
            for i in range(PER_ROW):
                players.append(gr.Audio(label=f"mistake {row * PER_ROW + i + 1}", visible=False,
                                        interactive=False, buttons=[], min_width=300,
                                        elem_classes=["astapp-mistake"]))
    return players


def _head(ev: Any) -> str:
    """The run's headline scores: accuracy and F1, mAP for a multi-label run, a note for cross-validation."""
    title = f"### {ev.run.name} · {ev.run.state}\n"
    if ev.cross_validation:
        return title + "A cross-validation run: its folds, map and label issues follow."
    if ev.multi_label:
        return (f"{title}**mAP {fmt_score(ev.map)}** · micro mAP {fmt_score(ev.map_micro)} · micro F1 "
                f"{fmt_score(ev.f1_micro)} at the thresholds below · {plural(len(ev.predictions), 'validation clip')}, "
                f"{plural(len(ev.mistakes), 'clip')} with a wrong label set")
    return (f"{title}**Accuracy {fmt_score(ev.accuracy)}** · macro F1 {fmt_score(ev.f1_macro)} · "
            f"{plural(len(ev.predictions), 'validation clip')}, {plural(len(ev.mistakes), 'mistake')}")


def _wire(svc: Service, token: gr.State, tab: gr.Tab, run: gr.Dropdown, refresh: gr.Button, notice: Any,
          outputs: list[Any], save: gr.Button) -> None:
    """The run picker, a run's evaluation (`outputs`), and saving edited multi-label thresholds."""
    guard = Guard()

    @guarded
    def refresh_fn(current: str | None, tok: str | None, request: gr.Request) -> Any:
        """The runs, showing the user's pick until a newer run finishes, else the newest (`current`, what
        the page showed, counts only when the picker cannot decide)."""
        runs, shown = svc.picker(session(svc, tok, request), "evaluate")
        return picker_update(run_choices(runs), shown or current)

    def pick_fn(run_id: str | None, tok: str | None, request: gr.Request) -> None:
        """The user chose a run: remembered now (not only once it has been shown)."""
        svc.pick_run(session(svc, tok, request), "evaluate", run_id)

    @guard
    def evaluate_fn(run_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        import pandas as pd

        from astapp.service import confusion_matrix, pr_curves

        if not run_id:
            return ("No finished run yet: train one in the *Train* tab, then pick it here.", gr.Column(visible=True),
                    None,
                    pd.DataFrame(columns=PER_CLASS), pd.DataFrame(columns=MISTAKES),
                    *[gr.Audio(value=None, visible=False)] * N_PLAYERS,
                    gr.Dataframe(value=pd.DataFrame(columns=THRESHOLDS), visible=False), gr.Button(visible=False))
        sess = session(svc, tok, request)
        ev = svc.evaluation.load(sess, run_id, players=N_PLAYERS)
        fig = confusion_matrix(ev.confusion, ev.labels) if ev.confusion else pr_curves(ev.curves) if ev.multi_label \
            else None
        mist = pd.DataFrame([{"file": p.get("path", ""), "true": p.get("true", ""), "predicted": p.get("pred", ""),
                              "confidence": round(float(p.get("prob") or 0), 3)} for p in ev.mistakes],
                            columns=MISTAKES)
        outs: list[Any] = [gr.Audio(value=pcm16(audio), visible=True, label=label) for label, audio in ev.players]
        outs += [gr.Audio(value=None, visible=False)] * (N_PLAYERS - len(outs))
        return (_head(ev), gr.Column(visible=not ev.cross_validation), fig,
                pd.DataFrame(ev.per_class, columns=PER_CLASS), mist, *outs,
                gr.Dataframe(value=pd.DataFrame(ev.label_rows, columns=THRESHOLDS), visible=ev.multi_label),
                gr.Button(visible=ev.multi_label))

    @guard
    def save_fn(run_id: str | None, table: Any, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        rows = table.to_dict("records") if hasattr(table, "to_dict") else [
            dict(zip(table.get("headers") or [], r, strict=False)) for r in (table or {}).get("data") or []]
        svc.thresholds.save(session(svc, tok, request), str(run_id or ""),
                           {str(r.get("label")): r.get("threshold") for r in rows if r.get("label")})
        return evaluate_fn.__wrapped__(run_id, tok, request)  # the same view, under this guard

    thresholds = outputs[-2]
    refresh.click(refresh_fn, [run, token], run, api_name="list_runs")
    tab.select(refresh_fn, [run, token], run, api_visibility="private")
    run.input(guarded(pick_fn), [run, token], None, api_visibility="private", show_progress="hidden")
    shown = run.change(evaluate_fn, [run, token], outputs, api_name="evaluate_run", **heavy())
    guard.keep(shown, outputs, notice, say=lambda message, *_: f"This run cannot be shown: {message}")
    saved = save.click(save_fn, [run, thresholds, token], outputs, api_name="save_thresholds")
    guard.keep(saved, outputs, notice, say=lambda message, *_: f"The thresholds were not saved: {message}")
