"""Train tab: the settings form, Start/Stop, and live curves fed by a `gr.Timer` polling the job.

The form's values are saved on the server as they change and restored on load. Polling sends a
cursor and gets only the new events; the page keeps the curves it has drawn in a `gr.State`, so a
reloaded page or a second tab starts from the run's whole history and then follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.core.config import DEFAULT_MODEL, is_scratch, setting
from astapp.service import AUTO, FORM_FIELDS, Poll, Service, fmt_score
from astapp.ui import cv_controls
from astapp.ui.common import fmt_seconds, friendly, guarded, plural, session

POLL_SECONDS = 1.0
MAX_EPOCH_LABELS = 9  # single digits: as categories they also sort right ("10" would come after "1")
LOG_LINES = 14
ACTIVE = ("queued", "running")
MODES = [("full — every layer learns", "full"), ("LoRA — small adapters in every layer", "lora"),
         ("last-2 — last 2 layers + classifier", "last-2"), ("frozen — classifier only", "frozen")]


@dataclass
class TrainTab:
    tab: gr.Tab
    job: gr.State
    timer: gr.Timer
    dataset_outputs: list[Any]  # what follows the chosen dataset: input length hint, split controls
    form: list[Any]
    restore: Any
    hint_fn: Any
    hint_inputs: list[Any]
    hint_outputs: list[Any]


def mode_hint(model: str, mode: str, hw: str) -> str:
    """Plain-language speed hint for the chosen mode on the hardware we found."""
    where = "your GPU" if hw == "cuda" else "this computer's CPU (no GPU found)"
    scratch = is_scratch(model)
    if scratch and mode != "full":
        return ("**Note:** a model trained **from scratch** knows nothing yet: choose mode **full**, otherwise "
                "only the classifier on top of random features learns.")
    size = ("a small from-scratch model" if scratch else "the full-size AST (87M parameters)"
            if model.strip() == DEFAULT_MODEL else "this checkpoint")
    if mode == "full":
        speed = ("fast on a GPU" if hw == "cuda" else
                 ("fine on a CPU" if scratch else "slow on a CPU: expect minutes per epoch even for a few "
                  "hundred clips; *frozen* is several times faster"))
        return f"**Training on {where}.** *full* trains every layer of {size}: best accuracy, {speed}."
    if mode == "frozen":
        return (f"**Training on {where}.** *frozen* trains only the final classifier: several times faster "
                "than full and light on memory — a good first try on a CPU or with few clips.")
    if mode == "lora":
        return (f"**Training on {where}.** *LoRA* adds small low-rank adapters to the attention of every layer "
                "and trains them with the classifier: 0.35% of the base AST's weights learn, so it overfits "
                "less on small datasets and needs 285× less optimizer memory; each step still runs the whole "
                "network (measured on 2 CPU cores: 1.7× faster per step than *full* for the base AST).")
    return (f"**Training on {where}.** *{mode}* trains the last layers and the classifier: "
            "a middle ground between *frozen* (fastest) and *full* (most accurate).")


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


def resume_button(state: dict[str, Any] | None) -> Any:
    """The resume button only when the shown run can continue, named for what it does."""
    state = state or {}
    if not state.get("resumable"):
        return gr.Button(visible=False)
    label = "Resume interrupted run" if state.get("state") == "interrupted" else "Continue stopped run"
    return gr.Button(label, visible=True)


def new_curves(job_id: str | None = None) -> dict[str, Any]:
    """What the page has drawn of one job: its cursor and the points of every curve."""
    return {"job": job_id, "cursor": 0, "loss": [], "lr": [], "metric": [], "max_length": None, "split": None}


def add_events(curves: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Add the points of new events: loss and learning rate per step, accuracy/F1 per epoch."""
    for e in events:
        kind = e.get("type")
        if isinstance(e.get("max_length"), int):
            curves["max_length"] = e["max_length"]
        if kind == "stage" and e.get("stage") == "split":
            curves["split"] = e.get("message")
        if kind == "log" and e.get("step") is not None:
            if isinstance(e.get("loss"), (int, float)):
                curves["loss"].append({"step": int(e["step"]), "loss": float(e["loss"])})
            if isinstance(e.get("lr"), (int, float)):
                curves["lr"].append({"step": int(e["step"]), "learning rate": float(e["lr"])})
        elif kind == "eval" and isinstance(e.get("epoch"), (int, float)):
            epoch = f"{float(e['epoch']):g}"  # epochs as labels: the axis shows 1, 2, 3, never 1.1
            for key, name in (("accuracy", "accuracy"), ("f1_macro", "macro F1")):
                if isinstance(e.get(key), (int, float)):
                    curves["metric"].append({"epoch": epoch, "value": float(e[key]), "metric": name})
    return curves


