"""The Data tab's "Dataset versions" panel: every version with what changed, the clips waiting for the next
one, and going back to an older version (it becomes the dataset Train uses)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

import gradio as gr

from astapp.core.errors import DatasetError
from astapp.service import Service
from astapp.ui.common import Guard, heavy, session


@dataclass
class VersionsPanel:
    restore: Callable[..., tuple[Any, ...]]  # the list again (after a reload, or a version made elsewhere)
    outputs: list[Any]
    use: Any  # the event that makes an older version the dataset (the other tabs follow it)


def listing(svc: Service, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
    """The versions as Markdown (newest first, the one in use marked), the picker and the waiting clips."""
    view = svc.versioning.view(session(svc, tok, request))
    if not view.versions:
        text = ("No versions yet. Clips you confirm, reject or mark in *Detect* (or keep with *That was wrong* in "
                "Listen live) wait here; *Add to dataset and retrain* makes the next version from the dataset "
                "in use, which stays as it is.")
    else:
        text = "\n".join(f"- **{v.name}**{' · *in use*' if v.name == view.current else ''}: {escape(v.summary)}"
                         for v in view.versions)
    names = [v.name for v in view.versions]
    return text, gr.Dropdown(choices=names, value=view.current if view.current in names else None), \
        view.pending_line()


def build(svc: Service, token: gr.State, data_outputs: list[Any], present: Callable[[Any], tuple[Any, ...]],
          guard: Guard) -> VersionsPanel:
    text = gr.Markdown(elem_id="versions-list")
    waiting = gr.Markdown(elem_id="versions-pending")
    with gr.Row(equal_height=True):
        pick = gr.Dropdown(label="Version", choices=[], elem_id="versions-pick", scale=1)
        use = gr.Button("Use this version", elem_id="versions-use", scale=0, min_width=180)
        refresh = gr.Button("Refresh", elem_id="versions-refresh", scale=0, min_width=120)

    @guard
    def restore_fn(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return listing(svc, tok, request)

    @guard
    def use_fn(name: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        if not name:
            raise DatasetError("Pick a version first: the list shows every version of your dataset.")
        return present(svc.versioning.use(session(svc, tok, request), name))

    outputs = [text, pick, waiting]
    refresh.click(restore_fn, [token], outputs, api_name="dataset_versions", show_progress="hidden")
    event = use.click(use_fn, [pick, token], data_outputs, api_name="use_version", **heavy())
    event.success(restore_fn, [token], outputs, api_visibility="private", show_progress="hidden")
    return VersionsPanel(restore_fn, outputs, event)
