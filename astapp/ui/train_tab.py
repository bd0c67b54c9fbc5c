"""Train tab: the settings form, Start/Stop, and live curves fed by a `gr.Timer` polling the job.

The form's values are saved on the server as they change and restored on load. Polling sends a
cursor and gets only the new events; the page keeps the curves it has drawn in a `gr.State`, so a
reloaded page or a second tab starts from the run's whole history and then follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.core.config import FORM_FIELDS, FORM_ROWS
from astapp.core.errors import AstappError
from astapp.service import Poll, Service, fmt_score
from astapp.ui import common, cv_controls, distill_panel, tune_panel
from astapp.ui.common import STAMP_JS, fmt_seconds, friendly, guarded, page_stamp, plural, session, stamp_box
from astapp.ui.train_curves import add_events, new_curves, plot_updates
from astapp.ui.train_form import DEPENDENT, OPEN_ROWS, SPLIT_FIELDS, mode_hint, overrides, restored, rows
from astapp.ui.train_form import dataset_info as dataset_info  # the app's dataset chain calls it here

POLL_SECONDS = 1.0
LOG_LINES = 14
ACTIVE = ("queued", "running")


@dataclass
class TrainTab:
    tab: gr.Tab
    job: gr.State
    timer: gr.Timer
    dataset_outputs: list[Any]  # what follows the chosen dataset: input length hint, split controls
    form: list[Any]  # the form's controls but those, in FORM_FIELDS order (what `restore` fills)
    restore: Any  # (token) -> the saved form: reads only state.json, so the page runs it at once on load
    restore_split: Any  # (token, dataset view) -> the split controls, once the dataset is back
    hint_fn: Any
    hint_inputs: list[Any]
    hint_outputs: list[Any]


def _progress_html(snap: dict[str, Any] | None) -> str:
    if not snap:
        return "<div class='astapp-progress idle'><div class='bar' style='width:0%'></div></div>"
    pct = max(0.0, min(1.0, float(snap.get("progress") or 0.0))) * 100
    state = snap.get("state", "")
    text = f"{pct:.0f}% · elapsed {fmt_seconds(snap.get('elapsed'))}"
    if state == "running" and snap.get("eta") is not None:
        text += f" · about {fmt_seconds(snap.get('eta'))} left"
    return (f"<div class='astapp-progress {state}'><div class='bar' style='width:{pct:.1f}%'></div></div>"
            f"<div class='astapp-progress-text'>{text}</div>")


NOTHING_TRAINING = "Nothing is training right now."
STOPPING_BADGE = "<span class='astapp-badge stopping'>Stopping</span>"
STOPPING_TEXT = "Stopping — saving the best weights so far; the run ends after the current step."


def _status_md(snap: dict[str, Any], length: int | None, split: str | None = None) -> str:
    state = snap.get("state", "?")
    badge = STOPPING_BADGE if snap.get("stopping") else \
        f"<span class='astapp-badge {state}'>{state.capitalize()}</span>"
    lines = [f"{badge} run `{snap.get('run_id')}` · {snap.get('name', '')}"]
    metrics = snap.get("metrics") or {}
    if state in ("finished", "stopped") and metrics.get("accuracy") is not None:
        best = metrics.get("best_epoch")
        lines.append(f"**Accuracy {fmt_score(metrics['accuracy'])}** · macro F1 {fmt_score(metrics.get('f1_macro'))}"
                     + (f" · best epoch {best:g}" if best is not None else "")
                     + (f" ({metrics['best_why']})" if best is not None and metrics.get("best_why") else "")
                     + (" (the best weights before the stop)" if state == "stopped" else ""))
    if state == "queued" and snap.get("position"):
        ahead = snap.get("ahead")
        lines.append("Starting: nothing is ahead of you in the queue." if ahead == 0 else
                     f"You are **#{snap['position']}** in the queue, behind {plural(ahead, 'job')}; training "
                     "starts when they finish." if ahead else
                     f"You are **#{snap['position']}** in the queue; training starts when the jobs ahead "
                     "of you finish.")
    if snap.get("slice") and not snap.get("stopping"):
        lines.append(f"Training in slices of {snap['slice_seconds']:g} s (ZeroGPU): slice **{snap['slice']}**, "
                     f"{fmt_seconds(snap.get('slice_left'))} left in it; each slice resumes where the last stopped.")
    if snap.get("stopping"):
        lines.append(STOPPING_TEXT)
    elif snap.get("message") and state in ACTIVE:
        lines.append(str(snap["message"]))
    if length:
        lines.append(f"Input length: **{length} frames** ({length / 100:.2f} s per clip)."
                     + (f" {split}" if split else ""))
    if state == "failed" and snap.get("error"):
        lines.append(f"**Error:** {snap['error']}")
    if state == "finished" and metrics.get("folds") and not metrics.get("final_model"):
        lines.append("See the folds, the map and the label issues in **Evaluate**. No final model was trained, so "
                     "there is nothing to try in **Predict**: tick *Then train the final model* to get one.")
    elif state == "finished":
        lines.append("See the mistakes in **Evaluate**, try the model in **Predict**.")
    if state == "interrupted":
        if snap.get("error"):
            lines.append(str(snap["error"]))
        lines.append("The app restarted while this run was training; press **Resume interrupted run** to "
                     "continue from its last checkpoint.")
    if state == "stopped" and snap.get("resumable"):
        lines.append("Stopped on request; **Continue stopped run** trains on from its last checkpoint.")
    return "\n\n".join(lines)


def after_stop(status: str) -> tuple[Any, ...]:
    """(progress, loss, lr, metric plots, log) after Stop: a Stop that found nothing running also clears
    the last run's bar and curves, which would otherwise sit under "Nothing is training" as if live."""
    if status != NOTHING_TRAINING:
        return (gr.update(),) * 5
    return _progress_html(None), None, None, None, ""


