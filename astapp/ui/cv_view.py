"""The Evaluate tab's cross-validation section: scores per fold, the embedding map to listen through,
and the label issues the user can drop or relabel, then download or retrain on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.service import Service, embedding_map, fmt_score, fold_scores, map_point, nearest_point
from astapp.ui.common import guarded, heavy, pcm16, plural, session

FOLDS = ["fold", "accuracy", "macro F1", "clips"]
ISSUES = ["#", "file", "given", "suggested", "score", "why", "your decision"]
ISSUE_WIDTHS = ["4%", "24%", "10%", "10%", "7%", "33%", "12%"]
MAP_HINT = ("Each dot is a clip (colour = its label; ringed = predicted wrong out of fold; × = label suspect). "
            "**Click a dot** to hear it.")


@dataclass
class CVSection:
    box: gr.Column
    outputs: list[Any]
    show: Any  # (run_id, tok, request) -> outputs


@dataclass
class _Section:
    """The section's components, for the functions that wire them."""

    box: gr.Column
    summary: gr.Markdown
    table: gr.Dataframe
    plot: gr.Plot
    picture: gr.Image
    clip_info: gr.Markdown
    player: gr.Audio
    buttons: dict[str, gr.Button]  # drop, accept, undo
    issues: gr.Dataframe
    manifest: gr.DownloadButton
    retrain: gr.Button
    after: gr.Markdown
    picked: gr.State  # index of the clip on screen (cv.json order)

    @property
    def outputs(self) -> list[Any]:
        return [self.box, self.summary, self.table, self.plot, self.picture, self.player, self.issues, self.picked,
                self.clip_info, self.after]


def build(svc: Service, token: gr.State, run: gr.Dropdown) -> CVSection:
    with gr.Column(visible=False, elem_id="cv-section") as box:
        gr.Markdown("### Cross-validation")
        summary = gr.Markdown(elem_id="cv-summary")
        with gr.Row():
            table = gr.Dataframe(headers=FOLDS, interactive=False, scale=2, elem_id="cv-folds-table")
            plot = gr.Plot(show_label=False, scale=3)
        gr.Markdown(f"#### Embedding map\n{MAP_HINT}")
        with gr.Row():
            picture = gr.Image(label="Embedding map", interactive=False, type="numpy", scale=3, elem_id="cv-map",
                               buttons=[])
            with gr.Column(scale=2):
                clip_info = gr.Markdown(PICK_HINT, elem_id="cv-clip-info")
                player = gr.Audio(label="Selected clip", interactive=False, elem_id="cv-player", buttons=[])
                with gr.Row():
                    buttons = {"drop": gr.Button("Drop this clip", size="sm", elem_id="cv-drop"),
                               "accept": gr.Button("Accept the suggested label", size="sm", elem_id="cv-accept"),
                               "undo": gr.Button("Undo", size="sm", elem_id="cv-undo")}
        gr.Markdown("#### Label issues (most suspect first)")
        # Wrapped, with room for the reason and the decision (a long path no longer pushes them off).
        issues = gr.Dataframe(headers=ISSUES, interactive=False, max_height=300, elem_id="cv-issues", wrap=True,
                              column_widths=ISSUE_WIDTHS)
        with gr.Row():
            manifest = gr.DownloadButton("Download the corrected manifest (CSV)", elem_id="cv-manifest")
            retrain = gr.Button("Use the corrected data and retrain", variant="primary", elem_id="cv-retrain")
        after = gr.Markdown(elem_id="cv-after")
    s = _Section(box, summary, table, plot, picture, clip_info, player, buttons, issues, manifest, retrain, after,
                 gr.State(None))
    _wire_picks(svc, token, run, s)
    _wire_fixes(svc, token, run, s)
    return CVSection(box, s.outputs, _show(svc))


PICK_HINT = "Click a dot on the map, or a row of the list below."


def why(issue: dict[str, Any]) -> str:
    """The reason a clip is suspect, in words (`astapp.evaluation.label_issues` names only its kind; its
    score is 1 - the out-of-fold probability of the given label)."""
    kind, given, suggested = str(issue.get("kind", "")), issue.get("given"), issue.get("suggested")
    sure = 1.0 - float(issue.get("score") or 0.0)
    if kind == "label":
        return (f"label: out of fold the model gives '{given}' only {sure:.0%} and hears '{suggested}' "
                "(confident learning flags it)")
    if kind == "prediction disagrees":
        return f"the model predicts '{suggested}' out of fold; it gives '{given}' only {sure:.0%}"
    if kind.startswith("near-duplicate of "):
        return f"{kind} with another label ('{suggested}')"
    return kind


def issue_rows(view: Any) -> Any:
    import pandas as pd

    return pd.DataFrame([{"#": i + 1, "file": d["path"], "given": d["given"], "suggested": d["suggested"],
                          "score": round(float(d["score"]), 3), "why": why(d), "your decision": d["action"]}
                         for i, d in enumerate(view.issues)], columns=ISSUES)


def image(view: Any, selected: int | None = None) -> Any:
    return embedding_map(view.xy, [c["label"] for c in view.clips], view.marks(), selected)


