"""Training for the app: the Train form becomes a `TrainConfig`, a queued job, and a stream of progress.

The form's values are part of the session state (saved as they change, restored on load); the
dataset and the augmentation come from the session state too, so Start trains exactly what the
page shows, even after a reload. Polling takes a cursor and returns only the new events.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from astapp.core.config import FORM_FIELDS, Setting, TrainConfig, defaults_for, set_setting, setting
from astapp.core.errors import AccessError, TrainingError
from astapp.core.runfolder import ACTIVE
from astapp.jobs.manager import JobManager
from astapp.jobs.sessions import Session
from astapp.model.sources import require_usable_offline
from astapp.service.augmenting import Augmenting
from astapp.service.datasets import Datasets
from astapp.service.state import Stamp, StateStore, newest

AUTO = "auto"  # the form's word for "let astapp choose" (input length, validation fold)
CLI_OUTPUT = "runs/my-run"
LOG_LINES = 14


@dataclass
class Poll:
    """One tick of the Train tab: the run's snapshot, the events since the cursor, the next cursor."""

    snapshot: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    cursor: int = 0
    job_id: str | None = None
    reset: bool = False  # the events start again from the first (another job, or the app restarted)
    idle: str = ""  # with no run to show: what Start would train (the chosen dataset, not always the example)


