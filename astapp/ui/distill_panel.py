"""Distillation on the page: the Train tab's "Make a small fast version" accordion, the Evaluate tab's
teacher-vs-student table, and the line under the Predict tab's model picker (Predict and Listen live) saying
which model answers and how fast it measured on this machine. State stays server-side: the student is a run
of the session like any other, so a reload shows it in the pickers and the Train tab follows its job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.core.config import DISTILL_EPOCHS
from astapp.service import Service
from astapp.ui.common import guarded, session

SIZES = [("tiny: hidden 192, 4 layers (fastest)", "tiny"), ("small: hidden 384, 6 layers", "small")]
TABLE_HEADERS = ["", "teacher", "student"]


@dataclass
class DistillControls:
    size: gr.Dropdown
    epochs: gr.Number
    pool: gr.File
    start: gr.Button


def build() -> DistillControls:
    """Inside the Train tab, below the buttons: a collapsed accordion about the run on screen."""
    with gr.Accordion("Make a small fast version (of the finished run shown below)", open=False,
                      elem_id="distill-box"):
        gr.Markdown("The run becomes the **teacher** of a much smaller model that learns to answer like it: "
                    "several times faster for Listen live and long recordings, a fraction of the download. "
                    "Unlabeled recordings (optional) help most: the teacher labels them for the student.",
                    elem_classes=["astapp-hint"])
        with gr.Row():
            size = gr.Dropdown(SIZES, value="tiny", label="Student size", allow_custom_value=True,
                               elem_id="distill-size", info="or HIDDENxLAYERS, e.g. 128x2")
            epochs = gr.Number(DISTILL_EPOCHS, label="Epochs", precision=0, minimum=1, elem_id="distill-epochs")
            pool = gr.File(label="Unlabeled audio (zip, optional)", file_types=[".zip"], elem_id="distill-pool")
            start = gr.Button("Make a small fast version", variant="secondary", elem_id="distill-btn", scale=1)
    return DistillControls(size, epochs, pool, start)


def wire(svc: Service, token: gr.State, c: DistillControls, job: gr.State, outputs: list[Any],
         follow: Callable[[Any, str], tuple[Any, ...]]) -> None:
    """Start the student of the run on screen (`job`); the Train tab then follows its job (`follow`)."""

    @guarded
    def start_fn(run_id: str | None, size: str, epochs: float | None, pool: Any, tok: str | None,
                 request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        path = getattr(pool, "name", pool) if pool else None
        return follow(sess, svc.distilling.start(sess, run_id, size or "tiny", path, epochs or None))

    c.start.click(start_fn, [job, c.size, c.epochs, c.pool, token], outputs, api_name="start_distill")


def table(svc: Service, token: gr.State, run: gr.Dropdown) -> None:
    """The Evaluate tab's teacher-vs-student table: shown for a student run only."""
    frame = gr.Dataframe(headers=TABLE_HEADERS, label="Teacher vs student (same validation clips)",
                         interactive=False, visible=False, elem_id="distill-table")

    def table_fn(run_id: str | None, tok: str | None, request: gr.Request) -> Any:
        try:
            rows = svc.distilling.table(session(svc, tok, request), run_id)
        except Exception:  # noqa: BLE001 - the run's own evaluation says what is wrong with it
            rows = []
        return gr.Dataframe(value=rows or None, visible=bool(rows))

    run.change(table_fn, [run, token], frame, api_name="distill_table", show_progress="hidden")


def model_note(svc: Service, token: gr.State, run: gr.Dropdown) -> None:
    """Under the Predict tab's picker: which model answers (the student when there is one) and its speed."""
    note = gr.Markdown(elem_classes=["astapp-hint"], elem_id="model-note")

    def note_fn(run_id: str | None, tok: str | None, request: gr.Request) -> str:
        try:
            return svc.distilling.model_note(session(svc, tok, request), run_id)
        except Exception:  # noqa: BLE001 - only a hint
            return ""

    run.change(note_fn, [run, token], note, api_name="model_note", show_progress="hidden")
