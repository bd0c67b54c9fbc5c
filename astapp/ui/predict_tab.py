"""Predict tab: try a trained model on a clip or a zip, and download it for plain `transformers`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.service import Service
from astapp.ui import distill_panel, listen_tab
from astapp.ui.common import Guard, heavy, hf_username, notice_card, picker_update, run_choices, session


@dataclass
class PredictTab:
    tab: gr.Tab
    run: gr.Dropdown
    top_k: gr.Slider


def snippet_md(svc: Service, run_id: str | None) -> str:
    """How to use the downloaded model without astapp (and without ffmpeg or torchaudio)."""
    return ("The zip unpacks into one folder that plain `transformers` loads. With only "
            "`pip install transformers torch soundfile`:\n\n```python\n" + svc.predicting.usage_snippet(run_id).rstrip()
            + "\n```\n\nWith ffmpeg installed, the pipeline also reads files itself: "
            "`clf(\"my_clip.wav\", top_k=3)`.\n\nThe zip also holds `onnx/model.onnx` (fp32) and "
            "`onnx/model_quantized.onnx` (int8), checked against PyTorch on the validation clips (its README "
            "has the numbers): `python3 -m astapp predict --onnx --model FOLDER clip.wav` runs them without "
            "torch, and the browser bundle's `demo.html` runs them in a web page (Transformers.js).")


@dataclass
class _Page:
    """The Predict tab's components, for the functions that wire them."""

    run: gr.Dropdown
    refresh: gr.Button
    notice: gr.Markdown
    clip: gr.Audio
    top_k: gr.Slider
    go: gr.Button
    result: gr.Label
    timeline: gr.Plot
    verdict: gr.Markdown  # the unknown score: "unknown (not like any class; ...)" above the top classes
    batch: list[Any]  # zip, button, CSV, table
    downloads: list[Any]  # model button, model zip, browser button, browser zip, snippet
    publish: list[Any]  # repo, private, license, token, card button, publish button, result, card, its notice


def build(svc: Service, token: gr.State) -> PredictTab:
    with gr.Tab("5 · Predict", id="predict") as tab:
        with gr.Row():
            run = gr.Dropdown(label="Model (a finished run)", choices=[], scale=4, elem_id="predict-run",
                              allow_custom_value=True)
            refresh = gr.Button("Refresh runs", scale=1, size="md", min_width=140)
        distill_panel.model_note(svc, token, run)
        notice = notice_card("predict-notice")
        with gr.Row():
            with gr.Column(scale=1):
                clip = gr.Audio(label="Upload or record a clip", sources=["upload", "microphone"],
                                type="filepath", elem_id="predict-audio")
                top_k = gr.Slider(1, 10, value=3, step=1, label="How many top classes to show", elem_id="top-k",
                                  info="also the number of classes per file in the batch CSV")
                go = gr.Button("Predict", variant="primary", elem_id="predict-btn")
            with gr.Column(scale=1):
                verdict = gr.Markdown(elem_id="predict-unknown")
                result = gr.Label(label="Top classes", elem_id="predict-label")
                timeline = gr.Plot(label="Per-window timeline (long clips)", visible=False)
        listen_tab.build(svc, token, run, notice)
        page = _Page(run, refresh, notice, clip, top_k, go, result, timeline, verdict, _batch_controls(),
                     _download_controls(svc), _publish_controls(svc))
    guard = Guard()
    _wire_predict(svc, token, page, guard, tab)
    _wire_downloads(svc, token, page, guard)
    _wire_publish(svc, token, page, guard)
    return PredictTab(tab, run, top_k)


def _batch_controls() -> list[Any]:
    with gr.Accordion("Batch prediction on a zip of clips", open=False):
        with gr.Row():
            batch_zip = gr.File(label="Zip of audio files", file_types=[".zip"], height=110)
            with gr.Column():
                batch_go = gr.Button("Predict all")
                batch_csv = gr.File(label="Predictions (CSV)", interactive=False, visible=False)
        batch_table = gr.Dataframe(label="Preview", interactive=False, max_height=260)
    return [batch_zip, batch_go, batch_csv, batch_table]