def resume_button(state: dict[str, Any] | None) -> Any:
    """The resume button only when the shown run can continue, named for what it does."""
    state = state or {}
    if not state.get("resumable"):
        return gr.Button(visible=False)
    label = "Resume interrupted run" if state.get("state") == "interrupted" else "Continue stopped run"
    return gr.Button(label, visible=True)


@dataclass
class _Page:
    """The Train tab's components, for the functions that wire them."""

    form: dict[str, Any]  # {field: control}, in FORM_FIELDS order
    model_info: gr.Markdown
    hint: gr.Markdown
    start: gr.Button
    stop: gr.Button
    show_cli: gr.Button
    resume: gr.Button
    cvc: cv_controls.CVControls
    cli: gr.Code
    status: gr.Markdown
    progress: gr.HTML
    plots: list[Any]  # loss, learning rate, metrics
    log_tail: gr.Textbox
    job: gr.State
    curves: gr.State
    shown: gr.State  # {state, resumable} of the run on screen: drives the resume button
    timer: gr.Timer
    stamp: gr.Number  # filled by the page (STAMP_JS) when a form change takes its values
    tab: gr.Tab

    @property
    def outputs(self) -> list[Any]:
        """What a poll fills: the job, the curves drawn, the run on screen, and the visible parts."""
        return [self.job, self.curves, self.shown, self.status, self.progress, self.plots[0], self.plots[1],
                self.plots[2], self.log_tail, self.timer]


HUB_NOTICE = ("**The Hugging Face Hub can't be reached from this machine**, so the pretrained AST can't be "
              "downloaded. A small model trained **from scratch** is preselected so the example still trains "
              "end to end (fine for clearly different sounds, weaker than fine-tuning). To fine-tune a real AST "
              "offline, type the path of a local checkpoint folder (with `config.json` and `model.safetensors`) "
              "in *Model*.")


