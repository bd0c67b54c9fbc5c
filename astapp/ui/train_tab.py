"""Train tab: the settings form, Start/Stop, and live curves fed by a `gr.Timer` polling the job.

Polling is stateless (every tick reads the job's events from the JobManager), so a reloaded page or a
second tab simply starts polling the same job and sees the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.config import AugmentConfig, TrainConfig
from astapp.ui.common import UiContext, fmt_seconds, guarded, hardware, session
from astapp.ui.data_tab import current

POLL_SECONDS = 1.0
LOG_LINES = 14
ACTIVE = ("queued", "running")
MODES = [("full — every layer learns", "full"), ("last-2 — last 2 layers + classifier", "last-2"),
         ("frozen — classifier only", "frozen")]


@dataclass
class TrainTab:
    tab: gr.Tab
    job: gr.State
    timer: gr.Timer
    poll_outputs: list[Any]
    max_length: gr.Textbox
    hint_fn: Any
    hint_inputs: list[Any]
    hint_outputs: list[Any]


def is_scratch(model: str) -> bool:
    return str(model).strip().lower().startswith("scratch:")


def defaults_for(model: str) -> dict[str, Any]:
    """Sensible starting settings: fine-tuning wants a small lr; a model from scratch a larger one."""
    if is_scratch(model):
        return {"epochs": 20, "lr": 1e-3, "mode": "full", "batch_size": 16}
    return {"epochs": 5, "lr": 5e-5, "mode": "full", "batch_size": 8}


def mode_hint(model: str, mode: str, hw: str) -> str:
    """Plain-language speed hint for the chosen mode on the hardware we found."""
    where = "your GPU" if hw == "cuda" else "this computer's CPU (no GPU found)"
    scratch = is_scratch(model)
    if scratch and mode != "full":
        return ("**Note:** a model trained **from scratch** knows nothing yet: choose mode **full**, otherwise "
                "only the classifier on top of random features learns.")
    from astapp.config import DEFAULT_MODEL

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


def _status_md(snap: dict[str, Any], events: list[dict[str, Any]]) -> str:
    state = snap.get("state", "?")
    lines = [f"<span class='astapp-badge {state}'>{state.capitalize()}</span> run `{snap.get('run_id')}` · "
             f"{snap.get('name', '')}"]
    if state == "queued" and snap.get("position"):
        lines.append(f"You are **#{snap['position']}** in the queue; training starts when the jobs ahead "
                     "of you finish.")
    if snap.get("message") and state in ACTIVE:
        lines.append(str(snap["message"]))
    length = next((e.get("max_length") for e in reversed(events) if isinstance(e.get("max_length"), int)), None)
    if length:
        lines.append(f"Input length: **{length} frames** ({length / 100:.2f} s per clip).")
    if state == "failed" and snap.get("error"):
        lines.append(f"**Error:** {snap['error']}")
    if state == "finished":
        lines.append("See the mistakes in **Evaluate**, try the model in **Predict**.")
    if state == "interrupted":
        if snap.get("error"):
            lines.append(str(snap["error"]))
        lines.append("The app restarted while this run was training; press **Resume interrupted run** to "
                     "continue from its last checkpoint.")
    return "\n\n".join(lines)


def curves(events: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
    """Loss and learning rate per step, and validation accuracy/F1 per epoch, as DataFrames.

    An empty series is None, not an empty frame: a Gradio 6.31 line plot that first receives an empty
    frame keeps an empty color domain and later draws its lines with no stroke (invisible).
    """
    import pandas as pd

    loss, lr, metrics = [], [], []
    for e in events:
        kind = e.get("type")
        if kind == "log":
            step = e.get("step")
            if isinstance(e.get("loss"), (int, float)) and step is not None:
                loss.append({"step": int(step), "loss": float(e["loss"])})
            if isinstance(e.get("lr"), (int, float)) and step is not None:
                lr.append({"step": int(step), "learning rate": float(e["lr"])})
        elif kind == "eval" and isinstance(e.get("epoch"), (int, float)):
            for key, name in (("accuracy", "accuracy"), ("f1_macro", "macro F1")):
                if isinstance(e.get(key), (int, float)):
                    metrics.append({"epoch": float(e["epoch"]), "value": float(e[key]), "metric": name})
    # Explicit dtypes so the axes are numeric (object columns would be drawn as categories).
    return (pd.DataFrame(loss).astype({"step": "int64", "loss": "float64"}) if loss else None,
            pd.DataFrame(lr).astype({"step": "int64", "learning rate": "float64"}) if lr else None,
            pd.DataFrame(metrics).astype({"epoch": "float64", "value": "float64", "metric": "str"})
            if metrics else None)


def attach_job(manager: Any, owner: str) -> str | None:
    """The job a (re)loaded page should show: the owner's active job, else their newest run that a
    restart interrupted (so it is seen, with its checkpoint, and can be resumed)."""
    job_id = manager.active_job(owner)
    if job_id is None:
        job_id = next((r.id for r in manager.list_runs(owner)
                       if r.state == "interrupted" and not r.readonly), None)
    return job_id


def on_dataset(data: dict[str, Any] | None) -> Any:
    """Show what 'auto' means for the chosen dataset next to the input-length field."""
    auto = (data or {}).get("auto_length")
    if isinstance(auto, int):
        return gr.Textbox(info=f"auto = {auto} frames ({auto / 100:.2f} s) for this dataset, fits 95% of clips")
    return gr.Textbox(info="auto = fits 95% of your clips")


def build(ctx: UiContext, token: gr.State, dataset: gr.State, augment: gr.State) -> TrainTab:
    from astapp.jobs import JobManager

    manager: JobManager = ctx.manager
    hw = hardware()
    d = defaults_for(ctx.default_model)
    with gr.Tab("3 · Train", id="train") as tab:
        if not ctx.hub_online:
            gr.Markdown(
                "**The Hugging Face Hub can't be reached from this machine**, so the pretrained AST "
                "can't be downloaded. A small model trained **from scratch** is preselected so the "
                "example still trains end to end (fine for clearly different sounds, weaker than "
                "fine-tuning). To fine-tune a real AST offline, type the path of a local checkpoint "
                "folder (with `config.json` and `model.safetensors`) in *Model*.",
                elem_classes=["astapp-notice"], elem_id="hub-notice")
        with gr.Row():
            model = gr.Dropdown(label="Model", choices=ctx.model_choices, value=ctx.default_model,
                                allow_custom_value=True, scale=3, elem_id="model-choice",
                                info="A Hub id, a local checkpoint folder, or scratch:tiny|small|base")
            mode = gr.Radio(MODES, value=d["mode"], label="What to train", scale=3)
        model_info = gr.Markdown(elem_classes=["astapp-hint"])
        hint = gr.Markdown(mode_hint(ctx.default_model, d["mode"], hw), elem_classes=["astapp-hint"])
        with gr.Row():
            epochs = gr.Number(d["epochs"], label="Epochs", minimum=0.1, precision=None, min_width=100)
            lr = gr.Number(d["lr"], label="Learning rate", minimum=0, min_width=120)
            batch = gr.Number(d["batch_size"], label="Batch size", minimum=1, precision=0, min_width=100)
            max_length = gr.Textbox("auto", label="Input length (frames)", min_width=140,
                                    info="auto = fits 95% of your clips")
            val_split = gr.Slider(0.05, 0.5, value=0.2, step=0.05, label="Validation share", min_width=160)
        with gr.Accordion("More settings", open=False), gr.Row():
            seed = gr.Number(0, label="Seed", precision=0, min_width=100)
            early = gr.Number(0, label="Early stopping patience (epochs, 0 = off)", precision=0)
            weighted = gr.Checkbox(False, label="Weight classes by rarity (unbalanced data)")
        with gr.Row():
            start = gr.Button("Start training", variant="primary", elem_id="start-btn", scale=2)
            stop = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=1)
            show_cli = gr.Button("Show as CLI command", scale=1)
            resume = gr.Button("Resume interrupted run", scale=1, visible=True, elem_id="resume-btn")
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
        timer = gr.Timer(POLL_SECONDS, active=False)

    form = [model, mode, epochs, lr, batch, max_length, val_split, seed, early, weighted]

    def make_cfg(data: dict[str, Any] | None, aug: dict[str, Any] | None, model: str, mode: str,
                 epochs: float, lr: float, batch_size: float, max_length: str, val_split: float, seed: float,
                 early_stopping: float, class_weighted: bool) -> TrainConfig:
        data = current(ctx, data)
        root = data["root"]
        if not data.get("trainable", True):
            raise gr.Error("The chosen dataset has blocking problems (see the Data tab); fix them first.")
        length: int | str = str(max_length or "auto").strip().lower()
        if length != "auto":
            try:
                length = int(float(length))
            except ValueError:
                raise gr.Error("Input length must be 'auto' or a number of frames, e.g. 512.") from None
        try:
            cfg = TrainConfig(data=root, model=str(model or "").strip() or ctx.default_model,
                              epochs=float(epochs or 0), batch_size=int(batch_size or 0), lr=float(lr or 0),
                              max_length=length, mode=str(mode or "full"), val_split=float(val_split),
                              seed=int(seed or 0), early_stopping=int(early_stopping or 0),
                              class_weighted=bool(class_weighted),
                              augment=AugmentConfig(**(aug or {})))
        except (TypeError, ValueError) as e:
            raise gr.Error(f"Some settings are not numbers ({e}).") from None
        problems = cfg.validate()
        if problems:
            raise gr.Error(" ".join(problems))
        return cfg

    def poll_values(job_id: str | None, owner: str) -> tuple[Any, ...]:
        if not job_id:
            empty = curves([])
            return (gr.update(), _progress_html(None), *empty, "", gr.Timer(active=False))
        snap = manager.snapshot(job_id, owner=owner, log_lines=LOG_LINES)
        events, _ = manager.events(job_id, since=0, owner=owner)
        loss_df, lr_df, met_df = curves(events)
        active = snap.get("state") in ACTIVE
        return (_status_md(snap, events), _progress_html(snap), loss_df, lr_df, met_df,
                "\n".join(snap.get("log") or []), gr.Timer(active=active))

    poll_outputs = [status, progress, loss_plot, lr_plot, metric_plot, log_tail, timer]

    @guarded
    def start_fn(data: dict[str, Any] | None, aug: dict[str, Any] | None, tok: str | None, model: str,
                 mode: str, epochs: float, lr: float, batch_size: float, max_length: str, val_split: float,
                 seed: float, early_stopping: float, class_weighted: bool,
                 request: gr.Request) -> tuple[Any, ...]:
        cfg = make_cfg(data, aug, model, mode, epochs, lr, batch_size, max_length, val_split, seed,
                       early_stopping, class_weighted)
        owner = session(ctx, tok, request).owner
        name = f"{current(ctx, data).get('name') or 'dataset'} · {cfg.model.rstrip('/').split('/')[-1]}"
        job_id = manager.submit(owner, cfg, name=name)
        return (job_id, *poll_values(job_id, owner))

    def poll_fn(job_id: str | None, tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Timer tick: never raises (a toast every second would be unbearable)."""
        try:
            owner = session(ctx, tok, request).owner
            if not job_id:
                job_id = attach_job(manager, owner)
            return (job_id, *poll_values(job_id, owner))
        except Exception as exc:  # noqa: BLE001
            from astapp.ui.common import friendly

            return (job_id, f"**Problem:** {friendly(exc)}", gr.update(), gr.update(), gr.update(), gr.update(),
                    gr.update(), gr.Timer(active=False))

    @guarded
    def stop_fn(job_id: str | None, tok: str | None, request: gr.Request) -> str:
        owner = session(ctx, tok, request).owner
        job_id = job_id or manager.active_job(owner)
        if not job_id or not manager.stop(job_id, owner=owner):
            return "Nothing is training right now."
        return ("<span class='astapp-badge stopped'>Stopping</span> after the current step; "
                "the best model so far is kept.")

    @guarded
    def resume_fn(tok: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Continue the newest interrupted (or stopped) run from its last checkpoint."""
        owner = session(ctx, tok, request).owner
        run = next((r for r in manager.list_runs(owner) if r.resumable), None)
        if run is None:
            raise gr.Error("There is no interrupted run to resume; press Start training for a new one.")
        job_id = manager.resume(owner, run.id)
        return (job_id, *poll_values(job_id, owner))

    @guarded
    def cli_fn(data: dict[str, Any] | None, aug: dict[str, Any] | None, model: str, mode: str, epochs: float,
               lr: float, batch_size: float, max_length: str, val_split: float, seed: float,
               early_stopping: float, class_weighted: bool) -> Any:
        cfg = make_cfg(data, aug, model, mode, epochs, lr, batch_size, max_length, val_split, seed,
                       early_stopping, class_weighted)
        cfg.output = "runs/my-run"
        return gr.Code(cfg.to_cli(), visible=True)

    def form_hint(model_v: str, mode_v: str) -> tuple[str, str]:
        try:
            from astapp.model import describe_source

            info = describe_source(str(model_v or ""), check_hub=ctx.hub_online)
        except Exception as exc:  # noqa: BLE001
            info = str(exc)
        return f"<small>Model: {info}</small>", mode_hint(str(model_v or ""), str(mode_v or "full"), hw)

    def model_defaults(model_v: str) -> tuple[Any, ...]:
        dd = defaults_for(str(model_v or ""))
        return gr.update(value=dd["epochs"]), gr.update(value=dd["lr"]), gr.update(value=dd["mode"])

    start.click(start_fn, [dataset, augment, token, *form], [job, *poll_outputs], api_name="start_training")
    timer.tick(poll_fn, [job, token], [job, *poll_outputs], api_name="poll_training", show_progress="hidden")
    resume.click(resume_fn, token, [job, *poll_outputs], api_name="resume_training")
    stop.click(stop_fn, [job, token], status, api_name="stop_training")
    show_cli.click(cli_fn, [dataset, augment, *form], cli, api_name="training_command")
    model.input(model_defaults, model, [epochs, lr, mode], api_visibility="private")
    gr.on([model.change, mode.change], form_hint, [model, mode], [model_info, hint], api_visibility="private",
          show_progress="hidden")

    return TrainTab(tab, job, timer, [job, *poll_outputs], max_length, form_hint, [model, mode],
                    [model_info, hint])
