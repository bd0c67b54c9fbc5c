"""The Evaluate tab's "Unknown sounds" section: the unknown score of the validation clips (and of the user's
"other" sounds) as a histogram with the threshold, a slider that says what a threshold keeps and rejects, saving
it into the model, and recalibrating with uploaded other sounds. State lives in the run's model (server side),
so a reload shows what was saved."""

from __future__ import annotations

from typing import Any

import gradio as gr

from astapp.service import Service, shares_line, unknown_histogram
from astapp.ui.common import Guard, heavy, session

INTRO = ("A model always answers one of its classes, even for a sound it never heard. Its **unknown score** says "
         "how unlike the training clips a clip is; above the threshold Predict, Listen live and `astapp predict` "
         "say \"unknown\" instead of forcing a class.")


def build(svc: Service, token: gr.State, run: gr.Dropdown, notice: Any) -> None:
    """The section, wired to the tab's run picker `run`; failures show in the tab's `notice` card."""
    guard = Guard()
    with gr.Accordion("Unknown sounds (\"none of these\")", open=True):
        gr.Markdown(INTRO)
        summary = gr.Markdown(elem_id="unknown-summary")
        plot = gr.Plot(label="Unknown score", show_label=False, visible=False)
        with gr.Row():
            threshold = gr.Slider(0, 1, value=0.5, label="Unknown threshold", visible=False, scale=3,
                                  elem_id="unknown-threshold", info="clips scoring above it are \"unknown\"")
            save = gr.Button("Save threshold", visible=False, scale=1, elem_id="unknown-save")
        shares = gr.Markdown(elem_id="unknown-shares")
        with gr.Row():
            other = gr.File(label="Other sounds (files or a zip): recordings the model should NOT recognise",
                            file_count="multiple", file_types=["audio", ".zip"], height=110, scale=3,
                            elem_id="unknown-other")
            calibrate = gr.Button("Calibrate (with these sounds, if any)", scale=1, elem_id="unknown-calibrate")
    outputs = [summary, plot, threshold, save, shares]

    def show(view: Any) -> tuple[Any, ...]:
        if not view.available:
            return (view.note, gr.Plot(None, visible=False), gr.Slider(visible=False), gr.Button(visible=False), "")
        head = f"Score: **{view.method}**" + (f" · AUROC known vs other sounds **{view.auroc:.3f}**"
                                             if view.auroc is not None else "")
        if view.note:
            head += f"\n\n{view.note}"
        value = view.threshold if view.threshold is not None else view.high
        return (head, gr.Plot(unknown_histogram(view.known, view.other, view.threshold), visible=True),
                gr.Slider(minimum=view.low, maximum=view.high, value=value, step=(view.high - view.low) / 200,
                          visible=True), gr.Button(visible=True), shares_line(view, view.threshold))

    @guard
    def view_fn(run_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        if not run_id:
            return ("", gr.Plot(None, visible=False), gr.Slider(visible=False), gr.Button(visible=False), "")
        return show(svc.unknown.view(session(svc, tok, request), run_id))

    @guard
    def preview_fn(run_id: str | None, t: float, tok: str | None, request: gr.Request) -> tuple[Any, Any]:
        view = svc.unknown.view(session(svc, tok, request), run_id)
        return shares_line(view, float(t)), gr.Plot(unknown_histogram(view.known, view.other, float(t)))

    @guard
    def save_fn(run_id: str | None, t: float, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return show(svc.unknown.save(session(svc, tok, request), run_id, t))

    @guard
    def calibrate_fn(run_id: str | None, files: Any, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        paths = [getattr(f, "name", f) for f in (files or [])]
        return show(svc.unknown.calibrate(session(svc, tok, request), run_id, paths))

    def say(message: str, *_: Any) -> str:
        return f"The unknown score was not changed: {message}"

    guard.keep(run.change(view_fn, [run, token], outputs, api_name="unknown_view", **heavy()), outputs, notice)
    guard.keep(threshold.release(preview_fn, [run, threshold, token], [shares, plot], api_name="unknown_preview",
                                 show_progress="hidden"), [shares, plot], notice)
    guard.keep(save.click(save_fn, [run, threshold, token], outputs, api_name="save_unknown_threshold"), outputs,
               notice, say=say)
    guard.keep(calibrate.click(calibrate_fn, [run, other, token], outputs, api_name="calibrate_unknown", **heavy()),
               outputs, notice, say=say)
