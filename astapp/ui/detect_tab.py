"""Detect tab: find the sounds in a long recording, review each event by eye and ear, and feed the mistakes
back into training.

A tab of its own (not a section of Predict): a long recording is a different job from one clip, its review
is a list worked through with the keyboard (c confirm, r reject, l relabel, u undo, n/j next, p/k previous,
active only while this tab shows), and its state (the recording, the decisions, where the user was) lives
on the server, so a reload puts the user back on the same event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.core.errors import DatasetError
from astapp.service import Service
from astapp.ui.common import Guard, heavy, notice_card, pcm16, picker_update, run_choices, session

AUDIO_TYPES = [".wav", ".flac", ".ogg", ".mp3"]
EVENT_TYPES = [".csv", ".txt", ".jsonl", ".json", ".tsv"]
KEYS = {"c": "review-confirm", "r": "review-reject", "l": "review-relabel", "u": "review-undo",
        "n": "review-next", "j": "review-next", "p": "review-prev", "k": "review-prev"}
# One listener for the page: a key clicks its button while the review panel is on screen and no text field
# has the focus (typing a class name must not reject an event).
KEYS_HEAD = ("<script>(() => { if (window.astappReviewKeys) return; window.astappReviewKeys = true;\n"
             f"  const keys = {KEYS!r};\n"
             "  document.addEventListener('keydown', (e) => {\n"
             "    const t = e.target; if (e.ctrlKey || e.metaKey || e.altKey) return;\n"
             "    if (t && (['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName) || t.isContentEditable)) return;\n"
             "    const panel = document.getElementById('review-panel');\n"
             "    if (!panel || panel.offsetParent === null) return;\n"
             "    const b = document.getElementById(keys[(e.key || '').toLowerCase()]);\n"
             "    if (b) { e.preventDefault(); b.click(); } }); })();</script>")
TABLE_COLUMNS = ["#", "label", "start", "end", "score", "decision"]


@dataclass
class DetectTab:
    tab: gr.Tab
    restore: Any  # the review after a reload (a load-chain step)
    restore_inputs: list[Any]
    outputs: list[Any]
    retrained: Any  # the "Add to dataset and retrain" event: the Train and Data tabs follow it


@dataclass
class _Page:
    run: gr.Dropdown
    refresh: gr.Button
    notice: Any
    recording: gr.File
    events_file: gr.File
    threshold: gr.Slider
    min_length: gr.Number
    merge_gap: gr.Number
    detect: gr.Button
    load: gr.Button
    reviewed: gr.Dropdown
    label: gr.Dropdown
    min_score: gr.Slider
    zoom: gr.Slider
    strip: gr.Plot
    table: gr.Dataframe
    player: gr.Audio
    current: gr.Markdown
    selected: gr.Number
    actions: dict[str, gr.Button]
    relabel_to: gr.Textbox
    missed: list[Any]  # start, end, label, button
    background: gr.Textbox
    pending: gr.Markdown
    retrain: gr.Button
    result: gr.Markdown


def _layout() -> _Page:
    gr.Markdown("Find every sound of your classes in a long recording (hours are fine: it is read in blocks), "
                "then go through the events: **c** confirm, **r** reject (a false alarm), **l** relabel, **u** undo, "
                "**n**/**j** next, **p**/**k** previous; click a row to hear it with a second either side. "
                "*Add to dataset and retrain* turns your decisions into a new dataset version and trains on it.")
    with gr.Row():
        run = gr.Dropdown(label="Model (a finished run)", choices=[], scale=4, elem_id="detect-run",
                          allow_custom_value=True)
        refresh = gr.Button("Refresh runs", scale=1, min_width=140, elem_id="detect-refresh")
    notice = notice_card("detect-notice")
    with gr.Row():
        recording = gr.File(label="Recording (wav, flac, ogg, mp3; any length)", file_types=AUDIO_TYPES,
                            elem_id="detect-recording", height=110)
        events_file = gr.File(label="…and, optionally, its events from an earlier run (CSV, Audacity, Raven, JSONL)",
                              file_types=EVENT_TYPES, elem_id="detect-events-file", height=110)
    with gr.Row(equal_height=True):
        threshold = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Threshold (0 = the model's own)")
        min_length = gr.Number(0.0, label="Min event length (s)", minimum=0)
        merge_gap = gr.Number(0.0, label="Merge gap (s)", minimum=0)
        detect = gr.Button("Find events", variant="primary", elem_id="detect-btn")
        load = gr.Button("Load events file", elem_id="detect-load")
    with gr.Column(elem_id="review-panel"):
        with gr.Row():
            reviewed = gr.Dropdown(label="Recording under review", choices=[], scale=3, elem_id="review-recording",
                                   allow_custom_value=True)
            label = gr.Dropdown(label="Class", choices=[("all classes", "")], value="", scale=2,
                                elem_id="review-class", allow_custom_value=True)
            min_score = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Min score", scale=2,
                                  elem_id="review-min-score")
            zoom = gr.Slider(4, 120, value=20, step=2, label="Zoom (seconds shown)", scale=2)
        strip = gr.Plot(show_label=False, elem_id="review-strip")
        with gr.Row():
            table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, max_height=300, scale=3,
                                 elem_id="review-events")
            with gr.Column(scale=2):
                current = gr.Markdown("No event selected.", elem_id="review-current")
                player = gr.Audio(label="The event, a second either side", interactive=False, autoplay=True,
                                  elem_id="review-audio")
                selected = gr.Number(None, visible=False, elem_id="review-selected")
        with gr.Row(equal_height=True):
            actions = {name: gr.Button(text, elem_id=f"review-{name}", min_width=110, variant=variant)
                       for name, text, variant in [("confirm", "Confirm (c)", "primary"),
                                                   ("reject", "Reject (r)", "stop"),
                                                   ("relabel", "Relabel (l)", "secondary"),
                                                   ("undo", "Undo (u)", "secondary"),
                                                   ("prev", "Previous (p)", "secondary"),
                                                   ("next", "Next (n)", "secondary")]}
            relabel_to = gr.Textbox(label="Relabel to", placeholder="the class it really is",
                                    elem_id="review-relabel-to", min_width=160)
        with gr.Accordion("Mark a sound the model missed", open=False), gr.Row(equal_height=True):
            missed = [gr.Number(label="Start (s)", minimum=0, elem_id="missed-start"),
                      gr.Number(label="End (s)", minimum=0, elem_id="missed-end"),
                      gr.Textbox(label="Class", elem_id="missed-label"),
                      gr.Button("Add missed sound", elem_id="missed-add")]
        with gr.Row(equal_height=True):
            background = gr.Textbox("background", label="False alarms become the class", elem_id="review-background",
                                    scale=1)
            pending = gr.Markdown(elem_id="review-pending")
            retrain = gr.Button("Add to dataset and retrain", variant="primary", elem_id="review-retrain", scale=0,
                                min_width=240)
        result = gr.Markdown(elem_id="review-result")
    return _Page(run, refresh, notice, recording, events_file, threshold, min_length, merge_gap, detect, load,
                 reviewed, label, min_score, zoom, strip, table, player, current, selected, actions, relabel_to,
                 missed, background, pending, retrain, result)


def build(svc: Service, token: gr.State) -> DetectTab:
    with gr.Tab("6 · Detect", id="detect") as tab:
        p = _layout()
    guard = Guard()
    outputs = [p.reviewed, p.label, p.min_score, p.zoom, p.table, p.strip, p.current, p.player, p.selected,
               p.pending]
    render = _renderer(svc)
    restore_fn, retrained = _wire_sources(svc, token, p, guard, render, outputs, tab)
    _wire_review(svc, token, p, guard, render, outputs)
    return DetectTab(tab, restore_fn, [token], [*outputs, p.run], retrained)


def _renderer(svc: Service) -> Any:
    def render(sess: Any, rid: str | None, index: int | None, label: str, min_score: float, zoom: float,
               play: bool = True) -> tuple[Any, ...]:
        """Every output of the review for one recording and event; the position is remembered server-side."""
        import pandas as pd

        reviews = svc.reviewing.list(sess)
        choices = [(f"{r.name} · {r.counts()}", r.id) for r in reviews]
        rid = rid if any(r.id == rid for r in reviews) else (reviews[-1].id if reviews else None)
        pending = svc.versioning.view(sess).pending_line()
        if rid is None:
            svc.remember(sess, review={})
            empty = pd.DataFrame(columns=TABLE_COLUMNS)
            return (gr.Dropdown(choices=[], value=None), gr.Dropdown(choices=[("all classes", "")], value=""),
                    min_score, zoom, empty, None, "No recording under review yet.", None, None, pending)
        review = svc.reviewing.get(sess, rid)
        shown = review.filtered(label or None, float(min_score or 0))
        if index is None or not any(e["index"] == index for e in review.events):
            index = shown[0]["index"] if shown else None
        svc.remember(sess, review={"recording": rid, "event": index, "label": label or "",
                                   "min_score": float(min_score or 0), "zoom": float(zoom or 20)})
        classes = sorted({e["label"] for e in review.events} | {e["new_label"] for e in review.events
                                                               if e.get("new_label")})
        df = pd.DataFrame([[e["index"], e["label"], e["start"], e["end"], e["score"], _decision(e)] for e in shown],
                          columns=TABLE_COLUMNS)
        text, audio = "No event selected.", None
        if index is not None:
            e = review.event(index)
            text = (f"**Event {e['index']}** · {e['label']} · {e['start']:.2f}–{e['end']:.2f} s · score "
                    f"{e['score']:.2f} · **{_decision(e) or 'undecided'}** · {review.counts()}")
            audio = pcm16(svc.reviewing.listen(sess, rid, index)) if play else None
        return (gr.Dropdown(choices=choices, value=rid), gr.Dropdown(choices=[("all classes", "")] + [(c, c)
                for c in classes], value=label if label in classes else ""), min_score, zoom, df,
                svc.reviewing.strip(sess, rid, index, zoom), text, audio, index, pending)

    return render


def _wire_sources(svc: Service, token: gr.State, p: _Page, guard: Guard, render: Any, outputs: list[Any],
                  tab: gr.Tab) -> tuple[Any, Any]:
    """Where a review starts (detection, an events file, the state after a reload) and where it ends (retrain)."""

    @guard
    def restore_fn(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        st = svc.state(sess).review
        runs, shown = svc.picker(sess, "predict")
        return (*render(sess, st.get("recording"), st.get("event"), st.get("label", ""), st.get("min_score", 0.0),
                        st.get("zoom", 20.0), play=False), picker_update(run_choices(runs), shown))

    @guard
    def detect_fn(run_id: str | None, file: str | None, threshold: float, min_length: float, merge_gap: float,
                  tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        settings = {"threshold": float(threshold) or None, "min_length": float(min_length or 0),
                    "merge_gap": float(merge_gap or 0)}
        review, notes = svc.reviewing.detect(sess, run_id, file, settings)
        gr.Info(f"{review.name}: {len(review.events)} events in {review.duration / 60:.1f} min." + " ".join(notes))
        return render(sess, review.id, None, "", 0.0, 20.0)

    @guard
    def load_fn(run_id: str | None, file: str | None, events: str | None, tok: str | None,
                request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        review = svc.reviewing.from_file(sess, file, events, run_id)
        return render(sess, review.id, None, "", 0.0, 20.0)

    @guard
    def retrain_fn(rid: str | None, run_id: str | None, background: str, tok: str | None,
                   request: gr.Request) -> tuple[str, str]:
        sess = session(svc, tok, request)
        review_run = svc.reviewing.get(sess, rid).run_id if rid else None
        version, job = svc.reviewing.retrain(sess, background, run_id=review_run or run_id)
        return (f"**{version.summary}**. Training started on it with the settings of the run that found the "
                f"events (run `{job}`): follow it in *Train*; the Data tab lists the version.",
                svc.versioning.view(sess).pending_line())

    @guard
    def refresh_fn(current: str | None, tok: str | None, request: gr.Request) -> Any:
        runs, shown = svc.picker(session(svc, tok, request), "predict")
        return picker_update(run_choices(runs), shown or current)


    for event in [p.refresh.click(refresh_fn, [p.run, token], p.run, api_name="detect_runs", show_progress="hidden"),
                  tab.select(refresh_fn, [p.run, token], p.run, api_visibility="private", show_progress="hidden"),
                  p.detect.click(detect_fn, [p.run, p.recording, p.threshold, p.min_length, p.merge_gap, token],
                                 outputs, api_name="detect_recording", **heavy()),
                  p.load.click(load_fn, [p.run, p.recording, p.events_file, token], outputs,
                               api_name="review_events_file", **heavy())]:
        guard.keep(event, outputs, p.notice)
    retrained = p.retrain.click(retrain_fn, [p.reviewed, p.run, p.background, token], [p.result, p.pending],
                                api_name="review_retrain", **heavy())
    guard.keep(retrained, [p.result, p.pending], p.notice)
    return restore_fn, retrained


def _wire_review(svc: Service, token: gr.State, p: _Page, guard: Guard, render: Any, outputs: list[Any]) -> None:
    """Moving through the events (filters, clicks, next/previous) and deciding on them."""

    @guard
    def show_fn(rid: str | None, index: Any, label: str, min_score: float, zoom: float, tok: str | None,
                request: gr.Request) -> tuple[Any, ...]:
        return render(session(svc, tok, request), rid, _int(index), label, min_score, zoom)

    @guard
    def choose_fn(rid: str | None, zoom: float, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return render(session(svc, tok, request), rid, None, "", 0.0, zoom)

    @guard
    def pick_fn(rid: str | None, label: str, min_score: float, zoom: float, tok: str | None, request: gr.Request,
                evt: gr.SelectData) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        shown = svc.reviewing.get(sess, rid).filtered(label or None, float(min_score or 0)) if rid else []
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        index = shown[int(row)]["index"] if shown and 0 <= int(row) < len(shown) else None
        return render(sess, rid, index, label, min_score, zoom)

    def step(sess: Any, rid: str, index: int | None, label: str, min_score: float, forward: bool,
             undecided: bool) -> int | None:
        shown = svc.reviewing.get(sess, rid).filtered(label or None, float(min_score or 0))
        order = shown if forward else shown[::-1]
        pos = next((i for i, e in enumerate(order) if e["index"] == index), -1)
        later = order[pos + 1:]
        pick = next((e for e in later if not undecided or not e.get("decision")), later[0] if later else None)
        return pick["index"] if pick else index

    def action_fn(name: str) -> Any:
        @guard
        def fn(rid: str | None, index: Any, label: str, min_score: float, zoom: float, relabel: str,
               tok: str | None, request: gr.Request) -> tuple[Any, ...]:
            sess = session(svc, tok, request)
            if not rid or _int(index) is None:
                raise DatasetError("Pick an event first: click a row of the list.")
            index = _int(index)
            if name in ("prev", "next"):
                index = step(sess, rid, index, label, min_score, name == "next", undecided=False)
            else:
                svc.reviewing.decide(sess, rid, index, name, relabel)
                if name != "undo":  # on to the next event nobody decided yet
                    index = step(sess, rid, index, label, min_score, True, undecided=True)
            return render(sess, rid, index, label, min_score, zoom)
        return fn

    @guard
    def missed_fn(rid: str | None, start: float | None, end: float | None, cls: str, label: str, min_score: float,
                  zoom: float, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        if not rid:
            raise DatasetError("Open a recording first: find its events or load an events file.")
        if start is None or end is None:
            raise DatasetError("Type the start and the end of the missed sound in seconds.")
        review = svc.reviewing.mark_missed(sess, rid, float(start), float(end), cls)
        return render(sess, rid, review.events[-1]["index"], label, min_score, zoom)


    view_in = [p.reviewed, p.selected, p.label, p.min_score, p.zoom, token]
    events = [
        p.reviewed.input(choose_fn, [p.reviewed, p.zoom, token], outputs, api_visibility="private"),
        p.label.input(show_fn, view_in, outputs, api_visibility="private"),
        p.min_score.release(show_fn, view_in, outputs, api_visibility="private"),
        p.zoom.release(show_fn, view_in, outputs, api_visibility="private"),
        p.table.select(pick_fn, [p.reviewed, p.label, p.min_score, p.zoom, token], outputs,
                       api_visibility="private"),
        p.missed[3].click(missed_fn, [p.reviewed, *p.missed[:3], p.label, p.min_score, p.zoom, token], outputs,
                          api_name="review_missed"),
    ]
    act_in = [p.reviewed, p.selected, p.label, p.min_score, p.zoom, p.relabel_to, token]
    events += [b.click(action_fn(name), act_in, outputs, api_name=f"review_{name}", trigger_mode="always_last")
               for name, b in p.actions.items()]
    for event in events:
        guard.keep(event, outputs, p.notice)



def _decision(e: dict[str, Any]) -> str:
    d = e.get("decision") or ""
    return f"relabelled → {e.get('new_label')}" if d == "relabelled" else d


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None
