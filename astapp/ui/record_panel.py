"""Record in the browser (Data tab): name classes, record takes from the microphone, use them as the dataset.

Thin glue over `Service.record_*` (the clips live in the session workspace, so a reload keeps them).
"Use these recordings" goes through the upload path: the same report as a zip. Every endpoint with
an API name returns plain values; the pickers follow in private `.then` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.service import Service
from astapp.ui.common import Guard, guarded, heavy, pcm16, session

TAKE, SINGLE = "one long take, cut into clips", "each recording is one clip"
HEADERS = ["class", "clips", "seconds"]


@dataclass
class RecordPanel:
    restore: Callable[..., list[Any]]
    outputs: list[Any]
    use: Any  # the "Use these recordings" event (chooses the dataset, like an upload)


@dataclass
class _Panel:
    """The panel's components, for the functions that wire them."""

    new_name: gr.Textbox
    add_btn: gr.Button
    cls: gr.Dropdown
    rename_to: gr.Textbox
    rename_btn: gr.Button
    delete_btn: gr.Button
    mode: gr.Radio
    clip_len: gr.Number
    threshold: gr.Slider
    mic: gr.Audio
    files: gr.File
    status: gr.Markdown
    table: gr.Dataframe
    clip: gr.Dropdown
    player: gr.Audio
    del_clip: gr.Button
    use_btn: gr.Button
    zip_btn: gr.Button
    zip_file: gr.File


