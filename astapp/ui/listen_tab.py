"""Listen live (in the Predict tab): the microphone streams chunks, `service.listening.Listener` predicts
every hop over the last window and the tab shows the smoothed classes and a rolling 30 s timeline."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import gradio as gr

from astapp.service import Service
from astapp.ui.common import Guard, session

MAX_LISTENERS = 64  # open listening sessions kept (oldest dropped)
_listeners: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()


def build(svc: Service, token: gr.State, run: gr.Dropdown, notice: Any) -> None:
    """The "Listen live" accordion; `run` is the Predict tab's model picker."""
    from astapp.service.listening import ListenSettings, timeline_html

    guard = Guard()
    with gr.Accordion("Listen live (microphone)", open=False):
        gr.Markdown("Press record and allow the microphone: the model hears the last window of audio, "
                    "predicts every interval, smooths over time and shows what it heard (\"nothing\" "
                    "when no class is sure enough, or the background class wins; \"unknown\", dark in the "
                    "timeline, when the sound is unlike every class). Without a microphone, or "
                    "when the browser blocks it, the recorder says so; allow it in the site settings.")
        with gr.Row():
            hop = gr.Slider(0.25, 2.0, value=0.5, step=0.25, label="Predict every (s)", elem_id="listen-hop")
            smoothing = gr.Slider(0.0, 0.95, value=0.5, step=0.05, label="Smoothing (0 = none)",
                                  elem_id="listen-smoothing",
                                  info="exponential moving average: weight of the past")
        mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone",
                       elem_id="listen-mic")
        heard = gr.Label(label="Smoothed probabilities", elem_id="listen-label")
        strip = gr.HTML(elem_id="listen-timeline")
        info = gr.Markdown(elem_id="listen-info")
        key = gr.State(None)

    @guard
    def stream_fn(chunk: Any, k: str | None, run_id: str | None, hop_s: float, smooth: float, tok: str | None,
                  request: gr.Request) -> tuple[Any, str, str, str]:
        sess = session(svc, tok, request)
        settings = (str(run_id), float(hop_s), float(smooth))
        with _lock:
            listener = _listeners.get(k or "")
        if listener is None or getattr(listener, "key", None) != settings:
            listener = svc.predicting.listener(sess, run_id, ListenSettings(hop=float(hop_s), smoothing=float(smooth)))
            listener.key = settings
            k = f"{request.session_hash}:{id(listener)}"
            with _lock:
                _listeners[k] = listener
                while len(_listeners) > MAX_LISTENERS:
                    _listeners.popitem(last=False)
        if chunk is not None:
            listener.feed(chunk)
        view = listener.view()
        delay = view["compute_seconds"]
        text = (f"{view['seconds']:.1f} s heard; window {view['window_seconds']:.2f} s; model time per "
                f"prediction {delay * 1000:.0f} ms" if delay is not None else "Listening…")
        if view["unknown"] is not None and view["unknown_threshold"] is not None:
            text += f"; unknown score {view['unknown']:.3g} (threshold {view['unknown_threshold']:.3g})"
        if view["heard"]:  # "nothing" below the thresholds or for the background, not the argmax
            text = f"Heard now: **{view['heard']}** · {text}"
        return view["probs"] or {}, timeline_html(view, listener.labels), text, k

    def reset() -> None:
        return None

    event = mic.stream(stream_fn, [mic, key, run, hop, smoothing, token], [heard, strip, info, key],
                       stream_every=0.5, time_limit=600, concurrency_limit=8, api_name="listen_chunk",
                       show_progress="hidden")
    guard.keep(event, [heard, strip, info], notice)
    mic.start_recording(reset, None, key, api_visibility="private", show_progress="hidden")
