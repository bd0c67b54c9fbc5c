"""The Train tab's cross-validation controls: folds, the final model, and the time it will take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.service import Service
from astapp.ui.common import session


@dataclass
class CVControls:
    folds: gr.Textbox
    final: gr.Checkbox
    start: gr.Button
    estimate: gr.Markdown


def build() -> CVControls:
    """Inside the Train tab: a collapsed row next to the training buttons."""
    with gr.Accordion("Cross-validate instead (scores per fold, label issues, embedding map)", open=False,
                      elem_id="cv-box"):
        with gr.Row():
            folds = gr.Textbox("auto", label="Folds", min_width=120, elem_id="cv-folds",
                               info="auto: the dataset's folds, else 5 (grouped by source recording)")
            final = gr.Checkbox(False, label="Then train the final model", elem_id="cv-final")
            start = gr.Button("Cross-validate", variant="secondary", elem_id="cv-btn", scale=1)
        estimate = gr.Markdown(elem_classes=["astapp-hint"], elem_id="cv-estimate")
    return CVControls(folds, final, start, estimate)


def wire(svc: Service, token: gr.State, c: CVControls, form: dict[str, Any]) -> None:
    """The estimate follows the mode, the folds and the dataset; it is said before anything starts.
    `form` is the Train form's {field: control}."""

    def estimate_fn(tok: str | None, folds: str, request: gr.Request, **values: Any) -> str:
        try:
            return svc.crossval.estimate(session(svc, tok, request), values, folds)
        except Exception:  # noqa: BLE001 - only a hint
            return ""

    gr.on([c.folds.change, form["mode"].change, c.start.click], estimate_fn, [token, c.folds], c.estimate,
          inputs_kwargs=form, api_visibility="private", show_progress="hidden")
