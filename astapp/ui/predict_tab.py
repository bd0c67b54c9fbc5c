"""Predict tab: try a trained model on a clip or a zip, and download it for plain `transformers`.

Predictors are cached per model folder so repeated clicks cost one forward pass, not a reload.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from astapp.ui.common import UiContext, guarded, heavy, picker_update, run_choices, scratch_dir, session

_CACHE_SIZE = 3
_cache: OrderedDict[tuple[str, float], Any] = OrderedDict()
_cache_lock = threading.Lock()

SNIPPET = """```python
from transformers import pipeline

clf = pipeline("audio-classification", model="{folder}")  # the unzipped model folder
print(clf("my_clip.wav", top_k=3))
```"""


@dataclass
class PredictTab:
    tab: gr.Tab
    run: gr.Dropdown


def predictor(model_dir: Path) -> Any:
    """A cached `astapp.infer.Predictor` for this exported model (reloaded if it was re-exported)."""
    from astapp.infer import Predictor

    key = (str(model_dir), (model_dir / "config.json").stat().st_mtime)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    pred = Predictor(model_dir)
    with _cache_lock:
        _cache[key] = pred
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return pred


def _model_dir(ctx: UiContext, token: str | None, request: gr.Request, run_id: str | None) -> Path:
    from astapp.runs import model_dir

    if not run_id:
        raise gr.Error("No trained model yet: train one in the Train tab, then pick it here.")
    return model_dir(ctx.data_dir, session(ctx, token, request).owner, run_id)


def build(ctx: UiContext, token: gr.State) -> PredictTab:
    with gr.Tab("5 · Predict", id="predict") as tab:
        with gr.Row():
            run = gr.Dropdown(label="Model (a finished run)", choices=[], scale=4, elem_id="predict-run",
                              allow_custom_value=True)
            refresh = gr.Button("Refresh runs", scale=1, size="md", min_width=140)
        with gr.Row():
            with gr.Column(scale=1):
                clip = gr.Audio(label="Upload or record a clip", sources=["upload", "microphone"],
                                type="filepath", elem_id="predict-audio")
                top_k = gr.Slider(1, 10, value=3, step=1, label="How many top classes to show")
                go = gr.Button("Predict", variant="primary", elem_id="predict-btn")
            with gr.Column(scale=1):
                result = gr.Label(label="Top classes", elem_id="predict-label")
                timeline = gr.Plot(label="Per-window timeline (long clips)", visible=False)
        with gr.Accordion("Batch prediction on a zip of clips", open=False):
            with gr.Row():
                batch_zip = gr.File(label="Zip of audio files", file_types=[".zip"], height=110)
                with gr.Column():
                    batch_go = gr.Button("Predict all")
                    batch_csv = gr.File(label="Predictions (CSV)", interactive=False)
            batch_table = gr.Dataframe(label="Preview", interactive=False, max_height=260)
        with gr.Accordion("Download the model", open=True):
            with gr.Row():
                download = gr.Button("Prepare model zip", elem_id="download-btn", scale=1)
                model_zip = gr.File(label="Model (.zip)", interactive=False, height=90, scale=2)
            gr.Markdown("Unzip it anywhere; it loads with plain `transformers`:\n\n"
                        + SNIPPET.format(folder="path/to/model"))

    @guarded
    def refresh_fn(current: str | None, tok: str | None, request: gr.Request) -> Any:
        owner = session(ctx, tok, request).owner
        return picker_update(run_choices(ctx, owner, need_model=True), current)

    @guarded
    def predict_fn(run_id: str | None, path: str | None, k: float, tok: str | None,
                   request: gr.Request) -> tuple[Any, Any]:
        if not path:
            raise gr.Error("Upload or record a clip first.")
        pred = predictor(_model_dir(ctx, tok, request, run_id)).predict(path, top_k=int(k))
        label = {name: float(p) for name, p in pred.top}
        if len(pred.windows) > 1:
            from astapp.ui.plots import window_timeline

            return label, gr.Plot(window_timeline(pred.windows, [t[0] for t in pred.top]), visible=True)
        return label, gr.Plot(None, visible=False)

    @guarded
    def batch_fn(run_id: str | None, zip_path: str | None, tok: str | None, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> tuple[Any, Any]:
        import pandas as pd

        if not zip_path:
            raise gr.Error("Upload a .zip of audio files first.")
        p = predictor(_model_dir(ctx, tok, request, run_id))
        rows = p.predict_many(zip_path, top_k=3, progress=lambda f, msg: progress(f, desc=msg))
        if not rows:
            raise gr.Error("The zip holds no audio files (.wav, .flac, .mp3, .ogg …).")
        out = p.to_csv(rows, scratch_dir("csv") / "predictions.csv")
        table = pd.DataFrame([{"file": r["file"], "label": r["label"] or "",
                               "prob": round(r["prob"], 3) if r["prob"] is not None else None,
                               "error": r["error"] or ""} for r in rows[:200]])
        return str(out), table

    @guarded
    def download_fn(run_id: str | None, tok: str | None, request: gr.Request) -> str:
        from astapp.export import zip_dir

        folder = _model_dir(ctx, tok, request, run_id)
        return str(zip_dir(folder, scratch_dir("model") / f"astapp-model-{run_id}.zip"))

    refresh.click(refresh_fn, [run, token], run, api_name="list_models")
    tab.select(refresh_fn, [run, token], run, api_visibility="private")
    go.click(predict_fn, [run, clip, top_k, token], [result, timeline], api_name="predict_clip", **heavy())
    batch_go.click(batch_fn, [run, batch_zip, token], [batch_csv, batch_table], api_name="predict_batch",
                   **heavy())
    download.click(download_fn, [run, token], model_zip, api_name="download_model", **heavy())
    return PredictTab(tab, run)