def _download_controls(svc: Service) -> list[Any]:
    with gr.Accordion("Download the model", open=True):
        download = gr.Button("Prepare model zip", elem_id="download-btn")
        model_zip = gr.File(label="Model (.zip)", interactive=False, visible=False, elem_id="model-zip")
        browser = gr.Button("Prepare browser bundle (+ the ~7 MB runtime: open demo.html from any static "
                            "server, offline)", elem_id="browser-btn")
        browser_zip = gr.File(label="Browser bundle (.zip)", interactive=False, visible=False,
                              elem_id="browser-zip")
        snippet = gr.Markdown(snippet_md(svc, None), elem_id="model-snippet")
    return [download, model_zip, browser, browser_zip, snippet]


def _publish_controls(svc: Service) -> list[Any]:
    with gr.Accordion("Publish to the Hugging Face Hub", open=False):
        gr.Markdown("Uploads the model with a model card (labels, data, settings, scores, confusion matrix, "
                    "a working snippet). " + ("Sign in with Hugging Face at the top of the page first."
                                              if svc.hf_login else "Use a token with write access "
                                              "(https://huggingface.co/settings/tokens); it is used for this "
                                              "upload only and never stored."))
        with gr.Row():
            repo = gr.Textbox(label="Repository (owner/name)", placeholder="alice/dog-barks", scale=3,
                              elem_id="publish-repo")
            private = gr.Checkbox(True, label="Private", scale=1)
            license_id = gr.Textbox("other", label="License", scale=1, info="e.g. apache-2.0, mit, other")
        hf_token = gr.Textbox(label="Hugging Face token (write access)", type="password",
                              visible=not svc.hf_login, elem_id="publish-token")
        with gr.Row():
            preview_card = gr.Button("Preview the model card", elem_id="card-btn")
            publish = gr.Button("Publish", variant="primary", elem_id="publish-btn")
        failure = notice_card("publish-notice")  # under its buttons: the tab's own card is far above
        published = gr.Markdown(elem_id="publish-result")
        card = gr.Code(language="markdown", visible=False, interactive=False, label="README.md (model card)")
    return [repo, private, license_id, hf_token, preview_card, publish, published, card, failure]


def failed(message: str, *_: Any) -> str:
    return f"That did not work: {message}"


