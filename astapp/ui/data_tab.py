"""Data tab: pick the example, upload a zip (or a Hub dataset id), and read the validation report.

The chosen dataset lives on the server (the session's state), so a reload shows it again; the tab
only draws what `Service.datasets.current` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from astapp.service import DatasetView, Service
from astapp.ui import pool_panel, record_panel, versions_panel
from astapp.ui.common import Guard, heavy, md_list, notice_card, pcm16, plural, session

N_CLIPS = 8  # playable sample slots


@dataclass
class DataTab:
    tab: gr.Tab
    view: gr.State  # the dataset this page shows ({name, root, auto_length}); other tabs follow it
    outputs: list[Any]  # view + every display component
    restore: Callable[..., tuple[Any, ...]]
    chosen: list[Any]  # the events that choose a new dataset (other tabs follow with .success)
    record_restore: Callable[..., list[Any]] | None = None  # the recordings back after a reload
    record_outputs: list[Any] = field(default_factory=list)
    versions_restore: Callable[..., tuple[Any, ...]] | None = None  # the dataset versions after a reload
    versions_outputs: list[Any] = field(default_factory=list)
    pool_restore: Callable[..., list[Any]] | None = None  # the pool, its labels and round back after a reload
    pool_outputs: list[Any] = field(default_factory=list)


def present(svc: Service, view: DatasetView) -> tuple[Any, ...]:
    """The page-state mirror and every output of the tab for one dataset."""
    import pandas as pd

    from astapp.service import duration_histogram

    rep = view.report
    classes = rep.get("classes", [])
    n_clips = sum(int(c["clips"]) for c in classes)
    multi = rep.get("label_mode") == "multi"
    if multi:  # classes count the clips carrying each label, so they overlap
        n_clips = len(rep.get("durations") or [])
    total = sum(float(c["seconds"]) for c in classes)
    verdict = ("<span class='astapp-badge finished'>Ready to train</span> Go to *Augment* to hear what the "
               "model hears, or straight to *Train*." if view.trainable else
               "<span class='astapp-badge failed'>Not trainable yet</span> Fix the problems listed below and "
               "upload again.")
    summary = (f"### {view.name}\n{plural(len(classes), 'class', 'classes')} · {plural(n_clips, 'clip')} · "
               f"{total / 60:.1f} min of audio · layout: `{rep.get('layout', '?')}`")
    if view.folds and set(view.folds) <= {"train", "training"}:  # a dataset version's added clips
        summary += (f"\n\n**Added clips**: {plural(sum(view.folds.values()), 'clip')} you added (Detect, Listen "
                    "live) always train; the other clips are split exactly as in the version before, so runs on "
                    "either version validate on the same clips.")
    elif view.folds:
        listed = " · ".join(f"{name}: {plural(n, 'clip')}" for name, n in view.folds.items())
        summary += (f"\n\n**Folds** (from {rep.get('folds_from') or 'the manifest'}): {listed}. Folds decide the split: "
                    + (f"fold **{view.auto_fold}** validates unless you pick another in *Train*."
                       if view.auto_fold else "with a single fold there is nothing to hold out, so a share "
                       "of each class validates."))
    if rep.get("grouping") and rep["grouping"] != "by file":
        summary += (f"\n\n**Grouping** {rep['grouping']}: takes of one source recording stay on one side of "
                    "every split, so validation measures new recordings, not memory.")
    noise = rep.get("noise") or {}
    if noise:
        summary += (f"\n\n**Background noise** (`{noise.get('folder', '')}/`, not a class): "
                    f"{plural(int(noise.get('files', 0)), 'clip')}, {float(noise.get('seconds', 0)):.1f} s — "
                    "*Add background noise* and *Add short noises* in *Augment* mix these into training clips."
                    + (f" Skipped: {', '.join(s['path'] for s in noise.get('skipped', [])[:5])}."
                       if noise.get("skipped") else ""))
    if multi:
        ml = rep.get("multilabel") or {}
        pairs = ", ".join(f"{x} + {y} ({n})" for x, y, n in (ml.get("co_occurrence") or [])[:5])
        summary += (f"\n\n**Multi-label**: a clip may carry several labels ({ml.get('mean_labels', 0)} per clip on "
                    f"average, {plural(int(ml.get('without_labels', 0)), 'clip')} without labels); training uses a "
                    "sigmoid per label and tunes a threshold for each." + (f" Seen together: {pairs}." if pairs else ""))
    summary += f"\n\n{verdict}"
    df = pd.DataFrame([{"class": c["name"], "clips": int(c["clips"]), "seconds": round(float(c["seconds"]), 1)}
                       for c in classes], columns=["class", "clips", "seconds"])
    parts: list[str] = []
    if rep.get("errors"):
        parts.append("#### Blocking problems (fix these first)\n" + md_list(rep["errors"]))
    if rep.get("warnings"):
        parts.append("#### Warnings\n" + md_list(rep["warnings"]))
    if rep.get("suggestions"):
        parts.append("#### Tips\n" + md_list(rep["suggestions"]))
    skipped = rep.get("skipped") or []
    if skipped:
        shown = [f"`{s['path']}`: {s['reason']}" for s in skipped[:20]]
        more = f"\n- … and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        parts.append(f"#### Skipped files ({len(skipped)})\n" + "\n".join(f"- {s}" for s in shown) + more)
    issues = "\n\n".join(parts) or "No warnings: every file decoded and every class has enough clips."
    players: list[Any] = [gr.Audio(value=pcm16(audio), label=caption, visible=True)
                          for caption, audio in (svc.datasets.sample_clips(view, N_CLIPS) if classes else [])]
    players += [gr.Audio(value=None, visible=False)] * (N_CLIPS - len(players))
    mirror = {"name": view.name, "root": view.root, "auto_length": view.auto_length, "folds": list(view.folds),
              "auto_fold": view.auto_fold}
    return (mirror, summary, df, duration_histogram(rep.get("durations", [])), issues, *players)


def build(svc: Service, token: gr.State) -> DataTab:
    guard = Guard()
    with gr.Tab("1 · Data", id="data") as tab:
        view = gr.State(None)
        components, (use_example, upload, hub_id, hub_btn, notice, record_box, pool_box) = _layout(svc)
        outputs = [view, *components]
        with record_box:
            record = record_panel.build(svc, token, outputs, lambda v: present(svc, v), guard)
        with pool_box:
            pool = pool_panel.build(svc, token, outputs, lambda v: present(svc, v), guard)
        with gr.Accordion("Dataset versions (clips added from Detect and Listen live)", open=False,
                          elem_id="versions-box"):
            versions = versions_panel.build(svc, token, outputs, lambda v: present(svc, v), guard)

    @guard
    def use_example_fn(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return present(svc, svc.datasets.use_example(session(svc, tok, request)))

    @guard
    def upload_fn(file: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return present(svc, svc.datasets.upload(session(svc, tok, request), file))

    @guard
    def hub_fn(dataset_id: str, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return present(svc, svc.datasets.from_hub(session(svc, tok, request), dataset_id))

    @guard
    def restore_fn(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return present(svc, svc.datasets.current(session(svc, tok, request)))

    def rejected(message: str, tok: str | None, request: gr.Request) -> str:
        in_use = svc.datasets.current(session(svc, tok, request)).name
        return (f"This upload was rejected: {message} The dataset in use is still {in_use}; training uses "
                "that one until another upload succeeds.")

    chosen = [use_example.click(use_example_fn, [token], outputs, api_name="use_example", **heavy()),
              upload.upload(upload_fn, [upload, token], outputs, api_name="upload_dataset", **heavy()),
              hub_btn.click(hub_fn, [hub_id, token], outputs, api_name="hub_dataset", **heavy()),
              record.use, versions.use, pool.use]
    for event in chosen:
        guard.keep(event, outputs, notice, say=rejected, inputs=[token])
    # The drop zone is ready for the next zip whatever became of this one (the summary names the dataset).
    for after in (chosen[1].success, chosen[1].failure):
        after(lambda: gr.File(value=None), None, upload, api_visibility="private", show_progress="hidden")
    return DataTab(tab, view, outputs, restore_fn, chosen, record.restore, record.outputs,
                   versions_restore=versions.restore, versions_outputs=versions.outputs,
                   pool_restore=pool.restore, pool_outputs=pool.outputs)


def _layout(svc: Service) -> tuple[list[Any], tuple[Any, ...]]:
    """The tab's display components, and its inputs (buttons and upload boxes)."""
    gr.Markdown("Drop a **zip with one folder per class** (or a CSV manifest with `path,label` columns), "
                "or start with the built-in example. Everything stays in your private workspace.")
    with gr.Row(equal_height=True):
        with gr.Column(scale=1, min_width=220):
            use_example = gr.Button("Use the example dataset", variant="primary", elem_id="use-example")
            gr.Markdown("<small>Everyday sounds: speech, whistles, beeps, knocks and noise — 16 one-second "
                        "clips each.</small>")
        with gr.Column(scale=2):
            upload = gr.File(label="Upload your dataset (.zip)", file_types=[".zip"], file_count="single",
                             elem_id="upload-zip", height=120)
        with gr.Column(scale=2, visible=svc.hub_online):
            hub_id = gr.Textbox(label="…or a Hugging Face dataset id", placeholder="user/dataset")
            hub_btn = gr.Button("Load from the Hub")
    record_box = gr.Accordion("…or record your own sounds with the microphone", open=False, elem_id="record-box")
    pool_box = gr.Accordion("…or start from unlabeled recordings: search by example, label next", open=False,
                            elem_id="pool-box")
    notice = notice_card("data-notice")
    summary = gr.Markdown("Loading your dataset…", elem_id="data-summary")
    with gr.Row():
        classes = gr.Dataframe(label="Classes", interactive=False, scale=2, elem_id="class-table",
                               headers=["class", "clips", "seconds"])
        histogram = gr.Plot(label="Durations", scale=3, show_label=False)
    issues = gr.Markdown(elem_id="data-issues")
    gr.Markdown("#### Listen to a few clips")
    players: list[gr.Audio] = []
    with gr.Row(elem_classes=["astapp-clip-grid"]):  # one grid: 4 columns, 2 on a narrow window (app.CSS)
        for i in range(N_CLIPS):
            players.append(gr.Audio(label=f"clip {i + 1}", visible=False, interactive=False, buttons=[],
                                    min_width=180))
    return [summary, classes, histogram, issues, *players], (use_example, upload, hub_id, hub_btn, notice, record_box,
                                                             pool_box)
