"""Evaluate tab: confusion matrix, per-class precision/recall/F1 and the mistakes, from metrics.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from astapp.ui.common import UiContext, guarded, heavy, picker_update, run_choices, session

N_PLAYERS = 6


@dataclass
class EvaluateTab:
    tab: gr.Tab
    run: gr.Dropdown


def _per_class_rows(per_class: Any, labels: list[str]) -> list[dict[str, Any]]:
    """metrics.json's per_class as table rows; accepts {label: {...}} or [{label|class: ...}]."""
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(per_class, dict):
        items = [(str(k), v) for k, v in per_class.items() if isinstance(v, dict)]
    elif isinstance(per_class, list):
        for i, v in enumerate(per_class):
            if isinstance(v, dict):
                name = v.get("label", v.get("class", labels[i] if i < len(labels) else str(i)))
                items.append((str(name), v))
    rows = []
    for name, v in items:
        def num(*keys: str, v: dict[str, Any] = v) -> float | None:
            for k in keys:
                if isinstance(v.get(k), (int, float)):
                    return round(float(v[k]), 3)
            return None

        rows.append({"class": name, "precision": num("precision"), "recall": num("recall"),
                     "f1": num("f1", "f1-score", "f1_score"), "support": num("support", "n", "count")})
    return rows


def _clip_path(data_root: str, rel: str) -> Path | None:
    """The validation clip on disk, only if it is inside the run's dataset folder."""
    from astapp.errors import AccessError
    from astapp.paths import inside
    from astapp.ui.data_tab import clip_root

    if not data_root or not rel:
        return None
    for base in (Path(data_root), clip_root(data_root)):
        try:
            p = inside(base, rel)
        except AccessError:
            continue
        if p.is_file():
            return p
    return None


def build(ctx: UiContext, token: gr.State) -> EvaluateTab:
    with gr.Tab("4 · Evaluate", id="evaluate") as tab:
        with gr.Row():
            run = gr.Dropdown(label="Run", choices=[], scale=4, elem_id="eval-run", allow_custom_value=True)
            refresh = gr.Button("Refresh runs", scale=1, size="md", min_width=140)
        summary = gr.Markdown("Pick a finished run to see how it does on the validation clips.",
                              elem_id="eval-summary")
        with gr.Row():
            matrix = gr.Plot(label="Confusion matrix", show_label=False, scale=3)
            per_class = gr.Dataframe(label="Per class", interactive=False, scale=2,
                                     headers=["class", "precision", "recall", "f1", "support"])
        gr.Markdown("#### Mistakes on the validation clips")
        mistakes = gr.Dataframe(label="Misclassified", interactive=False, max_height=260,
                                headers=["file", "true", "predicted", "confidence"])
        players: list[gr.Audio] = []
        with gr.Row():
            for i in range(N_PLAYERS):
                players.append(gr.Audio(label=f"mistake {i + 1}", visible=False, interactive=False,
                                        buttons=[], min_width=180))

    @guarded
    def refresh_fn(current: str | None, tok: str | None, request: gr.Request) -> Any:
        owner = session(ctx, tok, request).owner
        return picker_update(run_choices(ctx, owner, need_metrics=True), current)

    @guarded
    def evaluate_fn(run_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        import pandas as pd

        from astapp.runs import get_run, read_json
        from astapp.ui.data_tab import play_value
        from astapp.ui.plots import confusion_matrix

        if not run_id:
            empty = pd.DataFrame(columns=["class", "precision", "recall", "f1", "support"])
            return ("No finished run yet: train one in the *Train* tab, then pick it here.", None, empty,
                    pd.DataFrame(columns=["file", "true", "predicted", "confidence"]),
                    *[gr.Audio(value=None, visible=False)] * N_PLAYERS)
        info = get_run(ctx.data_dir, session(ctx, tok, request).owner, run_id)
        metrics = read_json(info.path / "metrics.json")
        if not metrics:
            raise gr.Error(f"Run {run_id} has no metrics yet ({info.state}); wait until it has evaluated once.")
        cfg = read_json(info.path / "config.json")
        labels = [str(x) for x in metrics.get("labels") or []]
        cm = metrics.get("confusion_matrix") or []
        if not labels and cm:
            labels = [str(i) for i in range(len(cm))]
        acc, f1 = metrics.get("accuracy"), metrics.get("f1_macro")
        preds = [p for p in metrics.get("predictions") or [] if isinstance(p, dict)]
        wrong = [p for p in preds if p.get("true") != p.get("pred")]
        head = f"### {info.name} · {info.state}\n"
        if isinstance(acc, (int, float)):
            head += f"**Accuracy {acc:.1%}**"
        if isinstance(f1, (int, float)):
            head += f" · macro F1 {f1:.3f}"
        head += f" · {len(preds)} validation clips, {len(wrong)} mistakes"
        fig = confusion_matrix(cm, labels) if cm else None
        table = pd.DataFrame(_per_class_rows(metrics.get("per_class"), labels),
                             columns=["class", "precision", "recall", "f1", "support"])
        wrong.sort(key=lambda p: -float(p.get("prob") or 0))
        mist = pd.DataFrame([{"file": p.get("path", ""), "true": p.get("true", ""),
                              "predicted": p.get("pred", ""),
                              "confidence": round(float(p.get("prob") or 0), 3)} for p in wrong],
                            columns=["file", "true", "predicted", "confidence"])
        outs: list[Any] = []
        for p in wrong:
            if len(outs) == N_PLAYERS:
                break
            path = _clip_path(str(cfg.get("data", "")), str(p.get("path", "")))
            value = play_value(path) if path else None
            if value is not None:
                outs.append(gr.Audio(value=value, visible=True,
                                     label=f"{p.get('true')} → heard as {p.get('pred')}"))
        outs += [gr.Audio(value=None, visible=False)] * (N_PLAYERS - len(outs))
        return (head, fig, table, mist, *outs)

    refresh.click(refresh_fn, [run, token], run, api_name="list_runs")
    tab.select(refresh_fn, [run, token], run, api_visibility="private")
    outputs = [summary, matrix, per_class, mistakes, *players]
    run.change(evaluate_fn, [run, token], outputs, api_name="evaluate_run", **heavy())
    return EvaluateTab(tab, run)
