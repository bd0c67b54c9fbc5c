"""The settings search (task "tune"): Optuna TPE over `space(mode)`, pruning a trial from its per-epoch
validation scores, every trial a child folder `<run>/trials/trial-NNNN/trial.json` (its settings and scores).
How a trial trains depends on the mode: frozen and last-N fit the trainable part on one cached pass
(`tuning.cached`, seconds a trial); full and LoRA train for real through the engine, each trial a child run
(`tuning.engine`). The search itself (study, replay, records, the result) is the same for both.

The app's default settings are scored the same way first; the best trial wins only if it beats them on the
search's validation clips, else the default is kept and the result says so. The held-back test share is
scored once at the end, for the winner and for the default, so the number reported is not the one optimised.
A stop (or the time budget) ends the search between epochs; finished and pruned trials stay, and running the
same search again into the same folder picks them up (they are replayed into the study, not re-run).

`<run>/tune.json`: {"trials": [{number, params, value, state}], "best": {number, params, value}, "default":
{params, value}, "metric", "test": {...}, "kept_default", "message", "seconds", "pass_seconds", "clips"}.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from astapp.core.config import TrainConfig
from astapp.core.events import EventSink, make_event
from astapp.core.fsutil import atomic_write_text
from astapp.core.runfolder import TRIAL, TUNE, RunResult, read_json
from astapp.core.runfolder import TRIALS as TRIALS_DIR
from astapp.training.stages import Stages, Stopped
from astapp.tuning.space import Param, check_counts, default_params, space, trial_config  # noqa: F401

__all__ = ["METRIC", "run_tune", "setup_key", "trial_config"]

METRIC = "f1_macro"  # maximised on the search's validation clips (macro: every class counts the same)
PRUNE_WARMUP = 2  # epochs a trial always runs before the median rule may prune it


def run_tune(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None) -> RunResult:
    """Search settings per `cfg` (any mode) into `cfg.output`; see the module doc."""
    cfg.require_valid()
    check_counts(cfg.tune_trials, cfg.tune_minutes, cfg.tune_test_share)
    return _Search(cfg, events or (lambda e: None), stop or threading.Event()).execute()


def distributions(params: list[Param]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for p in params:
        if p.kind == "choice":
            out[p.name] = CategoricalDistribution(list(p.choices))
        elif p.kind == "int":
            out[p.name] = IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            out[p.name] = FloatDistribution(p.low, p.high, log=p.log)
    return out


def setup_key(cfg: TrainConfig) -> str:
    """Which search a trial belongs to: trials of another dataset, model, mode, split or seed are not replayed."""
    text = json.dumps([cfg.data, cfg.model, cfg.mode, cfg.seed, cfg.val_split, cfg.tune_test_share,
                       str(cfg.max_length), *([cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets] if cfg.mode == "lora"
                                              else []), cfg.audio.to_dict() if hasattr(cfg.audio, "to_dict") else str(cfg.audio)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Search:
    def __init__(self, cfg: TrainConfig, emit: EventSink, stop: threading.Event):
        self.cfg, self.emit, self.stop = cfg, emit, stop
        self.stages = Stages(emit, stop, runs_to_the_end=("test", "exporting"))  # a stopped search still reports its test
        self.run = Path(cfg.output)
        self.t0 = time.time()
        self.params = space(cfg.mode)
        self.dists = distributions(self.params)
        self.key = setup_key(cfg)
        self.trials: list[dict[str, Any]] = []

    def execute(self) -> RunResult:
        from astapp.tuning.cached import CachedTrials
        from astapp.tuning.engine import EngineTrials
        from astapp.tuning.prepare import cached_mode

        self.run.mkdir(parents=True, exist_ok=True)
        if self.cfg.threads:
            import torch

            torch.set_num_threads(self.cfg.threads)
        self.b = CachedTrials(self.cfg, self.stages, self.run) if cached_mode(self.cfg.mode) else \
            EngineTrials(self.cfg, self.stages, self.run, self.key)
        self.b.prepare()
        self.stages.stage("default", "Scoring the default settings")
        dflt = default_params(self.cfg)
        try:
            default_value = self.b.default(dflt)
        except Stopped:
            return RunResult(self.run, "stopped")  # before any result: nothing to report
        study = self._study()
        stopped = False
        try:
            self._optimise(study, default_value)
        except Stopped:
            stopped = True
        return self._finish(dflt, default_value, stopped or self.stop.is_set())

    # --- the study -----------------------------------------------------------------------------
    def _study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.cfg.seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=PRUNE_WARMUP))
        for old in self._earlier():
            state = optuna.trial.TrialState.COMPLETE if old["state"] == "complete" else optuna.trial.TrialState.PRUNED
            study.add_trial(optuna.trial.create_trial(
                params=old["params"], distributions=self.dists, state=state,
                value=old["value"] if state == optuna.trial.TrialState.COMPLETE else None,
                intermediate_values={i + 1: v for i, v in enumerate(old.get("curve") or [])}))
            self.trials.append({**old, "number": len(self.trials)})
        if self.trials:
            self.stages.stage("resume", f"Continuing the search after {len(self.trials)} earlier trials")
        return study

    def _earlier(self) -> list[dict[str, Any]]:
        """Trials a stopped search of the same setup left (complete or pruned, parameters still in range)."""
        out = []
        for folder in sorted((self.run / TRIALS_DIR).glob("trial-*")):
            t = read_json(folder / TRIAL)
            params = t.get("params") or {}
            if t.get("setup") != self.key or t.get("state") not in ("complete", "pruned") or \
                    set(params) != set(self.dists) or not all(p.allows(params[p.name]) for p in self.params):
                continue
            out.append(t)
        return out

    def _optimise(self, study: Any, default_value: float) -> None:
        import optuna

        deadline = self.t0 + 60 * float(self.cfg.tune_minutes) if self.cfg.tune_minutes else None
        while len(self.trials) < int(self.cfg.tune_trials):
            if deadline is not None and time.time() >= deadline:
                self.emit(make_event("warning", message=f"The time budget ({self.cfg.tune_minutes:g} min) is used "
                                     f"up after {len(self.trials)} trials."))
                return
            if self.stop.is_set():
                raise Stopped()
            trial = study.ask(self.dists)
            record = self._one(trial, optuna)
            study.tell(trial, record["value"] if record["state"] == "complete" else None,
                       state=optuna.trial.TrialState.COMPLETE if record["state"] == "complete"
                       else optuna.trial.TrialState.PRUNED)
            self._announce(record, default_value)

    def _one(self, trial: Any, optuna: Any) -> dict[str, Any]:
        params, t0, curve = dict(trial.params), time.time(), []
        number = len(self.trials)
        folder = self.run / TRIALS_DIR / f"trial-{number:04d}"

        def report(epoch: int, score: float) -> None:
            curve.append(score)
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            value, curve = self.b.trial(number, params, folder, report, self.stop)
            state = "complete"
        except optuna.TrialPruned:
            value, state = max(curve) if curve else 0.0, "pruned"
        if self.stop.is_set() and state == "complete" and len(curve) < int(params["epochs"]):
            raise Stopped()  # cut short by the stop: not a result; the trials before it stay
        record = {"number": number, "params": params, "value": float(value), "state": state,
                  "curve": [float(v) for v in curve], "seconds": round(time.time() - t0, 3), "setup": self.key,
                  "config": self.b.config(params, folder).to_dict(), "exact": self.b.exact}
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / TRIAL, json.dumps(record, indent=2))
        self.trials.append(record)
        return record

    def _announce(self, record: dict[str, Any], default_value: float) -> None:
        best = max((t["value"] for t in self.trials if t["state"] == "complete"), default=None)
        n, total = record["number"] + 1, int(self.cfg.tune_trials)
        self.emit(make_event("stage", stage="trial", trial=record["number"], value=record["value"],
                             trial_state=record["state"], best=best, default=default_value, params=record["params"],
                             progress=n / total, message=f"Trial {n}/{total}: macro F1 {record['value']:.3f} "
                             f"({record['state']}); best so far {best if best is None else round(best, 3)}"))

    # --- the end ------------------------------------------------------------------------------
    def _finish(self, dflt: dict[str, Any], default_value: float, stopped: bool) -> RunResult:
        done = [t for t in self.trials if t["state"] == "complete"]
        best = max(done, key=lambda t: (t["value"], -t["number"])) if done else None
        kept = best is None or best["value"] <= default_value
        self.stages.stage("test", "Scoring the held-back test clips once")
        test = self.b.finish(best, kept)
        facts = self.b.facts
        message = ("The search did not beat the default settings on validation; keeping the defaults."
                   if kept else f"Trial {best['number']} beat the default settings on validation "
                   f"({best['value']:.3f} vs {default_value:.3f}).")
        if best is not None and not kept and test["best"][METRIC] <= test["default"][METRIC]:
            message += " On the held-back test clips it did not (the gain does not hold there)."
        out = {"trials": [{k: t[k] for k in ("number", "params", "value", "state")} for t in self.trials],
               "best": {k: best[k] for k in ("number", "params", "value")} if best else None,
               "default": {"params": dflt, "value": default_value}, "metric": METRIC, "test": test,
               "kept_default": kept, "message": message, "mode": self.cfg.mode, "stopped": stopped,
               "seconds": round(time.time() - self.t0, 3), "pass_seconds": round(facts["pass_seconds"], 3),
               "clips": facts["clips"]}
        atomic_write_text(self.run / TUNE, json.dumps(out, indent=2))
        self.emit(make_event("stage", stage="done", message=message))
        return RunResult(self.run, "stopped" if stopped else "finished",
                         metrics={"tune_best": out["best"]["value"] if best else None, "tune_default": default_value,
                                  "kept_default": kept, "trials": len(self.trials)})