def frames(curves: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The curves as DataFrames for the line plots.

    An empty series is None, not an empty frame: a Gradio 6.31 line plot that first receives an empty
    frame keeps an empty color domain and later draws its lines with no stroke (invisible).
    """
    import pandas as pd

    loss, lr, metrics = curves["loss"], curves["lr"], curves["metric"]
    # Explicit dtypes so the step axes are numeric (object columns would be drawn as categories). Epochs
    # are categories while there are few (a numeric axis would show 1.1, 1.2 between two points), numbers
    # from ten on (the axis then steps by whole numbers by itself, and labels for each would crowd).
    few = len({m["epoch"] for m in metrics}) <= MAX_EPOCH_LABELS
    return (pd.DataFrame(loss).astype({"step": "int64", "loss": "float64"}) if loss else None,
            pd.DataFrame(lr).astype({"step": "int64", "learning rate": "float64"}) if lr else None,
            pd.DataFrame(metrics).astype({"epoch": "str" if few else "float64", "value": "float64", "metric": "str"})
            if metrics else None)


def split_controls(view: dict[str, Any] | None, fold: str | None = None) -> tuple[dict, dict, dict]:
    """Updates (as keyword dicts) of the input length, the validation share and the validation fold for a
    dataset: what 'auto' length means, and who decides the split (the share slider without folds; a fold
    picker, with the slider disabled, when the manifest has folds)."""
    view = view or {}
    auto = view.get("auto_length")
    length = {"info": f"auto = {auto} frames ({auto / 100:.2f} s) for this dataset, fits 95% of clips"
              if isinstance(auto, int) else "auto = fits 95% of your clips"}
    folds, auto_fold = list(view.get("folds") or []), view.get("auto_fold")
    if len(folds) < 2:
        return length, {"interactive": True, "info": None}, {"visible": False, "value": AUTO}
    choices = [(f"auto (fold {auto_fold})", AUTO), *((f"fold {f}", f) for f in folds)]
    value = fold if fold in folds else AUTO
    note = "Not used: the manifest's folds decide the split (pick the fold that validates beside)"
    return length, {"interactive": False, "info": note}, {"choices": choices, "value": value, "visible": True}


def dataset_info(view: dict[str, Any] | None) -> tuple[Any, Any, Any]:
    """The split controls for a newly chosen dataset (its folds start on auto)."""
    return tuple(gr.update(**kw) for kw in split_controls(view))


def _number(path: str, value: Any, **kw: Any) -> gr.Number:
    s = setting(path)
    lo, hi, _ = s.form or (None, None, None)
    return gr.Number(value, label=s.label, minimum=lo, maximum=hi, **kw)


def build(svc: Service, token: gr.State) -> TrainTab:
    hw = svc.hardware
    d = svc.training.form_defaults()
    with gr.Tab("3 · Train", id="train") as tab:
        if not svc.hub_online:
            gr.Markdown(
                "**The Hugging Face Hub can't be reached from this machine**, so the pretrained AST "
                "can't be downloaded. A small model trained **from scratch** is preselected so the "
                "example still trains end to end (fine for clearly different sounds, weaker than "
                "fine-tuning). To fine-tune a real AST offline, type the path of a local checkpoint "
                "folder (with `config.json` and `model.safetensors`) in *Model*.",
                elem_classes=["astapp-notice"], elem_id="hub-notice")
        with gr.Row():
            model = gr.Dropdown(label="Model", choices=svc.model_choices, value=d["model"],
                                allow_custom_value=True, scale=3, elem_id="model-choice",
                                info="A Hub id, a local checkpoint folder, or scratch:tiny|small|base")
            mode = gr.Radio(MODES, value=d["mode"], label="What to train", scale=3, elem_id="mode-choice")
        model_info = gr.Markdown(elem_classes=["astapp-hint"])
        hint = gr.Markdown(mode_hint(d["model"], d["mode"], hw), elem_classes=["astapp-hint"], elem_id="mode-hint")
        with gr.Row():
            epochs = _number("epochs", d["epochs"], precision=None, min_width=100, elem_id="epochs")
            lr = _number("lr", d["lr"], min_width=120, elem_id="lr")
            batch = _number("batch_size", d["batch_size"], precision=0, min_width=100, elem_id="batch-size")
            max_length = gr.Textbox(str(d["max_length"]), label=setting("max_length").label, min_width=140,
                                    info="auto = fits 95% of your clips", elem_id="max-length")
            lo, hi, step = setting("val_split").form or (0.05, 0.5, 0.05)
            val_split = gr.Slider(lo, hi, value=d["val_split"], step=step, label=setting("val_split").label,
                                  min_width=160, elem_id="val-split")
            val_fold = gr.Dropdown([("auto", AUTO)], value=AUTO, label=setting("val_fold").label, visible=False,
                                   min_width=160, elem_id="val-fold", allow_custom_value=True,
                                   info="the fold held out to validate")
        with gr.Accordion("More settings", open=False):
            with gr.Row():
                seed = gr.Number(d["seed"], label=setting("seed").label, precision=0, min_width=100)
                early = gr.Number(d["early_stopping"], label=setting("early_stopping").label, precision=0)
                weighted = gr.Checkbox(d["class_weighted"], label=setting("class_weighted").label)
            with gr.Row():  # used by mode LoRA only
                lora_rank = _number("lora_rank", d["lora_rank"], precision=0, min_width=100,
                                    info="mode LoRA: adapter rank (4 to 16 is typical)")
                lora_alpha = _number("lora_alpha", d["lora_alpha"], min_width=100, info="usually twice the rank")
                lora_dropout = _number("lora_dropout", d["lora_dropout"], min_width=100)
                lora_targets = gr.Textbox(d["lora_targets"], label=setting("lora_targets").label, min_width=200,
                                          info="attention.q_proj/k_proj/v_proj/o_proj, mlp.fc1/fc2")
        with gr.Row():
            start = gr.Button("Start training", variant="primary", elem_id="start-btn", scale=2)
            stop = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=1)
            show_cli = gr.Button("Show as CLI command", scale=1)
            resume = gr.Button("Resume interrupted run", scale=1, visible=False, elem_id="resume-btn")
        cvc = cv_controls.build()
        cli = gr.Code(label="Same run from a terminal", language="shell", visible=False, interactive=False)
        status = gr.Markdown("No training yet. Press **Start training** — the example dataset is ready.",
                             elem_id="train-status")
        progress = gr.HTML(_progress_html(None), elem_id="train-progress")
        with gr.Row():
            loss_plot = gr.LinePlot(x="step", y="loss", title="Training loss", height=240, elem_id="loss-plot",
                                    x_title="step", y_title="loss")
            # A fixed color_map: the legend's domain is otherwise taken from the (empty) first value.
            metric_plot = gr.LinePlot(x="epoch", y="value", color="metric", title="Validation accuracy & F1",
                                      height=240, y_lim=[0, 1], elem_id="metric-plot",
                                      color_map={"accuracy": "#f97316", "macro F1": "#0ea5e9"})
            lr_plot = gr.LinePlot(x="step", y="learning rate", title="Learning rate", height=240,
                                  elem_id="lr-plot")
        log_tail = gr.Textbox(label="Log", lines=LOG_LINES, max_lines=LOG_LINES, interactive=False,
                              autoscroll=True, elem_id="train-log")
        job = gr.State(None)
        curves = gr.State(new_curves())
        shown = gr.State(None)  # {state, resumable} of the run on screen: drives the resume button
        timer = gr.Timer(POLL_SECONDS, active=False)

    form = [model, mode, epochs, lr, batch, max_length, val_split, val_fold, seed, early, weighted, lora_rank,
            lora_alpha, lora_dropout, lora_targets]
    poll_outputs = [status, progress, loss_plot, lr_plot, metric_plot, log_tail, timer]

    def values(*vals: Any) -> dict[str, Any]:
        return dict(zip(FORM_FIELDS, vals, strict=True))

    def render(poll: Poll, drawn: dict[str, Any]) -> tuple[Any, ...]:
        """(job, curves, shown run, *poll outputs) for one poll result."""
        if poll.snapshot is None:
            return (None, new_curves(), None, gr.update(), _progress_html(None), None, None, None, "",
                    gr.Timer(active=False))
        if poll.reset or drawn.get("job") != poll.job_id:
            drawn = new_curves(poll.job_id)
        drawn = add_events(drawn, poll.events)
        drawn["cursor"] = poll.cursor
        snap = poll.snapshot
        on_screen = {"job": poll.job_id, "state": snap.get("state"), "resumable": bool(snap.get("resumable"))}
        return (poll.job_id, drawn, on_screen, _status_md(snap, drawn["max_length"], drawn["split"]), _progress_html(snap),
                *frames(drawn), "\n".join(snap.get("log") or []), gr.Timer(active=snap.get("state") in ACTIVE))

    @guarded
    def start_fn(tok: str | None, model: str, mode: str, epochs: float, lr: float, batch_size: float,
                 max_length: str, val_split: float, val_fold: str, seed: float, early_stopping: float,
                 class_weighted: bool, lora_rank: float, lora_alpha: float, lora_dropout: float, lora_targets: str,
                 request: gr.Request) -> tuple[Any, ...]:
        sess = session(svc, tok, request)
        job_id = svc.training.start(sess, values(model, mode, epochs, lr, batch_size, max_length, val_split,
                                                 val_fold, seed, early_stopping, class_weighted, lora_rank,
                                                 lora_alpha, lora_dropout, lora_targets))
        return render(svc.training.poll(sess, job_id), new_curves(job_id))

    def poll_fn(job_id: str | None, tok: str | None, drawn: dict[str, Any] | None,
                request: gr.Request) -> tuple[Any, ...]:
        """Timer tick: never raises (a toast every second would be unbearable)."""
        drawn = drawn or new_curves()
        try:
            cursor = drawn["cursor"] if job_id and drawn.get("job") == job_id else 0
            return render(svc.training.poll(session(svc, tok, request), job_id, cursor), drawn)
        except Exception as exc:  # noqa: BLE001
            return (job_id, drawn, gr.update(), f"**Problem:** {friendly(exc)}", gr.update(), gr.update(),
                    gr.update(), gr.update(), gr.update(), gr.Timer(active=False))

    @guarded
    def cv_fn(tok: str | None, folds: str, final: bool, request: gr.Request, *vals: Any) -> tuple[Any, ...]:
        """Cross-validate with the form's settings: a job like a training, followed here the same way."""
        sess = session(svc, tok, request)
        job_id = svc.crossval.start(sess, values(*vals), folds, bool(final))
        return render(svc.training.poll(sess, job_id), new_curves(job_id))

    @guarded
    def stop_fn(job_id: str | None, tok: str | None, request: gr.Request) -> str:
        if not svc.training.stop(session(svc, tok, request), job_id):
            return "Nothing is training right now."
        return f"{STOPPING_BADGE} run `{job_id or ''}`\n\n{STOPPING_TEXT}" if job_id else \
            f"{STOPPING_BADGE}\n\n{STOPPING_TEXT}"

    @guarded
    def resume_fn(job_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Continue the run on screen when it can, else the newest one that can."""
        sess = session(svc, tok, request)
        job_id = svc.training.resume(sess, job_id)
        return render(svc.training.poll(sess, job_id), new_curves(job_id))

    @guarded
    def cli_fn(tok: str | None, model: str, mode: str, epochs: float, lr: float, batch_size: float,
               max_length: str, val_split: float, val_fold: str, seed: float, early_stopping: float,
               class_weighted: bool, lora_rank: float, lora_alpha: float, lora_dropout: float, lora_targets: str,
               request: gr.Request) -> str:
        return svc.training.cli_command(session(svc, tok, request),
                                        values(model, mode, epochs, lr, batch_size, max_length, val_split, val_fold,
                                               seed, early_stopping, class_weighted, lora_rank, lora_alpha,
                                               lora_dropout, lora_targets))

    def save_fn(tok: str | None, request: gr.Request, *vals: Any) -> None:
        """Every form change is saved on the server (a reload or a second tab shows the same form)."""
        try:
            svc.training.save_form(session(svc, tok, request), values(*vals))
        except Exception:  # noqa: BLE001 - saving a form must never bother the user
            return

    @guarded
    def restore_fn(tok: str | None, view: dict[str, Any] | None, request: gr.Request) -> list[Any]:
        """The saved form, and the dataset's split controls (the saved fold, when the dataset has it)."""
        saved = svc.training.form(session(svc, tok, request))
        saved["max_length"] = str(saved["max_length"])
        controls = dict(zip(("max_length", "val_split", "val_fold"),
                            split_controls(view, str(saved.get("val_fold") or AUTO)), strict=True))
        return [gr.update(**{"value": saved[name], **controls.get(name, {})}) for name in FORM_FIELDS]

    def form_hint(model_v: str, mode_v: str) -> tuple[str, str]:
        return f"<small>Model: {svc.training.model_info(model_v)}</small>", mode_hint(str(model_v or ""),
                                                                          str(mode_v or "full"), hw)

    def model_defaults(model_v: str) -> tuple[Any, ...]:
        dd = svc.training.form_defaults(model_v)
        return gr.update(value=dd["epochs"]), gr.update(value=dd["lr"]), gr.update(value=dd["batch_size"])

    outputs = [job, curves, shown, *poll_outputs]
    start.click(start_fn, [token, *form], outputs, api_name="start_training")
    cvc.start.click(cv_fn, [token, cvc.folds, cvc.final, *form], outputs, api_name="start_cv")
    cv_controls.wire(svc, token, cvc, form)
    timer.tick(poll_fn, [job, token, curves], outputs, api_name="poll_training", show_progress="hidden")
    resume.click(resume_fn, [job, token], outputs, api_name="resume_training")
    shown.change(resume_button, shown, resume, api_visibility="private", show_progress="hidden")
    stop.click(stop_fn, [job, token], status, api_name="stop_training")
    show_cli.click(cli_fn, [token, *form], cli, api_name="training_command").success(
        lambda: gr.Code(visible=True), None, cli, api_visibility="private")
    model.input(model_defaults, model, [epochs, lr, batch], api_visibility="private")
    gr.on([c.change for c in form], save_fn, [token, *form], None, api_visibility="private",
          show_progress="hidden", trigger_mode="always_last")
    gr.on([model.change, mode.change], form_hint, [model, mode], [model_info, hint], api_visibility="private",
          show_progress="hidden")
    return TrainTab(tab, job, timer, [max_length, val_split, val_fold], form, restore_fn, form_hint, [model, mode],
                    [model_info, hint])