def build(svc: Service, token: gr.State) -> TrainTab:
    d = svc.training.form_defaults()
    with gr.Tab("3 · Train", id="train") as tab:
        if not svc.hub_online:
            gr.Markdown(HUB_NOTICE, elem_classes=["astapp-notice"], elem_id="hub-notice")
        over = overrides(svc.model_choices)
        form = rows(FORM_ROWS[:1], d, over)  # model and mode, with their hints below
        model_info = gr.Markdown(elem_classes=["astapp-hint"])
        hint = gr.Markdown(mode_hint(d["model"], d["mode"], svc.hardware), elem_classes=["astapp-hint"],
                           elem_id="mode-hint")
        form |= rows(FORM_ROWS[1:OPEN_ROWS], d, over)
        with gr.Accordion("More settings", open=False):
            form |= rows(FORM_ROWS[OPEN_ROWS:], d, over)
        with gr.Row():
            start = gr.Button("Start training", variant="primary", elem_id="start-btn", scale=2)
            stop = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=1)
            show_cli = gr.Button("Show as CLI command", scale=1)
            resume = gr.Button("Resume interrupted run", scale=1, visible=False, elem_id="resume-btn")
        cvc = cv_controls.build()
        dpc = distill_panel.build()
        tune_panel.build(svc, token, form, tab)
        cli = gr.Code(label="Same run from a terminal", language="shell", visible=False, interactive=False,
                      wrap_lines=True, elem_id="train-cli")  # long paths wrap instead of running off the box
        status = gr.Markdown("No training yet. Press **Start training**.", elem_id="train-status")
        progress = gr.HTML(_progress_html(None), elem_id="train-progress")
        plots = _plots()
        log_tail = gr.Textbox(label="Log", lines=LOG_LINES, max_lines=LOG_LINES, interactive=False,
                              autoscroll=True, elem_id="train-log")
        page = _Page(form, model_info, hint, start, stop, show_cli, resume, cvc, cli, status, progress, plots,
                     log_tail, gr.State(None), gr.State(new_curves()), gr.State(None),
                     gr.Timer(POLL_SECONDS, active=False), stamp_box(), tab)
    _wire_runs(svc, token, page)
    distill_panel.wire(svc, token, dpc, page.job, page.outputs,
                       lambda sess, job_id: render(svc.training.poll(sess, job_id), new_curves(job_id)))
    restore_fn, restore_split_fn, hint_fn = _wire_form(svc, token, page, tab)
    return TrainTab(tab, page.job, page.timer, [form[name] for name in SPLIT_FIELDS],
                    [c for name, c in form.items() if name not in SPLIT_FIELDS], restore_fn, restore_split_fn,
                    hint_fn, [token, form["model"], form["mode"]], [model_info, hint])


def _plots() -> list[Any]:
    """The loss, learning-rate and accuracy/F1 curves, side by side."""
    with gr.Row():
        loss = gr.LinePlot(x="step", y="loss", title="Training loss", height=240, elem_id="loss-plot",
                           x_title="step", y_title="loss")
        # A fixed color_map: the legend's domain is otherwise taken from the (empty) first value.
        metric = gr.LinePlot(x="epoch", y="value", color="metric", title="Validation accuracy & F1", height=240,
                             y_lim=[0, 1], elem_id="metric-plot", x_axis_format="~g",  # 0.5, 1, 1.5 (no 1.0)
                             color_map={"accuracy": "#f97316", "macro F1": "#0ea5e9"})
        lr = gr.LinePlot(x="step", y="learning rate", title="Learning rate", height=240, elem_id="lr-plot")
    return [loss, lr, metric]


def render(poll: Poll, drawn: dict[str, Any], now: float | None = None) -> tuple[Any, ...]:
    """(job, curves, shown run, *poll outputs) for one poll result (`now`: the plots' clock, for tests)."""
    if poll.snapshot is None:
        return (None, new_curves(), None, poll.idle or gr.update(), _progress_html(None), None, None, None, "",
                gr.Timer(active=False))
    fresh = poll.reset or drawn.get("job") != poll.job_id
    drawn = add_events(new_curves(poll.job_id) if fresh else drawn, poll.events)
    drawn["cursor"] = poll.cursor
    drawn["epochs"] = poll.snapshot.get("epochs") or drawn.get("epochs")
    snap = poll.snapshot
    on_screen = {"job": poll.job_id, "state": snap.get("state"), "resumable": bool(snap.get("resumable"))}
    return (poll.job_id, drawn, on_screen, _status_md(snap, drawn["max_length"], drawn["split"]),
            _progress_html(snap), *plot_updates(drawn, fresh or snap.get("state") not in ACTIVE, now),
            "\n".join(snap.get("log") or []),
            gr.Timer(active=snap.get("state") in ACTIVE))


