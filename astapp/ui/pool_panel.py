"""Start from unlabeled recordings (Data tab): build a pool, search by example, label, label next, use the labels.

Thin glue over `Service.pooling`: the pool, its labels and the label-next round live in the session workspace, so a
reload (the panel's restore on load) or a restart shows the same state. Building runs in the service's background
thread; a timer polls it. Keyboard: in the "keys" box, 1-9 give the current proposal a class, 0 "none of these",
s skip, u undo; each key answers one proposal and the next one plays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.service import Service
from astapp.ui.common import Guard, guarded, heavy, pcm16, session

N_PLAYERS = 6
HIT_HEADERS = ["#", "file", "start", "end", "score", "label"]
STRATEGIES = [("a mix of both", "mix"), ("most uncertain (margin)", "margin"), ("likely positives per class", "positives"),
              ("most uncertain, spread out (diverse)", "diverse")]
PRIVATE = {"api_visibility": "private", "show_progress": "hidden"}


@dataclass
class PoolPanel:
    restore: Callable[..., list[Any]]
    outputs: list[Any]
    use: Any  # the "Use these labels" event (chooses the dataset, like an upload)


def build(svc: Service, token: gr.State, data_outputs: list[Any], present: Callable[[Any], tuple[Any, ...]],
          guard: Guard) -> PoolPanel:
    c = _layout(svc)
    _wire_build(svc, token, c)
    _wire_search(svc, token, c)
    _wire_map(svc, token, c)
    _wire_round(svc, token, c)
    data_outputs[0].change(_dataset_clips(svc), [token], c["dataset_clip"], **PRIVATE)  # a new dataset, new clips

    @guard
    def use_fn(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return present(svc.pooling.use_labels(session(svc, tok, request)))

    @guarded
    def download_fn(tok: str | None, request: gr.Request) -> Any:
        zip_path, csv_path = svc.pooling.download(session(svc, tok, request))
        return gr.File(value=[str(zip_path), str(csv_path)], visible=True)

    def restore_fn(tok: str | None, request: gr.Request) -> list[Any]:
        try:
            s = session(svc, tok, request)
            return [_summary(svc, s), *_round_view(svc, s)]
        except Exception:  # noqa: BLE001 - a pool we cannot read shows as none
            return ["No pool yet.", "", None, "", ""]

    use = c["use"].click(use_fn, [token], data_outputs, api_name="pool_use_labels", **heavy())
    c["download"].click(download_fn, [token], c["files"], api_name="pool_download", **heavy())
    return PoolPanel(restore_fn, [c["summary"], *c["round_outputs"]], use)


def _layout(svc: Service) -> dict[str, Any]:
    c: dict[str, Any] = {}
    gr.Markdown("Hours of **unlabeled** audio and a few examples? Upload the recordings: they are cut into windows "
                "of the model's length and embedded once. Then **search by example**, label what you find, and let "
                "**label next** propose the windows that teach the model most. *Use these labels* makes them your "
                "dataset (one recording's windows stay on one side of every split).")
    with gr.Row():
        c["sources"] = gr.File(label="Recordings (audio files or zips)", file_count="multiple", height=120,
                               elem_id="pool-files", scale=3)
        with gr.Column(scale=2):
            c["model"] = gr.Textbox(svc.default_model, label="Model (Hub id, checkpoint folder, scratch:SIZE)",
                                    elem_id="pool-model")
            # minimum 0, not the smallest hop: the browser sends an empty Number as 0, which means "default"
            c["hop"] = gr.Number(None, label="Hop (s; 0 or empty: half a window)", minimum=0, elem_id="pool-hop")
            c["build"] = gr.Button("Build the pool", variant="primary", elem_id="pool-build")
    c["timer"] = gr.Timer(1.0, active=False)
    c["summary"] = gr.Markdown("No pool yet.", elem_id="pool-summary")
    gr.Markdown("#### Search by example")
    with gr.Row():
        c["query"] = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Query clip",
                              elem_id="pool-query", scale=3)
        with gr.Column(scale=2):
            c["dataset_clip"] = gr.Dropdown([], value=None, label="…or a clip of your labelled dataset",
                                            elem_id="pool-dataset-clip")
            c["window"] = gr.Number(None, label="…or a window of the pool (#)", precision=0, elem_id="pool-window")
            c["top"] = gr.Slider(1, 50, value=12, step=1, label="Hits")
            c["search"] = gr.Button("Search", elem_id="pool-search")
    c["search_note"] = gr.Markdown(elem_id="pool-search-note")
    c["hits"] = gr.Dataframe(headers=HIT_HEADERS, interactive=False, label="Nearest windows (best first)",
                             elem_id="pool-hits")
    with gr.Row():
        c["players"] = [gr.Audio(label=f"hit {i + 1}", interactive=False, visible=False, min_width=160)
                        for i in range(N_PLAYERS)]
    with gr.Row():
        c["picked"] = gr.CheckboxGroup(label="Select hits to label", choices=[], elem_id="pool-picked", scale=3)
        c["label"] = gr.Textbox(label="Label", placeholder="dog", elem_id="pool-label", scale=1)
        c["label_btn"] = gr.Button("Label selected", elem_id="pool-label-btn", scale=1)
        c["undo"] = gr.Button("Undo", size="sm", elem_id="pool-undo", scale=0)
    c["label_note"] = gr.Markdown(elem_id="pool-label-note")
    with gr.Accordion("The pool on the embedding map", open=False, elem_id="pool-map-box"):
        c["map_btn"] = gr.Button("Show the map", size="sm", elem_id="pool-map-btn")
        c["map_note"] = gr.Markdown(elem_id="pool-map-note")
        with gr.Row():
            c["map"] = gr.Image(label="Pool windows (colour = label)", interactive=False, elem_id="pool-map", scale=3)
            c["map_player"] = gr.Audio(label="Clicked window", interactive=False, autoplay=True,
                                       elem_id="pool-map-player", scale=2)
    gr.Markdown("#### Label next")
    with gr.Row():
        c["classes"] = gr.Textbox(label="Classes for keys 1-9 (comma-separated)", placeholder="dog, cat",
                                  elem_id="pool-classes", scale=2)
        c["strategy"] = gr.Dropdown(STRATEGIES, value="mix", label="Propose", elem_id="pool-strategy", scale=2)
        c["n"] = gr.Number(10, label="Windows per round", precision=0, minimum=1, maximum=50, scale=1)
        c["next"] = gr.Button("Next round", variant="primary", elem_id="pool-next", scale=1)
    c["stats"] = gr.Markdown(elem_id="pool-round-stats")
    with gr.Row():
        c["current"] = gr.Audio(label="Current proposal", interactive=False, autoplay=True, elem_id="pool-current",
                                scale=3)
        c["keys"] = gr.Textbox(label="Keys: 1-9 class · 0 none of these · s skip · u undo", elem_id="pool-keys",
                               scale=2)
    c["answer_note"] = gr.Markdown(elem_id="pool-answer-note")
    c["round_outputs"] = [c["stats"], c["current"], c["answer_note"], c["classes"]]
    with gr.Row():
        c["use"] = gr.Button("Use these labels", variant="primary", elem_id="pool-use")
        c["download"] = gr.Button("Download labels (.zip + .csv)", elem_id="pool-download")
    c["files"] = gr.File(label="Labels", interactive=False, visible=False, file_count="multiple")
    return c


def _summary(svc: Service, s: Any) -> str:
    info = svc.pooling.summary(s, svc.state(s).form.get("model") or None)
    text = info["text"]
    if info.get("model_note"):
        text += f"\n\n**Note:** {info['model_note']}"
    return text


def _round_view(svc: Service, s: Any) -> list[Any]:
    """Stats, the current proposal's audio, what the keys do now, the key classes."""
    data = svc.pooling.round(s)
    rows, at, stats = data.get("rows", []), int(data.get("at", 0)), data.get("stats", {})
    if not rows:
        return ["Label a few windows of each class, then press *Next round*.", None, "", ", ".join(data["classes"])]
    acc = stats.get("cv_accuracy")
    acc_text = f"{acc:.3f} over {stats.get('cv_folds')} folds" if acc is not None else \
        "not yet (2 labels per class needed)"
    text = (f"Round {data['round']} ({stats.get('strategy')}): {stats.get('labels_used', 0)} labels used; "
            f"cross-validated accuracy {acc_text}. {stats.get('message', '')}\n\n"
            f"Proposal {min(at + 1, len(rows))} of {len(rows)}")
    if at >= len(rows):
        return [text + " — round done.", None, "", ", ".join(data["classes"])]
    row = rows[at]
    probs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(row.get("probs", {}).items(), key=lambda kv: -kv[1])[:3])
    text += f": `{row['file']}` {row['start']:.2f}-{row['end']:.2f} s ({row['why']}{'; ' + probs if probs else ''})"
    return [text, pcm16(svc.pooling.window_audio(s, row["index"])), "", ", ".join(data["classes"])]