def _wire_predict(svc: Service, token: gr.State, p: _Page, guard: Guard, tab: gr.Tab) -> None:
    """The run picker, one clip, and a zip of clips."""

    @guard
    def refresh_fn(current: str | None, tok: str | None, request: gr.Request) -> Any:
        """The models, showing the user's pick until a newer run finishes, else the newest."""
        runs, shown = svc.picker(session(svc, tok, request), "predict")
        return picker_update(run_choices(runs), shown or current)

    def pick_fn(run_id: str | None, tok: str | None, request: gr.Request) -> None:
        """The user chose a model: remembered now, not only when they press Predict."""
        svc.pick_run(session(svc, tok, request), "predict", run_id)

    @guard
    def predict_fn(run_id: str | None, path: str | None, k: float, tok: str | None,
                   request: gr.Request) -> tuple[Any, Any, str]:
        sess = session(svc, tok, request)
        pred, line = svc.predicting.predict_with_verdict(sess, run_id, path, int(k))
        svc.remember(sess, top_k=int(k))
        verdict = f"### {line}\nThe top classes stay listed below." if pred.is_unknown else line
        label = {name: float(p) for name, p in pred.top}
        if pred.multi_label and pred.above:  # every label over its threshold, not only the top one
            label = {name: float(p) for name, p in pred.above}
        if len(pred.windows) > 1:
            from astapp.service import window_timeline

            return label, gr.Plot(window_timeline(pred.windows, [t[0] for t in pred.top]), visible=True), verdict
        return label, gr.Plot(None, visible=False), verdict

    @guard
    def batch_fn(run_id: str | None, zip_path: str | None, k: float, tok: str | None, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> tuple[Any, Any]:
        import pandas as pd

        csv_path, rows = svc.predicting.predict_batch(session(svc, tok, request), run_id, zip_path, int(k),
                                           progress=lambda f, msg: progress(f, desc=msg))
        table = pd.DataFrame([{"file": r["file"], "label": r["label"] or "",
                               "prob": round(r["prob"], 3) if r["prob"] is not None else None,
                               "top": "; ".join(f"{name} {p:.3f}" for name, p in r["top"]),
                               "error": r["error"] or "",
                               "unknown": None if r.get("unknown") is None else round(r["unknown"], 3)}
                              for r in rows[:200]])
        return str(csv_path), table

    p.refresh.click(refresh_fn, [p.run, token], p.run, api_name="list_models")
    tab.select(refresh_fn, [p.run, token], p.run, api_visibility="private")
    p.run.input(guard(pick_fn), [p.run, token], None, api_visibility="private", show_progress="hidden")
    shown = [p.result, p.timeline, p.verdict]
    guard.keep(p.go.click(predict_fn, [p.run, p.clip, p.top_k, token], shown, api_name="predict_clip", **heavy()),
               shown, p.notice, say=failed)
    batch_zip, batch_go, batch_csv, batch_table = p.batch
    event = batch_go.click(batch_fn, [p.run, batch_zip, p.top_k, token], [batch_csv, batch_table],
                           api_name="predict_batch", **heavy())
    guard.keep(event, [batch_csv, batch_table], p.notice, say=failed)
    event.success(lambda: gr.File(visible=True), None, batch_csv, api_visibility="private")


def _wire_downloads(svc: Service, token: gr.State, p: _Page, guard: Guard) -> None:
    """The model zip and the browser bundle, and the snippet that uses the chosen run."""
    download, model_zip, browser, browser_zip, snippet = p.downloads

    @guard
    def download_fn(run_id: str | None, tok: str | None, request: gr.Request) -> str:
        return str(svc.predicting.download(session(svc, tok, request), run_id))

    @guard
    def browser_fn(run_id: str | None, tok: str | None, request: gr.Request) -> str:
        return str(svc.predicting.download_browser(session(svc, tok, request), run_id))

    p.run.change(lambda r: snippet_md(svc, r), p.run, snippet, api_visibility="private", show_progress="hidden")
    for event, output in ((download.click(download_fn, [p.run, token], model_zip, api_name="download_model",
                                          **heavy()), model_zip),
                          (browser.click(browser_fn, [p.run, token], browser_zip, api_name="download_browser",
                                         **heavy()), browser_zip)):
        guard.keep(event, [output], p.notice, say=failed)
        event.success(lambda: gr.File(visible=True), None, output, api_visibility="private")


def _wire_publish(svc: Service, token: gr.State, p: _Page, guard: Guard) -> None:
    """Preview the model card, publish to the Hub, and suggest a repository name."""
    repo, private, license_id, hf_token, preview_card, publish, published, card, failure = p.publish

    @guard
    def card_fn(run_id: str | None, repo_id: str, license_v: str, tok: str | None, request: gr.Request) -> str:
        return svc.publishing.card_preview(session(svc, tok, request), run_id, repo_id, license_v)

    @guard
    def publish_fn(run_id: str | None, repo_id: str, private_v: bool, license_v: str, token_v: str | None,
                   tok: str | None, request: gr.Request, oauth: gr.OAuthToken | None = None,
                   progress: gr.Progress = gr.Progress()) -> str:
        token = (oauth.token if oauth is not None else None) or (token_v or "").strip() or None
        url = svc.publishing.publish(session(svc, tok, request), run_id, repo_id, token, private=bool(private_v),
                          license=license_v, progress=lambda msg: progress(None, desc=msg))
        return f"Published: [{url}]({url}) ({'private' if private_v else 'public'})."

    def suggest_fn(run_id: str | None, current: str, tok: str | None, request: gr.Request) -> Any:
        """On a Space, the signed-in user's name plus the run's name as the repository to publish to."""
        if current:
            return gr.update()
        return svc.publishing.repo_suggestion(session(svc, tok, request), run_id, hf_username(request)) or gr.update()

    p.run.change(suggest_fn, [p.run, repo, token], repo, api_visibility="private", show_progress="hidden")
    guard.keep(preview_card.click(card_fn, [p.run, repo, license_id, token], card, api_name="model_card"), [card],
               failure, say=failed)
    guard.keep(publish.click(publish_fn, [p.run, repo, private, license_id, hf_token, token], published,
                             api_name="publish_model"), [published], failure, say=failed)
    preview_card.click(lambda: gr.Code(visible=True), None, card, api_visibility="private")