def _wire_runs(svc: Service, token: gr.State, p: _Page) -> None:
    """Start, cross-validate, poll, stop and resume: each answers with the run it now shows."""

    @guarded
    def start_fn(tok: str | None, request: gr.Request, **values: Any) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        job_id = svc.training.start(sess, values)
        return render(svc.training.poll(sess, job_id), new_curves(job_id))

    def poll_fn(job_id: str | None, tok: str | None, drawn: dict[str, Any] | None,
                request: gr.Request) -> tuple[Any, ...]:
        """Timer tick: never raises (a toast every second would be unbearable). Only the engine's errors
        (no such run) stop the Timer: others may pass, and a page that stopped would freeze mid-run."""
        drawn = drawn or new_curves()
        try:
            cursor = drawn["cursor"] if job_id and drawn.get("job") == job_id else 0
            return render(svc.training.poll(session(svc, tok, request), job_id, cursor), drawn)
        except Exception as exc:  # noqa: BLE001
            return (job_id, drawn, gr.update(), f"**Problem:** {friendly(exc)}", gr.update(), gr.update(),
                    gr.update(), gr.update(), gr.update(),
                    gr.Timer(active=False) if isinstance(exc, AstappError) else gr.update())

    def look_fn(job_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        """In view: the session's job from its start (whoever started it), else what Start trains on."""
        return poll_fn(job_id, tok, None, request)

    @guarded
    def cv_fn(tok: str | None, folds: str, final: bool, request: gr.Request, **values: Any) -> tuple[Any, ...]:
        """Cross-validate with the form's settings: a job like a training, followed here the same way."""
        sess = session(svc, tok, request)
        job_id = svc.crossval.start(sess, values, folds, bool(final))
        return render(svc.training.poll(sess, job_id), new_curves(job_id))

    @guarded
    def stop_fn(job_id: str | None, tok: str | None, request: gr.Request) -> str:
        if not svc.training.stop(session(svc, tok, request), job_id):
            return NOTHING_TRAINING
        return f"{STOPPING_BADGE} run `{job_id or ''}`\n\n{STOPPING_TEXT}" if job_id else \
            f"{STOPPING_BADGE}\n\n{STOPPING_TEXT}"

    @guarded
    def resume_fn(job_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Continue the run on screen when it can, else the newest one that can."""
        sess = session(svc, tok, request)
        job_id = svc.training.resume(sess, job_id)
        return render(svc.training.poll(sess, job_id), new_curves(job_id))

    p.start.click(start_fn, [token], p.outputs, inputs_kwargs=p.form, api_name="start_training")
    p.cvc.start.click(cv_fn, [token, p.cvc.folds, p.cvc.final], p.outputs, inputs_kwargs=p.form,
                      api_name="start_cv")
    cv_controls.wire(svc, token, p.cvc, p.form)
    # Poll, look and stop skip the queue (a plain request each): a queued event needs its page's stream,
    # and a few tabs (a Listen live stream, a /heartbeat each) hold all 6 connections a browser allows.
    # A queue-free event's State outputs fire no .change (Gradio reports changed states through the queue), so
    # the resume button follows these two explicitly.
    for queue_free in (p.timer.tick(poll_fn, [p.job, token, p.curves], p.outputs, api_name="poll_training",
                                    show_progress="hidden", queue=False),
                       p.tab.select(look_fn, [p.job, token], p.outputs, api_visibility="private",
                                    show_progress="hidden", queue=False)):
        queue_free.then(resume_button, p.shown, p.resume, api_visibility="private", show_progress="hidden",
                        queue=False)
    p.resume.click(resume_fn, [p.job, token], p.outputs, api_name="resume_training")
    p.shown.change(resume_button, p.shown, p.resume, api_visibility="private", show_progress="hidden")
    p.stop.click(stop_fn, [p.job, token], p.status, api_name="stop_training", queue=False).success(
        after_stop, p.status, [p.progress, *p.plots, p.log_tail], api_visibility="private", show_progress="hidden",
        queue=False)


def _wire_form(svc: Service, token: gr.State, p: _Page, tab: gr.Tab) -> tuple[Any, Any, Any]:
    """The form is saved as it changes and restored on load; the model and mode explain themselves; the
    CLI command shows the same run. Returns (restore, restore split, hint) for the app's load chain."""

    @guarded
    def cli_fn(tok: str | None, request: gr.Request, **values: Any) -> str:
        return svc.training.cli_command(session(svc, tok, request), values)

    def save_fn(tok: str | None, request: gr.Request, stamp: float = 0, **values: Any) -> None:
        """Every form change is saved on the server (a reload or a second tab shows the same form), with
        the page's stamp: an older event that ends later keeps no field a newer one set."""
        try:
            svc.training.save_form(session(svc, tok, request), values, stamp=page_stamp(stamp, request))
        except Exception:  # noqa: BLE001 - saving a form must never bother the user
            return

    @guarded
    def restore_fn(tok: str | None, request: gr.Request) -> list[Any]:
        """The saved form but the split controls (those wait for the dataset: `restore_split_fn`)."""
        updates = dict(zip(FORM_FIELDS, restored(svc.training.form(session(svc, tok, request)), None), strict=True))
        return [u for name, u in updates.items() if name not in SPLIT_FIELDS]

    @guarded
    def restore_split_fn(tok: str | None, view: dict[str, Any] | None, request: gr.Request) -> list[Any]:
        """The dataset's split controls (the saved fold, when the dataset has it)."""
        updates = dict(zip(FORM_FIELDS, restored(svc.training.form(session(svc, tok, request)), view), strict=True))
        return [updates[name] for name in SPLIT_FIELDS]

    def hint_fn(tok: str | None, model_v: str, mode_v: str, request: gr.Request) -> tuple[str, str]:
        """The model's line and the mode's hint, which warns when the saved augmentation turns a fast mode slow."""
        try:
            augmented = svc.augmenting.settings(session(svc, tok, request)).active
        except Exception:  # noqa: BLE001 - a hint without the augmentation note beats none
            augmented = False
        return (f"<small>Model: {svc.training.model_info(model_v)}</small>",
                mode_hint(str(model_v or ""), str(mode_v or "full"), svc.hardware, augmented))

    def model_defaults(model_v: str) -> tuple[Any, ...]:
        """A newly typed or picked model brings its own starting values (from scratch: more epochs...)."""
        dd = svc.training.form_defaults(model_v)
        return tuple(gr.update(value=dd[name]) for name in DEPENDENT)

    form = p.form
    p.show_cli.click(cli_fn, [token], p.cli, inputs_kwargs=form, api_name="training_command").success(
        lambda: gr.Code(visible=True), None, p.cli, api_visibility="private")
    form["model"].input(model_defaults, form["model"], [form[name] for name in DEPENDENT], api_visibility="private")
    # One save per change, queue-free, ordered by its stamp on the server (`SAVE_EVENTS`, issue 31).
    gr.on([c.change for c in form.values()], save_fn, [token], None, inputs_kwargs={**form, "stamp": p.stamp},
          js=STAMP_JS, **common.SAVE_EVENTS)
    # The augmentation is set in another tab: coming to this one refreshes the hint too.
    gr.on([form["model"].change, form["mode"].change, tab.select], hint_fn, [token, form["model"], form["mode"]],
          [p.model_info, p.hint], api_visibility="private", show_progress="hidden")
    return restore_fn, restore_split_fn, hint_fn
