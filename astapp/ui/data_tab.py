"""Data tab: pick the example, upload a zip (or a Hub dataset id), and read the validation report.

The dataset is extracted once into the caller's workspace; the extracted folder (not the zip) is
what Augment and Train use, so nothing is extracted twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from astapp.ui.common import UiContext, guarded, heavy, md_list, pcm16, session

N_CLIPS = 8  # playable sample slots
PLAY_SECONDS = 10.0  # clips are trimmed for the players

_example_lock = threading.Lock()
_example_cache: dict[str, Any] = {}


@dataclass
class DataTab:
    tab: gr.Tab
    outputs: list[Any]  # dataset state + every display component
    load_example: Callable[[], tuple[Any, ...]]


def dataset_label(state: dict[str, Any] | None) -> str:
    return (state or {}).get("name") or "no dataset"


def _example_root(ctx: UiContext) -> Path:
    """The example dataset, extracted once per process into the shared cache (it never changes)."""
    from astapp.paths import cache_dir

    with _example_lock:
        root = _example_cache.get("root")
        if root is not None and Path(root).exists():
            return Path(root)
        from astapp import examples

        root = Path(examples.example_dir(cache_dir(ctx.data_dir)))
        _example_cache["root"] = root
        return root


def current(ctx: UiContext, data: dict[str, Any] | None) -> dict[str, Any]:
    """The session's dataset, or the example when none was chosen yet (API clients, first visit)."""
    if data and data.get("root"):
        return data
    root = _example_root(ctx)
    return {"root": str(root), "clip_root": str(clip_root(root)), "name": "Example: spoken words",
            "trainable": True}


def clip_root(root: str | Path) -> Path:
    """The folder clip names are relative to (the scan strips wrapper folders like `my_upload/`)."""
    from astapp.ingest import scan

    try:
        return Path(scan(Path(root)).root)
    except Exception:  # noqa: BLE001 - fall back to the dataset root
        return Path(root)


def _inspect(root: Path, ws: Path) -> Any:
    from astapp.config import AudioConfig, IngestLimits
    from astapp.dataset import inspect_source

    return inspect_source(root, ws, AudioConfig(), IngestLimits())


def _auto_length(durations: list[float]) -> int | None:
    try:
        from astapp.features import choose_max_length

        return choose_max_length(durations)
    except Exception:  # noqa: BLE001 - only a hint for the Train tab
        return None


def _clips(root: Path, n: int = N_CLIPS) -> list[tuple[str, Path]]:
    """A few clips per class, round-robin over classes, as (caption, path)."""
    from astapp.ingest import scan

    by_class: dict[str, list[Path]] = {}
    for item in scan(root).items:
        by_class.setdefault(item.label, []).append(Path(item.path))
    picked: list[tuple[str, Path]] = []
    depth = 0
    while len(picked) < n and any(len(v) > depth for v in by_class.values()):
        for label in sorted(by_class):
            if len(picked) < n and len(by_class[label]) > depth:
                path = by_class[label][depth]
                picked.append((f"{label} · {path.name}", path))
        depth += 1
    return picked


def play_value(path: Path) -> tuple[int, Any] | None:
    """Decoded 16 kHz audio for a player (browsers can't play every format users upload)."""
    from astapp.audio import load_audio
    from astapp.errors import AudioDecodeError

    try:
        return pcm16(16000, load_audio(path, max_seconds=PLAY_SECONDS))
    except AudioDecodeError:
        return None


def _present(ctx: UiContext, name: str, root: Path, report: Any) -> tuple[Any, ...]:
    """State + every output of the tab for one inspected dataset."""
    import pandas as pd

    from astapp.ui.plots import duration_histogram

    rep = report.to_dict()
    classes = rep.get("classes", [])
    n_clips = sum(int(c["clips"]) for c in classes)
    total = sum(float(c["seconds"]) for c in classes)
    trainable = bool(report.trainable)
    auto = _auto_length(list(rep.get("durations", [])))
    verdict = ("<span class='astapp-badge finished'>Ready to train</span> Go to *Augment* to hear what the "
               "model hears, or straight to *Train*." if trainable else
               "<span class='astapp-badge failed'>Not trainable yet</span> Fix the problems listed below and "
               "upload again.")
    summary = (f"### {name}\n{len(classes)} classes · {n_clips} clips · {total / 60:.1f} min of audio"
               f" · layout: `{rep.get('layout', '?')}`\n\n{verdict}")
    df = pd.DataFrame([{"class": c["name"], "clips": int(c["clips"]), "seconds": round(float(c["seconds"]), 1)}
                       for c in classes], columns=["class", "clips", "seconds"])
    parts: list[str] = []
    if rep.get("errors"):
        parts.append("#### Blocking problems (fix these first)\n" + md_list(rep["errors"]))
    if rep.get("warnings"):
        parts.append("#### Warnings\n" + md_list(rep["warnings"]))
    skipped = rep.get("skipped") or []
    if skipped:
        shown = [f"`{s['path']}`: {s['reason']}" for s in skipped[:20]]
        more = f"\n- … and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        parts.append(f"#### Skipped files ({len(skipped)})\n" + "\n".join(f"- {s}" for s in shown) + more)
    issues = "\n\n".join(parts) or "No warnings: every file decoded and every class has enough clips."
    players: list[Any] = []
    for caption, path in (_clips(root) if trainable or classes else []):
        players.append(gr.Audio(value=play_value(path), label=caption, visible=True))
    players += [gr.Audio(value=None, visible=False)] * (N_CLIPS - len(players))
    state = {"root": str(root), "clip_root": str(clip_root(root)), "name": name,
             "labels": [c["name"] for c in classes], "trainable": trainable, "auto_length": auto}
    return (state, summary, df, duration_histogram(rep.get("durations", [])), issues, *players)


