"""Record in the browser (Data tab): name classes, record takes from the microphone, use them as the dataset.

Thin glue over `Service.recording` (the clips live in the session workspace, so a reload keeps them).
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


def build(svc: Service, token: gr.State, data_outputs: list[Any], present: Callable[[Any], tuple[Any, ...]],
          guard: Guard) -> RecordPanel:
    """The panel; `guard` is the Data tab's, so a failed "use" shows in its notice like a failed upload."""
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

    def sess(tok: str | None, request: gr.Request) -> Any:
        return session(svc, tok, request)

    def pickers(tok: str | None, name: str | None, request: gr.Request) -> tuple[Any, Any]:
        s = sess(tok, request)
        names = [row[0] for row in svc.recording.table(s)]
        name = name if name in names else (names[-1] if names else None)
        clips = svc.recording.clips(s, name)
        return gr.Dropdown(choices=names, value=name), gr.Dropdown(choices=clips, value=clips[-1] if clips else None)

    @guarded
    def add_fn(tok: str | None, name: str, request: gr.Request) -> tuple[str, list[list[Any]]]:
        s = sess(tok, request)
        message = svc.recording.add_class(s, name)
        return message, svc.recording.table(s)

    def picked(tok: str | None, name: str, request: gr.Request) -> tuple[Any, Any, str]:
        """After adding: the new class is the one to record into (and the name box is free again)."""
        names = [row[0] for row in svc.recording.table(sess(tok, request))]
        new = next((n for n in names if n.casefold() == str(name or "").strip().casefold()), None)
        return (*pickers(tok, new, request), "")

    @guarded
    def rename_fn(tok: str | None, name: str, new: str, request: gr.Request) -> tuple[str, list[list[Any]]]:
        s = sess(tok, request)
        return svc.recording.rename_class(s, name, new), svc.recording.table(s)

    @guarded
    def delete_fn(tok: str | None, name: str, request: gr.Request) -> tuple[str, list[list[Any]]]:
        s = sess(tok, request)
        return svc.recording.delete_class(s, name), svc.recording.table(s)

    @guarded
    def take_fn(tok: str | None, name: str, audio: Any, how: str, seconds: float, level: float,
                request: gr.Request) -> tuple[str, list[list[Any]]]:
        s = sess(tok, request)
        message = svc.recording.take(s, name, audio, 0.0 if how == SINGLE else float(seconds or 1.0), float(level))
        return message, svc.recording.table(s)

    @guarded
    def files_fn(tok: str | None, name: str, paths: list[Any] | None, request: gr.Request) -> tuple[str, Any]:
        s = sess(tok, request)
        message = svc.recording.add_files(s, name, [str(getattr(p, "name", p)) for p in (paths or [])])
        return message, svc.recording.table(s)

    @guarded
    def del_clip_fn(tok: str | None, name: str, clip_name: str, request: gr.Request) -> tuple[str, Any]:
        s = sess(tok, request)
        return svc.recording.delete_clip(s, name, clip_name), svc.recording.table(s)

    def play_fn(tok: str | None, name: str | None, clip_name: str | None, request: gr.Request) -> Any:
        try:
            return pcm16(svc.recording.audio(sess(tok, request), name, clip_name)) if name and clip_name else None
        except Exception:  # noqa: BLE001 - a clip deleted in another tab just plays nothing
            return None

    @guarded
    def zip_fn(tok: str | None, request: gr.Request) -> str:
        return str(svc.recording.to_zip(sess(tok, request)))

    @guard
    def use_fn(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return present(svc.recording.use(sess(tok, request)))

    def restore_fn(tok: str | None, request: gr.Request) -> list[Any]:
        try:
            rows = svc.recording.table(sess(tok, request))
            names, clips = pickers(tok, None, request)
        except Exception:  # noqa: BLE001 - recordings we cannot read just show as none
            return ["", [], gr.Dropdown(choices=[]), gr.Dropdown(choices=[])]
        summary = (f"{len(rows)} recorded class(es), {sum(r[1] for r in rows)} clip(s) kept from before."
                   if rows else "")
        return [summary, rows, names, clips]

    follow = {"api_visibility": "private", "show_progress": "hidden"}
    add = add_btn.click(add_fn, [token, new_name], [status, table], api_name="record_add_class")
    add.success(picked, [token, new_name], [cls, clip, new_name], **follow)
    new_name.submit(add_fn, [token, new_name], [status, table], api_visibility="private").success(
        picked, [token, new_name], [cls, clip, new_name], **follow)
    rename_btn.click(rename_fn, [token, cls, rename_to], [status, table], api_name="record_rename_class").success(
        pickers, [token, rename_to], [cls, clip], **follow)
    for event in (delete_btn.click(delete_fn, [token, cls], [status, table], api_name="record_delete_class"),
                  del_clip.click(del_clip_fn, [token, cls, clip], [status, table], api_name="record_delete_clip")):
        event.success(pickers, [token, cls], [cls, clip], **follow)
    take = mic.stop_recording(take_fn, [token, cls, mic, mode, clip_len, threshold], [status, table],
                              api_name="record_take", **heavy())
    take.then(lambda: None, None, mic, **follow).then(pickers, [token, cls], [cls, clip], **follow)
    added = files.upload(files_fn, [token, cls, files], [status, table], api_name="record_files", **heavy())
    added.then(lambda: None, None, files, **follow).then(pickers, [token, cls], [cls, clip], **follow)
    def clips_of(tok: str | None, name: str | None, request: gr.Request) -> Any:
        return pickers(tok, name, request)[1]

    cls.input(clips_of, [token, cls], clip, **follow)
    clip.change(play_fn, [token, cls, clip], player, **follow)
    zip_btn.click(zip_fn, [token], zip_file, api_name="download_recordings", **heavy()).success(
        lambda: gr.File(visible=True), None, zip_file, **follow)
    use = use_btn.click(use_fn, [token], data_outputs, api_name="use_recordings", **heavy())
    return RecordPanel(restore_fn, [status, table, cls, clip], use)