class Training:
    """The Train form and the training jobs it starts (start, stop, resume, attach, poll)."""

    def __init__(self, manager: JobManager, store: StateStore, datasets: Datasets, augmenting: Augmenting,
                 default_model: str, hub_online: bool):
        self.manager = manager
        self.store = store
        self.datasets = datasets  # a run trains the session's chosen dataset ...
        self.augmenting = augmenting  # ... with the session's augmentation
        self.default_model = default_model
        self.hub_online = hub_online  # whether a model hint may ask the Hub

    # --- the form ------------------------------------------------------------------------------
    def form_defaults(self, model: str | None = None) -> dict[str, Any]:
        """The form's starting values for `model` (the app's default model when None)."""
        model = str(model or self.default_model)
        base = TrainConfig(model=model)
        values = {name: _get(base, name) for name in FORM_FIELDS}
        values.update(defaults_for(model), val_fold=base.val_fold or AUTO)
        return values

    def form(self, session: Session) -> dict[str, Any]:
        """The session's form values (saved ones over the defaults for the saved or default model)."""
        saved = self.store.load(session).form
        values = self.form_defaults(saved.get("model"))
        values.update({k: v for k, v in saved.items() if k in FORM_FIELDS})
        return values

    def save_form(self, session: Session, values: dict[str, Any], stamp: Stamp | None = None) -> None:
        """Save the form's values, field by field: a field a later edit of the same page (`stamp`) has set
        keeps that newer value."""
        with self.store.edit(session) as state:
            state.form = {**state.form, **{k: v for k, v in values.items()
                                           if k in FORM_FIELDS and newest(state, f"form.{k}", stamp)}}

    def config_from_form(self, session: Session, values: dict[str, Any]) -> TrainConfig:
        """The run the form describes, on the session's dataset and augmentation; TrainingError when a
        value is wrong (every problem named), DatasetError when the dataset cannot be trained on."""
        view = self.datasets.trainable(session)
        cfg = TrainConfig(data=view.root, augment=self.augmenting.settings(session), model=self.default_model,
                          data_version=view.version)
        for name in FORM_FIELDS:
            set_setting(cfg, name, form_value(setting(name), values.get(name), _get(cfg, name)))
        if not self.hub_online:
            require_usable_offline(cfg.model)
        cfg.require_valid()
        if cfg.val_fold:
            from astapp.data.dataset import check_fold

            check_fold(cfg.val_fold, view.folds)
        return cfg

    def cli_command(self, session: Session, values: dict[str, Any]) -> str:
        """The same run as a terminal command, naming the data as the user knows it (their zip's name,
        the example's path, hf:<id>), with a note on where this server keeps the uploaded copy."""
        cfg = self.config_from_form(session, values)
        view = self.datasets.current(session)
        cfg.output, cfg.data = CLI_OUTPUT, view.source or view.root
        note = {"upload": f"# {view.source} is your zip. This server keeps the uploaded copy, extracted, at "
                          f"{view.root}: give that path as --data to rerun it on this machine.",
                "example": f"# Run it from the astapp folder: {view.source} ships with astapp."}.get(view.kind)
        return "\n".join([*([note] if note else []), cfg.to_cli()])

    def model_info(self, model: str) -> str:
        """One line saying what a model source is (Hub id, local folder, from scratch); never raises."""
        try:
            from astapp.model.sources import describe_source

            return describe_source(str(model or ""), check_hub=self.hub_online)
        except Exception as exc:  # noqa: BLE001 - only a hint
            return str(exc)

    # --- jobs ----------------------------------------------------------------------------------
    def start(self, session: Session, values: dict[str, Any], stamp: Stamp | None = None) -> str:
        """Queue the run the form describes; returns its job id."""
        cfg = self.config_from_form(session, values)
        self.save_form(session, values, stamp)
        name = f"{self.datasets.current(session).name} · {cfg.model.rstrip('/').split('/')[-1]}"
        return self.manager.submit(session.owner, cfg, name=name)

    def stop(self, session: Session, job_id: str | None) -> bool:
        """Stop the session's job gracefully; False when nothing of theirs is training."""
        job_id = job_id or self.manager.active_job(session.owner)
        return bool(job_id) and self.manager.stop(job_id, owner=session.owner)

    def resume(self, session: Session, run_id: str | None = None) -> str:
        """Continue a run from its last checkpoint: `run_id` when it can be resumed, else the session's
        newest interrupted (or stopped) run."""
        resumable = [r for r in self.manager.list_runs(session.owner) if r.resumable]
        run = next((r for r in resumable if r.id == run_id), None) or next(iter(resumable), None)
        if run is None:
            raise AccessError("There is no interrupted run to resume; press Start training for a new one.")
        return self.manager.resume(session.owner, run.id)

    def attach(self, session: Session) -> str | None:
        """The run a (re)loaded page shows: the active job, else the newest run a restart interrupted
        (to resume it), else the newest run of any state (so a finished run is shown with its result)."""
        job_id = self.manager.active_job(session.owner)
        if job_id is not None:
            return job_id
        own = [r for r in self.manager.list_runs(session.owner) if not r.readonly]
        interrupted = next((r.id for r in own if r.state == "interrupted"), None)
        return interrupted or (own[0].id if own else None)

    def poll(self, session: Session, job_id: str | None, cursor: int = 0) -> Poll:
        """The job's snapshot and the events after `cursor` (a reset cursor when the job changed).

        The session's queued or running job wins over the one asked for: a job started elsewhere (the
        Evaluate tab's retrain, another tab, the API) is what the Train tab then follows."""
        active = self.manager.active_job(session.owner)
        if active is not None and active != job_id:
            job_id, cursor = active, 0
        if not job_id:
            job_id, cursor = self.attach(session), 0
        if not job_id:
            name = self.datasets.current(session).name
            return Poll(None, idle=f"No training yet. Press **Start training** to train on {name}.")
        snap = self.manager.snapshot(job_id, owner=session.owner, log_lines=LOG_LINES)
        if snap["state"] not in ACTIVE:  # the outcome a finished page shows, and whether it can continue
            info = self.manager.get_run(session.owner, job_id)
            snap.update(metrics=info.metrics, resumable=info.resumable)
        events, end = self.manager.events(job_id, since=cursor, owner=session.owner)
        return Poll(snap, events, end, job_id, reset=cursor == 0 or end < cursor)


def form_value(s: Setting, raw: Any, default: Any) -> Any:
    """One form value typed as its setting's kind: numbers from number boxes (blank = 0, which the check then
    names), "auto" or a number of frames, and text where blank keeps the default ("auto" = the empty choice).
    TrainingError names a value that is not a number."""
    try:
        if s.kind in ("int", "float"):
            return (int if s.kind == "int" else float)(raw or 0)
        if s.kind == "bool":
            return bool(raw)
        text = str(raw or "").strip()
        if s.kind == "frames":
            return AUTO if text.lower() in ("", AUTO) else int(float(text))
    except (TypeError, ValueError) as e:
        if s.kind == "frames":
            raise TrainingError("Input length must be 'auto' or a number of frames, e.g. 512.") from None
        raise TrainingError(f"Some settings are not numbers ({e}).") from None
    if text.lower() == AUTO and default == "":
        return ""
    return text or default


def _get(cfg: Any, path: str) -> Any:
    return functools.reduce(getattr, path.split("."), cfg)