def build(svc: Service, token: gr.State, data_outputs: list[Any], present: Callable[[Any], tuple[Any, ...]],
          guard: Guard) -> RecordPanel:
    """The panel; `guard` is the Data tab's, so a failed "use" shows in its notice like a failed upload."""
    p = _layout()
    pickers = _pickers(svc)
    _wire_classes(svc, token, p, pickers)
    _wire_clips(svc, token, p, pickers)

    @guard
    def use_fn(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return present(svc.recording.use(session(svc, tok, request)))

    def restore_fn(tok: str | None, request: gr.Request) -> list[Any]:
        try:
            rows = svc.recording.table(session(svc, tok, request))
            names, clips = pickers(tok, None, request)
        except Exception:  # noqa: BLE001 - recordings we cannot read just show as none
            return ["", [], gr.Dropdown(choices=[]), gr.Dropdown(choices=[])]
        summary = (f"{len(rows)} recorded class(es), {sum(r[1] for r in rows)} clip(s) kept from before."
                   if rows else "")
        return [summary, rows, names, clips]

    use = p.use_btn.click(use_fn, [token], data_outputs, api_name="use_recordings", **heavy())
    return RecordPanel(restore_fn, [p.status, p.table, p.cls, p.clip], use)


def _layout() -> _Panel:
    gr.Markdown("Name a class, pick it, press the microphone and make the sound — a long take is cut into clips "
                "of the length below and **silent stretches are dropped**. Record a *background* class too "
                "(room sound, silence) so the model can say \"none of these\". No microphone, or the browser "
                "refused it? Add audio files to the class instead; the rest of the page works as usual.")
    with gr.Row():
        new_name = gr.Textbox(label="New class name", placeholder="clap, whistle, background…", elem_id="rec-new-name",
                              scale=3)
        add_btn = gr.Button("Add class", elem_id="rec-add-class", scale=1)
    with gr.Row():
        cls = gr.Dropdown(label="Class to record into", choices=[], elem_id="rec-class", scale=2,
                          allow_custom_value=True)
        rename_to = gr.Textbox(label="Rename it to", elem_id="rec-rename-to", scale=2)
        rename_btn = gr.Button("Rename", size="sm", scale=1)
        delete_btn = gr.Button("Delete class", variant="stop", size="sm", scale=1, elem_id="rec-delete-class")
    with gr.Row():
        mode = gr.Radio([TAKE, SINGLE], value=TAKE, label="Recording", elem_id="rec-mode", scale=2)
        clip_len = gr.Number(1.0, label="Clip length (s)", minimum=0.25, maximum=10, step=0.25, elem_id="rec-len")
        threshold = gr.Slider(-80, -10, value=-45, step=1, label="Silence threshold (dBFS)", elem_id="rec-threshold",
                              info="a clip whose loudest 50 ms is below this counts as silence", scale=2)
    with gr.Row():
        mic = gr.Audio(sources=["microphone"], type="numpy", label="Record (takes up to 5 minutes)",
                       elem_id="rec-mic")
        files = gr.File(label="…or add audio files to this class", file_count="multiple", file_types=["audio"],
                        elem_id="rec-files", height=120)
    status = gr.Markdown(elem_id="rec-status")
    table = gr.Dataframe(headers=HEADERS, interactive=False, label="Your recordings", elem_id="rec-table")
    with gr.Row():
        clip = gr.Dropdown(label="Clips of this class", choices=[], elem_id="rec-clip", scale=2,
                           allow_custom_value=True)
        player = gr.Audio(label="Clip", interactive=False, elem_id="rec-player", scale=3)
        del_clip = gr.Button("Delete clip", size="sm", elem_id="rec-delete-clip", scale=1)
    with gr.Row():
        use_btn = gr.Button("Use these recordings", variant="primary", elem_id="rec-use")
        zip_btn = gr.Button("Download the recordings (.zip)", elem_id="rec-zip")
    zip_file = gr.File(label="Recordings (folder per class)", interactive=False, elem_id="rec-zip-file", visible=False)
    return _Panel(new_name, add_btn, cls, rename_to, rename_btn, delete_btn, mode, clip_len, threshold, mic, files,
                  status, table, clip, player, del_clip, use_btn, zip_btn, zip_file)


def _pickers(svc: Service) -> Callable[..., tuple[Any, Any]]:
    """(class picker, clip picker) updates: `name` chosen when it exists (else the newest class), its newest
    clip."""

    def pickers(tok: str | None, name: str | None, request: gr.Request) -> tuple[Any, Any]:
        s = session(svc, tok, request)
        names = [row[0] for row in svc.recording.table(s)]
        name = name if name in names else (names[-1] if names else None)
        clips = svc.recording.clips(s, name)
        return gr.Dropdown(choices=names, value=name), gr.Dropdown(choices=clips, value=clips[-1] if clips else None)

    return pickers


FOLLOW = {"api_visibility": "private", "show_progress": "hidden"}


def _wire_classes(svc: Service, token: gr.State, p: _Panel, pickers: Callable[..., tuple[Any, Any]]) -> None:
    """Add, rename and delete classes; the pickers follow."""

    @guarded
    def add_fn(tok: str | None, name: str, request: gr.Request) -> tuple[str, list[list[Any]]]:
        s = session(svc, tok, request)
        message = svc.recording.add_class(s, name)
        return message, svc.recording.table(s)

    def picked(tok: str | None, name: str, request: gr.Request) -> tuple[Any, Any, str]:
        """After adding: the new class is the one to record into (and the name box is free again)."""
        names = [row[0] for row in svc.recording.table(session(svc, tok, request))]
        new = next((n for n in names if n.casefold() == str(name or "").strip().casefold()), None)
        return (*pickers(tok, new, request), "")

    @guarded
    def rename_fn(tok: str | None, name: str, new: str, request: gr.Request) -> tuple[str, list[list[Any]]]:
        s = session(svc, tok, request)
        return svc.recording.rename_class(s, name, new), svc.recording.table(s)

    @guarded
    def delete_fn(tok: str | None, name: str, request: gr.Request) -> tuple[str, list[list[Any]]]:
        s = session(svc, tok, request)
        return svc.recording.delete_class(s, name), svc.recording.table(s)

    shown = [p.status, p.table]
    add = p.add_btn.click(add_fn, [token, p.new_name], shown, api_name="record_add_class")
    add.success(picked, [token, p.new_name], [p.cls, p.clip, p.new_name], **FOLLOW)
    p.new_name.submit(add_fn, [token, p.new_name], shown, api_visibility="private").success(
        picked, [token, p.new_name], [p.cls, p.clip, p.new_name], **FOLLOW)
    p.rename_btn.click(rename_fn, [token, p.cls, p.rename_to], shown, api_name="record_rename_class").success(
        pickers, [token, p.rename_to], [p.cls, p.clip], **FOLLOW)
    p.delete_btn.click(delete_fn, [token, p.cls], shown, api_name="record_delete_class").success(
        pickers, [token, p.cls], [p.cls, p.clip], **FOLLOW)


def _wire_clips(svc: Service, token: gr.State, p: _Panel, pickers: Callable[..., tuple[Any, Any]]) -> None:
    """Takes from the microphone, added files, a clip to hear or delete, and the zip of them all."""

    @guarded
    def take_fn(tok: str | None, name: str, audio: Any, how: str, seconds: float, level: float,
                request: gr.Request) -> tuple[str, list[list[Any]]]:
        s = session(svc, tok, request)
        message = svc.recording.take(s, name, audio, 0.0 if how == SINGLE else float(seconds or 1.0), float(level))
        return message, svc.recording.table(s)

    @guarded
    def files_fn(tok: str | None, name: str, paths: list[Any] | None, request: gr.Request) -> tuple[str, Any]:
        s = session(svc, tok, request)
        message = svc.recording.add_files(s, name, [str(getattr(f, "name", f)) for f in (paths or [])])
        return message, svc.recording.table(s)

    @guarded
    def del_clip_fn(tok: str | None, name: str, clip_name: str, request: gr.Request) -> tuple[str, Any]:
        s = session(svc, tok, request)
        return svc.recording.delete_clip(s, name, clip_name), svc.recording.table(s)

    def play_fn(tok: str | None, name: str | None, clip_name: str | None, request: gr.Request) -> Any:
        try:
            return pcm16(svc.recording.audio(session(svc, tok, request), name, clip_name)) \
                if name and clip_name else None
        except Exception:  # noqa: BLE001 - a clip deleted in another tab just plays nothing
            return None

    @guarded
    def zip_fn(tok: str | None, request: gr.Request) -> str:
        return str(svc.recording.to_zip(session(svc, tok, request)))

    def clips_of(tok: str | None, name: str | None, request: gr.Request) -> Any:
        return pickers(tok, name, request)[1]

    shown = [p.status, p.table]
    p.del_clip.click(del_clip_fn, [token, p.cls, p.clip], shown, api_name="record_delete_clip").success(
        pickers, [token, p.cls], [p.cls, p.clip], **FOLLOW)
    take = p.mic.stop_recording(take_fn, [token, p.cls, p.mic, p.mode, p.clip_len, p.threshold], shown,
                                api_name="record_take", **heavy())
    take.then(lambda: None, None, p.mic, **FOLLOW).then(pickers, [token, p.cls], [p.cls, p.clip], **FOLLOW)
    added = p.files.upload(files_fn, [token, p.cls, p.files], shown, api_name="record_files", **heavy())
    added.then(lambda: None, None, p.files, **FOLLOW).then(pickers, [token, p.cls], [p.cls, p.clip], **FOLLOW)
    p.cls.input(clips_of, [token, p.cls], p.clip, **FOLLOW)
    p.clip.change(play_fn, [token, p.cls, p.clip], p.player, **FOLLOW)
    p.zip_btn.click(zip_fn, [token], p.zip_file, api_name="download_recordings", **heavy()).success(
        lambda: gr.File(visible=True), None, p.zip_file, **FOLLOW)