def _show(svc: Service) -> Any:
    """The section's outputs for a run: hidden unless it is a cross-validation run."""

    def show(run_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        import pandas as pd

        view = svc.crossval.view(session(svc, tok, request), run_id) if run_id else None
        if view is None:
            return (gr.Column(visible=False), "", pd.DataFrame(columns=FOLDS), None, None, None,
                    pd.DataFrame(columns=ISSUES), None, PICK_HINT, None)
        m, s = view.mean, view.std
        text = (f"**Mean accuracy {fmt_score(m.get('accuracy'))} ± {fmt_score(s.get('accuracy'))}** · macro F1 "
                f"{fmt_score(m.get('f1_macro'))} ± {fmt_score(s.get('f1_macro'))} over {plural(len(view.folds), 'fold')} "
                f"({view.grouping}). {plural(len(view.issues), 'suspect clip')}. Map: {view.method} of the "
                f"embeddings of {view.embedding_source}.")
        rows = pd.DataFrame([{"fold": f["fold"], "accuracy": round(f["accuracy"], 3),
                              "macro F1": round(f["f1_macro"], 3), "clips": f["clips"]} for f in view.folds],
                            columns=FOLDS)
        return (gr.Column(visible=True), text, rows, fold_scores(view.folds), image(view), None, issue_rows(view),
                None, PICK_HINT, None)

    return show


def _wire_picks(svc: Service, token: gr.State, run: gr.Dropdown, s: _Section) -> None:
    """A clip picked on the map or in the list (or by the API, by index or rank) plays and is ringed."""

    def pick(run_id: str, tok: str | None, index: int, request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        audio, info = svc.crossval.clip(sess, run_id, index)
        return index, pcm16(audio), info, image(svc.crossval.view(sess, run_id), index)

    @guarded
    def map_click(run_id: str, tok: str | None, evt: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
        view = svc.crossval.view(session(svc, tok, request), run_id)
        px, py = evt.index
        size = image(view).shape
        x, y = map_point(float(px), float(py), size[1], size[0])
        return pick(run_id, tok, nearest_point(view.xy, x, y), request)

    def issue_pick(run_id: str, rank: int, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        view = svc.crossval.view(session(svc, tok, request), run_id)
        if view is None or not 0 <= rank < len(view.issues):
            raise gr.Error("There is no such row in the list of suspects.")
        path = view.issues[rank]["path"]
        return pick(run_id, tok, next(i for i, c in enumerate(view.clips) if c["path"] == path), request)

    @guarded
    def issue_click(run_id: str, tok: str | None, evt: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
        return issue_pick(run_id, int(evt.index[0]), tok, request)

    @guarded
    def clip_api(run_id: str, index: float, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return pick(run_id, tok, int(index), request)

    @guarded
    def issue_api(run_id: str, rank: float, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        return issue_pick(run_id, int(rank) - 1, tok, request)

    pick_out = [s.picked, s.player, s.clip_info, s.picture]
    s.picture.select(map_click, [run, token], pick_out, api_visibility="private", **heavy())
    s.issues.select(issue_click, [run, token], pick_out, api_visibility="private", **heavy())
    dummy = gr.Number(visible=False)
    dummy.submit(clip_api, [run, dummy, token], pick_out, api_name="cv_clip")  # by index in cv.json
    dummy.blur(issue_api, [run, dummy, token], pick_out, api_name="cv_suspect")  # by rank (#) in the list


def _wire_fixes(svc: Service, token: gr.State, run: gr.Dropdown, s: _Section) -> None:
    """Drop, relabel or undo the picked clip; download the corrected manifest, or retrain on it."""

    def decide(action: str):
        @guarded
        def fn(run_id: str, index: int | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
            sess = session(svc, tok, request)
            view = svc.crossval.view(sess, run_id)
            if view is None or index is None:
                raise gr.Error("Pick a suspect clip first: click a row of the list, or a × on the map.")
            svc.crossval.correct(sess, run_id, view.clips[int(index)]["path"], action)
            return issue_rows(svc.crossval.view(sess, run_id))
        return fn

    @guarded
    def manifest_fn(run_id: str, tok: str | None, request: gr.Request) -> str:
        return str(svc.crossval.corrected_manifest(session(svc, tok, request), run_id))

    @guarded
    def retrain_fn(run_id: str, tok: str | None, request: gr.Request) -> str:
        sess = session(svc, tok, request)
        view = svc.crossval.use_corrected(sess, run_id)
        job_id = svc.training.start(sess, svc.training.form(sess))
        return (f"Training on **{view.name}** ({plural(len(view.report.get('durations') or []), 'clip')}) as job "
                f"`{job_id}`: follow it in the *Train* tab.")

    def ready_fn(run_id: str | None, tok: str | None, request: gr.Request) -> str | None:
        """The manifest as the corrections stand, ready before the click: a download button downloads the
        value it already has, so one filled only by its own click needed a second click."""
        try:
            return str(svc.crossval.corrected_manifest(session(svc, tok, request), run_id)) if run_id else None
        except Exception:  # noqa: BLE001 - not a cross-validation run (or none): nothing to download yet
            return None

    s.issues.change(ready_fn, [run, token], s.manifest, api_visibility="private", show_progress="hidden")
    for action, button in s.buttons.items():
        button.click(decide(action), [run, s.picked, token], s.issues, api_name=f"cv_{action}")
    s.manifest.click(manifest_fn, [run, token], s.manifest, api_name="cv_manifest")
    s.retrain.click(retrain_fn, [run, token], s.after, api_name="cv_retrain")
