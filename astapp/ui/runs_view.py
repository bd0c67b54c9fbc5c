"""The Evaluate tab's "Runs" accordion: every run side by side, sortable; pick two or more to see only the
settings that differ and their validation curves overlaid; rename, delete (confirmed), the default model.

The sort column and the runs picked to compare are kept in the session's workspace (`svc.runs_table.remember`),
so a reload shows the same comparison.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from astapp.service import Service, fmt_score, series_plot, split_numbers
from astapp.ui.common import guarded, session

COLUMNS = ["id", "name", "state", "dataset", "model", "mode", "epochs", "lr", "accuracy", "macro F1", "mAP",
           "unknown AUROC", "time (s)", "MB", "split", "default"]
SORTS = [("newest", "created"), ("name", "name"), ("accuracy", "accuracy"), ("macro F1", "f1_macro"),
         ("mAP", "map"), ("training time", "train_seconds"), ("size", "size_mb"), ("state", "state")]
METRICS = [("macro F1", "f1_macro"), ("accuracy", "accuracy"), ("mAP", "map"), ("loss", "loss")]


def _score(value: float | None, std: float | None = None) -> str:
    return fmt_score(value) + (f" ± {std:.3f}" if std is not None else "")


def _row(r: Any, split: int, default: str | None) -> list[Any]:
    s = r.settings
    return [r.id, r.name, r.state, r.dataset + (f" @{r.dataset_version}" if r.dataset_version else ""),
            r.model.rsplit("/", 1)[-1], r.mode if r.task == "train" else f"{r.mode} ({r.task})", s.get("epochs"),
            s.get("lr"), _score(r.accuracy, r.accuracy_std), _score(r.f1_macro, r.f1_std), fmt_score(r.map),
            fmt_score(r.unknown_auroc) if r.unknown_auroc is not None else (r.unknown_method or "–"),
            round(r.train_seconds) if r.train_seconds is not None else None, r.size_mb, split,
            "✓" if r.id == default else ""]


def build(svc: Service, token: gr.State, tab: gr.Tab) -> None:
    """The accordion under the Evaluate tab (`tab`: its table loads when the tab is opened)."""
    with gr.Accordion("Runs: compare, rename, delete, default model", open=False, elem_id="runs-view"):
        with gr.Row():
            sort = gr.Dropdown(SORTS, value="created", label="Sort by", scale=1)
            refresh = gr.Button("Refresh", size="md", scale=0, min_width=120)
        table = gr.Dataframe(headers=COLUMNS, interactive=False, max_height=320, elem_id="runs-table")
        chosen = gr.CheckboxGroup(label="Compare these runs (two or more)", choices=[], elem_id="runs-chosen")
        with gr.Row():
            metric = gr.Dropdown(METRICS, value="f1_macro", label="Curve", scale=1)
        note = gr.Markdown(elem_id="runs-note")
        with gr.Row():
            diff = gr.Dataframe(label="Only the settings that differ", interactive=False, scale=2,
                                elem_id="runs-diff")
            plot = gr.Plot(show_label=False, scale=3)
        with gr.Row():
            target = gr.Dropdown(label="Run", choices=[], scale=2, elem_id="runs-target", allow_custom_value=True)
            name = gr.Textbox(label="New name", scale=2)
            rename = gr.Button("Rename", size="md", scale=1)
            default = gr.Button("Default model for Predict", size="md", scale=1)
        with gr.Row():
            sure = gr.Checkbox(label="yes, delete it (cannot be undone)", value=False, scale=2)
            delete = gr.Button("Delete run", variant="stop", size="md", scale=1)
    _wire(svc, token, locals())


def _wire(svc: Service, token: gr.State, c: dict[str, Any]) -> None:
    table_out = [c["sort"], c["table"], c["chosen"], c["target"]]
    compare_out = [c["note"], c["diff"], c["plot"]]

    def show_table(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        view = svc.runs_table.view(sess)
        rows = svc.runs_table.table(sess, view["sort"])
        splits, dflt = split_numbers(rows), svc.runs_table.default_run(sess)
        choices = [(f"{r.name} · {r.id}", r.id) for r in rows]
        ids = {r.id for r in rows}
        return (view["sort"], [_row(r, splits[r.id], dflt) for r in rows],
                gr.CheckboxGroup(choices=choices, value=[i for i in view["compare"] if i in ids]),
                gr.Dropdown(choices=choices, value=None))

    def compare(chosen: list[str], metric: str, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        import pandas as pd

        sess = session(svc, tok, request)
        svc.runs_table.remember(sess, chosen=list(chosen or []))
        cmp = svc.runs_table.compare(sess, list(chosen or []))
        names = {r.id: r.name for r in cmp.rows}
        header = ["setting", *[f"{names[i]} ({i})" for i in names]]
        rows = [[k, *[str(v.get(i)) for i in names]] for k, v in cmp.differing.items()]
        fig = series_plot(svc.runs_table.curves(sess, list(names), metric), "epoch", metric,
                          "Validation curves") if cmp.rows else None
        return cmp.note() or f"{len(cmp.differing)} setting(s) differ.", pd.DataFrame(rows, columns=header), fig

    def set_sort(sort: str, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        svc.runs_table.remember(session(svc, tok, request), sort=sort)
        return show_table(tok, request)

    def act(action: str) -> Any:
        def fn(run_id: str | None, new_name: str, sure: bool, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
            if not run_id:
                raise gr.Error("Pick a run in the Run list first.")
            sess = session(svc, tok, request)
            if action == "rename":
                svc.runs_table.rename(sess, run_id, new_name)
            elif action == "default":
                svc.runs_table.set_default(sess, run_id)
            else:
                svc.runs_table.delete(sess, run_id, confirmed=bool(sure))
            return show_table(tok, request)
        return guarded(fn)

    c["refresh"].click(guarded(show_table), [token], table_out, api_name="runs_table")
    c["sort"].input(guarded(set_sort), [c["sort"], token], table_out, api_name="runs_sort")
    c["tab"].select(guarded(show_table), [token], table_out, api_visibility="private")
    c["metric"].input(guarded(compare), [c["chosen"], c["metric"], token], compare_out, api_visibility="private")
    c["chosen"].change(guarded(compare), [c["chosen"], c["metric"], token], compare_out, api_name="runs_compare")
    inputs = [c["target"], c["name"], c["sure"], token]
    c["rename"].click(act("rename"), inputs, table_out, api_name="runs_rename")
    c["default"].click(act("default"), inputs, table_out, api_name="runs_default")
    c["delete"].click(act("delete"), inputs, table_out, api_name="runs_delete").then(
        lambda: gr.Checkbox(value=False), None, c["sure"], api_visibility="private")
