"""Assemble the five tabs into one `gr.Blocks` app (`build_app`) and launch it (`main`).

`build_app` never launches and never imports torch, so tests and `python app.py` start quickly; the
engine is imported on first use inside the handlers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr

from astapp.config import DEFAULT_MODEL, SCRATCH_SIZES, AugmentConfig, IngestLimits
from astapp.ui.common import UiContext, hardware, heavy, new_token

log = logging.getLogger("astapp.ui")

QUEUE_SIZE = 64  # events waiting for a worker, all users together
OFFLINE_DEFAULT = "scratch:tiny"  # trains the example to ~0.85 accuracy in under a minute on 2 CPU cores

CSS = """
.gradio-container { max-width: 1280px !important; width: 100% !important; margin: auto; }
.astapp-badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-weight: 600;
  font-size: 0.9em; background: #e2e8f0; color: #334155; margin-right: 6px; }
.astapp-badge.finished { background: #dcfce7; color: #166534; }
.astapp-badge.running, .astapp-badge.queued { background: #ffedd5; color: #9a3412; }
.astapp-badge.failed { background: #fee2e2; color: #991b1b; }
.astapp-badge.interrupted { background: #fef3c7; color: #92400e; }
#astapp-header h1 { margin-bottom: 0; }
#astapp-header p { margin-top: 4px; color: var(--body-text-color-subdued); }
.astapp-notice { border-left: 4px solid #f59e0b; background: #fffbeb; padding: 8px 14px; border-radius: 6px; }
.dark .astapp-notice { background: #3a2a06; }
.astapp-hint { font-size: 0.92em; color: var(--body-text-color-subdued); }
.astapp-progress { height: 14px; background: var(--neutral-200); border-radius: 7px; overflow: hidden; }
.astapp-progress .bar { height: 100%; background: linear-gradient(90deg, #fb923c, #f97316);
  transition: width 0.6s ease; }
.astapp-progress.finished .bar { background: #16a34a; }
.astapp-progress.failed .bar { background: #dc2626; }
.astapp-progress.stopped .bar { background: #64748b; }
.astapp-progress-text { font-size: 0.9em; margin-top: 4px; color: var(--body-text-color-subdued); }
footer { display: none !important; }
"""


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
        # one source for the upload cap: the engine's IngestLimits (ASTAPP_MAX_UPLOAD_MB)
        kwargs.setdefault("max_file_size", IngestLimits().max_upload_bytes)
        kwargs.setdefault("footer_links", ["api"])
        return super().launch(*args, **kwargs)


def model_choices(default: str, hub_online: bool) -> list[str]:
    choices = [default]
    if hub_online and DEFAULT_MODEL not in choices:
        choices.append(DEFAULT_MODEL)
    choices += [f"scratch:{s}" for s in SCRATCH_SIZES if f"scratch:{s}" not in choices]
    return choices


def default_model(hub_online: bool) -> str:
    """`ASTAPP_MODEL` when set; the pretrained AST when the Hub answers; else a from-scratch model."""
    env = os.environ.get("ASTAPP_MODEL", "").strip()
    if env:
        return env
    return DEFAULT_MODEL if hub_online else OFFLINE_DEFAULT


def _hub_online() -> bool:
    try:
        from astapp.hub import hub_reachable
    except Exception:  # noqa: BLE001 - model module missing or broken: behave as offline
        return False
    return hub_reachable(timeout=2.0)


def build_app(manager: Any = None, hub_online: bool | None = None) -> AstApp:
    """Build the Blocks app. `manager`: an `astapp.jobs.JobManager` (default: the process-wide one)."""
    from astapp.jobs import get_manager
    from astapp.ui import augment_tab, data_tab, evaluate_tab, predict_tab, train_tab

    manager = manager or get_manager()
    online = _hub_online() if hub_online is None else hub_online
    default = default_model(online)
    ctx = UiContext(data_dir=Path(manager.root), default_model=default, hub_online=online,
                    example_zip=None, model_choices=model_choices(default, online), manager=manager)
    with AstApp(title="astapp · teach AST your sounds") as demo:
        browser_token = gr.BrowserState(None, storage_key="astapp-owner", secret=_secret(ctx.data_dir))
        token = gr.State(None)
        dataset = gr.State(None)
        augment = gr.State(AugmentConfig(preset="light").__dict__.copy())
        gr.Markdown("# astapp\nTeach the Audio Spectrogram Transformer your own sounds: "
                    "**Data → Augment → Train → Evaluate → Predict**. "
                    f"Running on {'GPU' if hardware() == 'cuda' else 'CPU'}.", elem_id="astapp-header")
        with gr.Tabs(elem_id="astapp-tabs"):
            data = data_tab.build(ctx, token, dataset)
            aug = augment_tab.build(ctx, dataset, augment)
            train = train_tab.build(ctx, token, dataset, augment)
            evaluate_tab.build(ctx, token)
            predict_tab.build(ctx, token)

        def on_load(stored: str | None, request: gr.Request) -> tuple[Any, ...]:
            """Give the browser its persistent owner token and re-attach to its running (or interrupted) job."""
            from astapp.ui.common import _TOKEN, session

            tok = stored if isinstance(stored, str) and _TOKEN.match(stored) else new_token()
            job_id = None
            try:
                job_id = train_tab.attach_job(manager, session(ctx, tok, request).owner)
            except Exception:  # noqa: BLE001 - a bad token just means no job to re-attach
                log.exception("re-attach failed")
            return tok, tok, job_id, gr.Timer(active=job_id is not None)

        demo.load(on_load, [browser_token], [browser_token, token, train.job, train.timer],
                  api_visibility="private").then(
            data.load_example, None, data.outputs, api_visibility="private", **heavy()).then(
            train.hint_fn, train.hint_inputs, train.hint_outputs, api_visibility="private")
        dataset.change(aug.on_dataset, dataset, aug.dataset_outputs, api_visibility="private")
        dataset.change(train_tab.on_dataset, dataset, train.max_length, api_visibility="private")
    # Light events (status polls, stop, run lists) run up to 4 at a time each; CPU-heavy ones share the
    # `heavy()` group. A bounded queue answers "queue is full" instead of letting waits grow without end.
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    return demo


def _secret(root: Path) -> str:
    """A stable per-installation secret for the browser token (so it survives restarts)."""
    import secrets

    path = Path(root) / ".browser_secret"
    try:
        value = path.read_text(encoding="utf-8").strip()
        if len(value) >= 16:
            return value
    except OSError:
        pass
    value = secrets.token_hex(16)
    try:
        from astapp.fsutil import atomic_write_text

        atomic_write_text(path, value)
    except OSError:
        log.warning("Could not save the browser secret in %s; sessions reset on restart.", root)
    return value


def main() -> None:
    """Entry point of `python app.py`: env-configured launch with queue, auth and cleanup."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from astapp.jobs import get_manager

    manager = get_manager()  # recover() of interrupted runs and the idle-cleanup thread happen here
    demo = build_app(manager)
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