def _wire_build(svc: Service, token: gr.State, c: dict[str, Any]) -> None:
    @guarded
    def build_fn(tok: str | None, files: list[Any] | None, model: str, hop: float | None,
                 request: gr.Request) -> tuple[str, Any]:
        s = session(svc, tok, request)
        if files:
            svc.pooling.add_sources(s, [str(getattr(f, "name", f)) for f in files])
        status = svc.pooling.start_build(s, model or None, float(hop) if hop else None)
        return f"Building: {status.message}", gr.Timer(active=True)

    def poll_fn(tok: str | None, request: gr.Request) -> tuple[str, Any]:
        s = session(svc, tok, request)
        st = svc.pooling.build_status(s)
        if st.running:
            return f"Building ({st.fraction:.0%}): {st.message}", gr.Timer(active=True)
        if st.error:
            return f"**The pool was not built:** {st.error}", gr.Timer(active=False)
        return _summary(svc, s), gr.Timer(active=False)

    c["build"].click(build_fn, [token, c["sources"], c["model"], c["hop"]], [c["summary"], c["timer"]],
                     api_name="pool_build", **heavy())
    c["timer"].tick(poll_fn, [token], [c["summary"], c["timer"]], **PRIVATE)


def _wire_search(svc: Service, token: gr.State, c: dict[str, Any]) -> None:
    @guarded
    def search_fn(tok: str | None, clip: str | None, dataset_clip: str | None, window: float | None, k: float,
                  request: gr.Request) -> list[Any]:
        s = session(svc, tok, request)
        by_clip = bool(clip or dataset_clip)  # an uploaded/recorded clip first, then a dataset clip, then a window
        hits, note = svc.pooling.search(s, clip=clip or None, dataset_clip=None if clip else dataset_clip or None,
                                        window=None if by_clip or window is None else int(window), k=int(k))
        table = [[h["index"], h["file"], h["start"], h["end"], h["score"], h["label"]] for h in hits]
        choices = [(f"#{h['index']} {h['file']} {h['start']:.2f}s ({h['score']:.3f})", h["index"]) for h in hits]
        players = [gr.Audio(value=pcm16(svc.pooling.window_audio(s, h["index"])), visible=True,
                            label=f"#{h['index']} · {h['score']:.3f}") for h in hits[:N_PLAYERS]]
        players += [gr.Audio(value=None, visible=False)] * (N_PLAYERS - len(players))
        return [note, table, gr.CheckboxGroup(choices=choices, value=[]), *players]

    @guarded
    def label_fn(tok: str | None, picked: list[int], label: str, request: gr.Request) -> str:
        return svc.pooling.label(session(svc, tok, request), [int(i) for i in picked or []], label)

    @guarded
    def undo_fn(tok: str | None, request: gr.Request) -> str:
        return svc.pooling.undo(session(svc, tok, request))

    c["search"].click(search_fn, [token, c["query"], c["dataset_clip"], c["window"], c["top"]],
                      [c["search_note"], c["hits"], c["picked"], *c["players"]], api_name="pool_search", **heavy())
    c["label_btn"].click(label_fn, [token, c["picked"], c["label"]], c["label_note"], api_name="pool_label")
    c["undo"].click(undo_fn, [token], c["label_note"], api_name="pool_undo")


