"""The Train tab's "Find good settings": a settings search queued like any run (task "tune"), watched from its
run folder (trial folders and tune.json, so a reload or a restart loses nothing), stopped and continued, and its
best settings trained as a normal run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from astapp.core.config import TrainConfig
from astapp.core.errors import AccessError
from astapp.core.runfolder import CONFIG, TRIAL, TRIALS, TUNE, read_json
from astapp.jobs.manager import JobManager
from astapp.jobs.registry import RunInfo
from astapp.jobs.sessions import Session
from astapp.service.training import Training


@dataclass
class SearchView:
    """What the search panel shows: trials so far (number, value, state), best so far, the outcome."""

    run_id: str | None
    state: str = ""
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    default_value: float | None = None
    message: str = ""
    test: dict[str, Any] = field(default_factory=dict)
    planned: int = 0

    def best_so_far(self) -> list[float]:
        """The running maximum of complete trials' values, one per trial (for the plot)."""
        out, top = [], float("-inf")
        for t in self.trials:
            if t["state"] == "complete":
                top = max(top, float(t["value"]))
            out.append(top if top > float("-inf") else float("nan"))
        return out


class Tuning:
    """Start, watch, stop and continue a settings search; train its best settings."""

    def __init__(self, manager: JobManager, training: Training):
        self.manager, self.training = manager, training

    def start(self, session: Session, values: dict[str, Any], trials: Any, minutes: Any = 0) -> str:
        """Queue a search over the Train form's settings (any mode: frozen and last-N trials reuse one cached
        pass, full and LoRA trials are real trainings); returns its run id."""
        from astapp.tuning.space import check_counts

        cfg = self.training.config_from_form(session, values)
        trials = int(trials) if isinstance(trials, float) and trials.is_integer() else trials
        check_counts(trials, minutes, cfg.tune_test_share)
        cfg.task, cfg.tune_trials, cfg.tune_minutes = "tune", trials, float(minutes or 0)
        name = f"{self.training.datasets.current(session).name} · find settings ({cfg.mode}, {trials} trials)"
        return self.manager.submit(session.owner, cfg, name=name)

    def latest(self, session: Session) -> RunInfo | None:
        """The session's newest settings search."""
        return next((r for r in self.manager.list_runs(session.owner)
                     if not r.readonly and read_json(r.path / CONFIG).get("task") == "tune"), None)

    def view(self, session: Session, run_id: str | None = None) -> SearchView:
        """The search `run_id` (default: the newest) as its folder tells it now."""
        info = self.manager.get_run(session.owner, run_id) if run_id else self.latest(session)
        if info is None:
            return SearchView(None, message="No search yet: press Find good settings (frozen or last-N search fastest).")
        done = read_json(info.path / TUNE)
        cfg = read_json(info.path / CONFIG)
        trials = done.get("trials") or [
            {k: t.get(k) for k in ("number", "params", "value", "state")}
            for t in (read_json(f / TRIAL) for f in sorted((info.path / TRIALS).glob("trial-*"))) if t]
        complete = [t for t in trials if t.get("state") == "complete"]
        best = done.get("best") or (max(complete, key=lambda t: t["value"]) if complete else None)
        return SearchView(info.id, info.state, trials, best, (done.get("default") or {}).get("value"),
                          done.get("message") or info.error or "", done.get("test") or {},
                          int(cfg.get("tune_trials") or 0))

    def stop(self, session: Session) -> bool:
        return self.training.stop(session, None)

    def resume(self, session: Session, run_id: str | None = None) -> str:
        """Continue a stopped search in its own folder: its trials are replayed, not re-run."""
        info = self.manager.get_run(session.owner, run_id) if run_id else self.latest(session)
        if info is None or not info.resumable:
            raise AccessError("There is no stopped search to continue; press Find good settings to start one.")
        return self.manager.resume(session.owner, info.id)

    def train_best(self, session: Session, run_id: str | None = None) -> str:
        """A normal training run with the search's winner (the default settings when nothing beat them): the
        winning trial's own recorded config where it has one (full, LoRA: the same run again, so the same
        validation score), else the search's settings with the winner's applied."""
        from astapp.tuning.search import trial_config

        info = self.manager.get_run(session.owner, run_id) if run_id else self.latest(session)
        done = read_json(info.path / TUNE) if info else {}
        if not done:
            raise AccessError("No finished search yet: wait for it to finish (or stop it) first.")
        kept = done.get("kept_default") or not done.get("best")
        params = (done.get("default") or {}).get("params") if kept else done["best"]["params"]
        folder = info.path / TRIALS / ("default" if kept else f"trial-{done['best']['number']:04d}")
        recorded = read_json(folder / TRIAL)
        cfg = TrainConfig.from_dict(recorded["config"]) if recorded.get("exact") and recorded.get("config") else \
            trial_config(TrainConfig.load(info.path / CONFIG), dict(params or {}))
        name = f"{info.name.split(' · ')[0]} · best found settings ({cfg.mode})"
        return self.manager.submit(session.owner, cfg, name=name)