def build(ctx: UiContext, owner: gr.State, dataset: gr.State) -> DataTab:
    with gr.Tab("1 · Data", id="data") as tab:
        outputs = _layout(ctx, dataset)
    use_example, upload, hub_id, hub_btn = outputs.pop()

    @guarded
    def use_example_fn() -> tuple[Any, ...]:
        root = _example_root(ctx)
        with _example_lock:
            report = _example_cache.get("report")
        if report is None:
            report = _inspect(root, root.parent)
            with _example_lock:
                _example_cache["report"] = report
        return _present(ctx, "Example: spoken words", root, report)

    @guarded
    def upload_fn(file: str | None, token: str | None, request: gr.Request) -> tuple[Any, ...]:
        if not file:
            raise gr.Error("Choose a .zip file first.")
        from astapp.config import IngestLimits
        from astapp.ingest import resolve_source

        ws = session(ctx, token, request).workspace
        src = Path(file)
        root = resolve_source(src, ws, IngestLimits())  # extracted under ws/uploads/, reused if re-sent
        report = _inspect(root, ws)
        return _present(ctx, f"Your dataset: {src.name}", root, report)

    @guarded
    def hub_fn(dataset_id: str, token: str | None, request: gr.Request) -> tuple[Any, ...]:
        if not dataset_id.strip():
            raise gr.Error("Type a dataset id such as user/dataset.")
        from astapp.config import IngestLimits
        from astapp.ingest import resolve_source

        ws = session(ctx, token, request).workspace
        root = resolve_source("hf:" + dataset_id.strip().removeprefix("hf:"), ws, IngestLimits())
        return _present(ctx, f"Hub dataset: {dataset_id.strip()}", root, _inspect(root, ws))

    use_example.click(use_example_fn, None, outputs, api_name="use_example", **heavy())
    upload.upload(upload_fn, [upload, owner], outputs, api_name="upload_dataset", **heavy())
    hub_btn.click(hub_fn, [hub_id, owner], outputs, api_name="hub_dataset", **heavy())
    return DataTab(tab, outputs, use_example_fn)


def _layout(ctx: UiContext, dataset: gr.State) -> list[Any]:
    """The tab's components: [dataset, displays..., (buttons and inputs)]."""
    gr.Markdown("Drop a **zip with one folder per class** (or a CSV manifest with `path,label` columns), "
                "or start with the built-in example. Everything stays in your private workspace.")
    with gr.Row(equal_height=True):
        with gr.Column(scale=1, min_width=220):
            use_example = gr.Button("Use the example dataset", variant="primary", elem_id="use-example")
            gr.Markdown("<small>Everyday sounds: speech, whistles, beeps, knocks and noise — 16 one-second clips each.</small>")
        with gr.Column(scale=2):
            upload = gr.File(label="Upload your dataset (.zip)", file_types=[".zip"], file_count="single",
                             elem_id="upload-zip", height=120)
        with gr.Column(scale=2, visible=ctx.hub_online):
            hub_id = gr.Textbox(label="…or a Hugging Face dataset id", placeholder="user/dataset")
            hub_btn = gr.Button("Load from the Hub")
    summary = gr.Markdown("Loading the example dataset…", elem_id="data-summary")
    with gr.Row():
        classes = gr.Dataframe(label="Classes", interactive=False, scale=2, elem_id="class-table",
                               headers=["class", "clips", "seconds"])
        histogram = gr.Plot(label="Durations", scale=3, show_label=False)
    issues = gr.Markdown(elem_id="data-issues")
    gr.Markdown("#### Listen to a few clips")
    players: list[gr.Audio] = []
    for r in range(N_CLIPS // 4):
        with gr.Row():
            for c in range(4):
                players.append(gr.Audio(label=f"clip {r * 4 + c + 1}", visible=False, interactive=False,
                                        buttons=[], min_width=180))
    return [dataset, summary, classes, histogram, issues, *players, (use_example, upload, hub_id, hub_btn)]
