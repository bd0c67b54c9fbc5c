"""Assemble the five tabs into one `gr.Blocks` app (`build_app`) and launch it (`main`).

`build_app` never launches and never imports torch, so tests and `python app.py` start quickly; the
tabs reach the engine only through `astapp.service.Service`, which imports it on first use.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import gradio as gr

from astapp.core.config import IngestLimits
from astapp.service import Service
from astapp.ui.common import TOKEN, heavy, new_token, session
from astapp.ui.detect_tab import KEYS_HEAD
from astapp.ui.launching import patient_launch

log = logging.getLogger("astapp.ui")

QUEUE_SIZE = 64  # events waiting for a worker, all users together

CSS = """
.gradio-container { max-width: 1280px !important; width: 100% !important; margin: auto; }
.astapp-badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-weight: 600;
  font-size: 0.9em; background: #e2e8f0; color: #334155; margin-right: 6px; }
.astapp-badge.finished { background: #dcfce7; color: #166534; }
.astapp-badge.running, .astapp-badge.queued { background: #ffedd5; color: #9a3412; }
.astapp-badge.failed { background: #fee2e2; color: #991b1b; }
.astapp-badge.interrupted { background: #fef3c7; color: #92400e; }
.astapp-badge.stopping, .astapp-badge.stopped { background: #e2e8f0; color: #1e293b; }
.astapp-notice.astapp-failed { border-left-color: #dc2626; background: #fef2f2; }
.dark .astapp-notice.astapp-failed { background: #3b0d0d; }
.astapp-players { flex-wrap: wrap; }
.astapp-players > * { min-width: 280px; }
.astapp-clip-grid { display: grid !important; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: var(--layout-gap); }
.astapp-clip-grid > * { min-width: 0 !important; }
@media (max-width: 900px) { .astapp-clip-grid { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
/* The form's sliders keep their number box and reset button inside their card on a narrow window. */
#val-split { min-width: 220px !important; }
#val-split input[type="number"] { min-width: 0; max-width: 5.5em; }
#astapp-header h1 { margin-bottom: 0; }
#astapp-header p { margin-top: 4px; color: var(--body-text-color-subdued); }
.astapp-notice { border-left: 4px solid #f59e0b; background: #fffbeb; padding: 8px 14px; border-radius: 6px; }
.dark .astapp-notice { background: #3a2a06; }
.astapp-hint { font-size: 0.92em; color: var(--body-text-color-subdued); }
/* Their events say show_progress="hidden", but Gradio 6.31 still draws "processing | 2s" on a component
   of a tab that mounts while such an event runs; these are updated quietly by design. */
.astapp-hint > [data-testid="status-tracker"], #train-status > [data-testid="status-tracker"],
#train-progress > [data-testid="status-tracker"], #train-log > [data-testid="status-tracker"] {
  display: none !important; }
.astapp-progress { height: 14px; background: var(--neutral-200); border-radius: 7px; overflow: hidden; }
.astapp-progress .bar { height: 100%; background: linear-gradient(90deg, #fb923c, #f97316);
  transition: width 0.6s ease; }
.astapp-progress.finished .bar { background: #16a34a; }
.astapp-progress.failed .bar { background: #dc2626; }
.astapp-progress.stopped .bar { background: #64748b; }
.astapp-progress-text { font-size: 0.9em; margin-top: 4px; color: var(--body-text-color-subdued); }
footer { display: none !important; }
"""

# The browser's voice processing (on by default in getUserMedia) is made for calls: noise suppression
# fades out steady sounds and the noise floor, automatic gain changes levels, so the microphone would
# hear something other than the training clips. Gradio asks for `{audio: true}`; ask for the raw sound.
MIC_HEAD = """<script>(() => { const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia || md.astappRawAudio) return;
  const get = md.getUserMedia.bind(md), raw = {echoCancellation: false, noiseSuppression: false, autoGainControl: false};
  md.getUserMedia = (c) => get(c && c.audio ? {...c, audio: c.audio === true ? raw : {...raw, ...c.audio}} : c);
  md.astappRawAudio = true; })();</script>"""


# Keys the Gradio 6.31 frontend asks for but does not ship: its status tracker tells screen readers an
# event ended with i18n("common.complete"), which only the chatbot's strings define, so the live region
# read out the raw key. (Other locales fall back to English.)
TRANSLATIONS = {"common.complete": "Done"}


def theme() -> Any:
    """System fonts only: no request to Google Fonts (offline machines, privacy)."""
    fonts = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="orange", secondary_hue="slate", neutral_hue="slate", font=fonts,
                          font_mono=mono)


class AstApp(gr.Blocks):
    """`gr.Blocks` whose `launch()` defaults to our theme, CSS and upload limit (Gradio 6 moved them there)."""

    def launch(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("theme", theme())
        kwargs.setdefault("css", CSS)
        kwargs.setdefault("head", MIC_HEAD + KEYS_HEAD)  # the Detect tab's review keys
        # one source for the upload cap: the engine's IngestLimits (ASTAPP_MAX_UPLOAD_MB)
        kwargs.setdefault("max_file_size", IngestLimits().max_upload_bytes)
        kwargs.setdefault("footer_links", ["api"])
        kwargs.setdefault("i18n", gr.I18n(en=TRANSLATIONS))
        with patient_launch():  # a busy machine's first render can outlast gradio's 3 s localhost check
            return super().launch(*args, **kwargs)


def build_app(manager: Any = None, hub_online: bool | None = None, service: Service | None = None) -> AstApp:
    """Build the Blocks app over a `Service` (default: one over `manager`, else the process-wide queue)."""
    from astapp.ui import augment_tab, data_tab, detect_tab, evaluate_tab, predict_tab, train_tab

    svc = service or Service(manager, hub_online=hub_online)
    with AstApp(title="astapp · teach AST your sounds") as demo:
        browser_token = gr.BrowserState(None, storage_key="astapp-owner", secret=svc.browser_secret())
        token = gr.State(None)
        with gr.Row(equal_height=True):
            gr.Markdown("# astapp\nTeach the Audio Spectrogram Transformer your own sounds: "
                        "**Data → Augment → Train → Evaluate → Predict**. "
                        f"Running on {'GPU' if svc.hardware == 'cuda' else 'CPU'}.", elem_id="astapp-header")
            if svc.hf_login:  # on a Space: your runs follow your Hugging Face account, and you can publish
                gr.LoginButton(scale=0, min_width=220)
        with gr.Tabs(elem_id="astapp-tabs"):
            data = data_tab.build(svc, token)
            aug = augment_tab.build(svc, token)
            train = train_tab.build(svc, token)
            evaluate_tab.build(svc, token)
            predict = predict_tab.build(svc, token)
            detect = detect_tab.build(svc, token)

        def on_load(stored: str | None, request: gr.Request) -> tuple[Any, ...]:
            """Give the browser its persistent owner token and find the run to show (active, interrupted
            or the newest); the tabs then restore the session's state from the server."""
            tok = stored if isinstance(stored, str) and TOKEN.match(stored) else new_token()
            sess, job_id, top_k = None, None, gr.update()
            try:
                sess = session(svc, tok, request)
                job_id = svc.training.attach(sess)
                top_k = svc.state(sess).top_k
            except Exception:  # noqa: BLE001 - a bad token just means nothing to re-attach
                log.exception("re-attach failed")
            return tok, tok, job_id, gr.Timer(active=job_id is not None), top_k

        private: dict[str, Any] = {"api_visibility": "private"}
        # On load the tabs restore the server's state in branches side by side (issue 31): the Augment
        # settings, the Train form and the Detect review read only the workspace and are back within a round trip;
        # the CPU-heavy dataset restore (then what follows the dataset: recordings, versions, the pool, clips,
        # split controls) never delays them.
        loaded = demo.load(on_load, [browser_token], [browser_token, token, train.job, train.timer, predict.top_k],
                           **private)
        loaded.then(aug.restore, [token], aug.restore_outputs, **private)
        loaded.then(train.restore, [token], train.form, **private).then(
            train.hint_fn, train.hint_inputs, train.hint_outputs, **private, show_progress="hidden")
        loaded.then(detect.restore, detect.restore_inputs, detect.outputs, **private)
        loaded.then(data.restore, [token], data.outputs, **private, **heavy()).then(
            data.record_restore, [token], data.record_outputs, **private).then(
            data.versions_restore, [token], data.versions_outputs, **private).then(
            data.pool_restore, [token], data.pool_outputs, **private).then(
            aug.restore_clips, [token], aug.dataset_outputs, **private).then(
            train.restore_split, [token, data.view], train.dataset_outputs, **private)

        def follow_new_run(tok: str | None, request: gr.Request) -> tuple[Any, Any]:
            """After "Add to dataset and retrain": the Train tab follows the new run, the Data tab shows the
            new version (as after a reload)."""
            return svc.training.attach(session(svc, tok, request)), gr.Timer(active=True)

        detect.retrained.success(follow_new_run, [token], [train.job, train.timer], **private).then(
            data.restore, [token], data.outputs, **private).then(
            data.versions_restore, [token], data.versions_outputs, **private).then(
            train_tab.dataset_info, data.view, train.dataset_outputs, **private)
        for chosen in data.chosen:  # a newly chosen dataset: the clip list and the split controls follow
            chosen.success(aug.on_dataset, [token], aug.dataset_outputs, **private).then(
                train_tab.dataset_info, data.view, train.dataset_outputs, **private)
    # Light events (status polls, stop, run lists) run up to 4 at a time each; CPU-heavy ones share the
    # `heavy()` group. A bounded queue answers "queue is full" instead of letting waits grow without end.
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    return demo


def main() -> None:
    """Entry point of `python app.py`: env-configured launch with queue, auth and cleanup."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_app()  # the process-wide queue: recovery of interrupted runs and idle cleanup start here
    auth = _auth_from_env(os.environ.get("ASTAPP_AUTH", ""))
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                auth=auth or None, show_error=False)


def _auth_from_env(raw: str) -> list[tuple[str, str]]:
    """`ASTAPP_AUTH="alice:pw1,bob:pw2"` → [("alice", "pw1"), ("bob", "pw2")] (malformed pairs ignored)."""
    pairs = []
    for item in raw.split(","):
        user, sep, pw = item.strip().partition(":")
        if sep and user and pw:
            pairs.append((user, pw))
    return pairs