def _dataset_clips(svc: Service) -> Callable[..., Any]:
    def clips_fn(tok: str | None, request: gr.Request) -> Any:
        try:
            choices = svc.datasets.clip_choices(session(svc, tok, request))
        except Exception:  # noqa: BLE001 - a dataset we cannot list offers no clips
            choices = []
        return gr.Dropdown(choices=choices, value=None)

    return clips_fn


def _wire_map(svc: Service, token: gr.State, c: dict[str, Any]) -> None:
    """The map shows on request (placing the windows costs seconds once per pool); a click plays the window under
    it, rings it, and makes it the search query (the clip and dataset-clip queries are cleared for that)."""

    @guarded
    def show_fn(tok: str | None, request: gr.Request) -> tuple[Any, str]:
        return svc.pooling.map(session(svc, tok, request))

    @guarded
    def click_fn(tok: str | None, evt: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
        s = session(svc, tok, request)
        width, height = gr_size(svc.pooling.map(s)[0])
        index = svc.pooling.map_click(s, float(evt.index[0]), float(evt.index[1]), width, height)
        image, caption = svc.pooling.map(s, index)
        w = svc.pooling.window(s, index)
        note = f"{caption}\n\nWindow #{index}: `{w.file}` {w.start:.2f}-{w.end:.2f} s (set as the search query)."
        return image, note, pcm16(svc.pooling.window_audio(s, index)), index, None, None

    c["map_btn"].click(show_fn, [token], [c["map"], c["map_note"]], api_name="pool_map", **heavy())
    c["map"].select(click_fn, [token], [c["map"], c["map_note"], c["map_player"], c["window"], c["query"],
                                        c["dataset_clip"]], api_visibility="private", **heavy())


def gr_size(image: Any) -> tuple[int, int]:
    """(width, height) of an RGB array."""
    return int(image.shape[1]), int(image.shape[0])


def _wire_round(svc: Service, token: gr.State, c: dict[str, Any]) -> None:
    @guarded
    def next_fn(tok: str | None, classes: str, strategy: str, n: float, request: gr.Request) -> list[Any]:
        s = session(svc, tok, request)
        if classes:
            svc.pooling.set_key_classes(s, classes)
        svc.pooling.next_round(s, int(n or 10), strategy or "mix")
        return _round_view(svc, s)

    @guarded
    def key_fn(tok: str | None, key: str, classes: str, request: gr.Request) -> list[Any]:
        s = session(svc, tok, request)
        if not str(key or "").strip():
            return [gr.update()] * 4 + [""]
        if classes and [x.strip() for x in classes.split(",") if x.strip()] != svc.pooling.round(s)["classes"]:
            svc.pooling.set_key_classes(s, classes)
        note = svc.pooling.answer(s, key)
        stats, audio, _, names = _round_view(svc, s)
        return [stats, audio, note, names, ""]

    c["next"].click(next_fn, [token, c["classes"], c["strategy"], c["n"]], c["round_outputs"],
                    api_name="pool_next_round", **heavy())
    c["keys"].input(key_fn, [token, c["keys"], c["classes"]], [*c["round_outputs"], c["keys"]],
                    api_name="pool_key", trigger_mode="always_last")
