"""The trials of the cached modes (frozen, last-N) for `astapp.tuning.search`: one pass of the frozen layers
(`prepare`), then every trial a fit of the trainable part on the cached activations (`trials.fit`, seconds).

The same interface as `astapp.tuning.engine.EngineTrials` (full, LoRA), so the search does not care which:
`prepare()`, `default(params)`, `trial(number, params, folder, report, stop)`, `finish(best, kept)`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astapp.core.config import TrainConfig
from astapp.core.runfolder import MODEL
from astapp.training.stages import Stages


class CachedTrials:
    """Trials as head (or top-layer) fits on one cached pass."""

    exact = False  # a trial's fit is not the engine's training: "train the best" gets its settings, not its score

    def __init__(self, cfg: TrainConfig, stages: Stages, run: Path):
        self.cfg, self.stages, self.run = cfg, stages, run
        self.facts: dict[str, Any] = {}

    def prepare(self) -> None:
        from astapp.tuning.prepare import prepare

        self.model, self.n, self.c, self.facts = prepare(self.cfg, self.stages)

    def config(self, params: dict[str, Any], folder: Path) -> TrainConfig:
        """The normal run with a trial's settings (on the whole dataset, the engine's own split)."""
        from astapp.tuning.space import trial_config

        return trial_config(self.cfg, params)

    def default(self, params: dict[str, Any]) -> float:
        from astapp.tuning.trials import fit

        value, _, self.default_net = fit(self.model, self.n, self.c, params, self.cfg.seed)
        return value

    def trial(self, number: int, params: dict[str, Any], folder: Path, report: Callable[[int, float], None],
              stop: threading.Event) -> tuple[float, list[float]]:
        """(best validation score, score per epoch); `report` raises optuna.TrialPruned to prune."""
        from astapp.tuning.trials import fit

        value, curve, _ = fit(self.model, self.n, self.c, params, self.seed(number), report, stop=stop.is_set)
        return value, curve

    def seed(self, number: int) -> int:
        return self.cfg.seed + number + 1

    def finish(self, best: dict[str, Any] | None, kept: bool) -> dict[str, Any]:
        """The held-back test clips scored once (the default, and the best when there is one); the winner
        exported as the run's model/."""
        from astapp.tuning.trials import fit, test_scores

        test, winner = {"default": test_scores(self.default_net, self.c)}, self.default_net
        if best is not None:
            _, _, net_b = fit(self.model, self.n, self.c, best["params"], self.seed(best["number"]))
            test["best"] = test_scores(net_b, self.c)
            winner = self.default_net if kept else net_b
        self._export(winner, None if kept else best)
        test["clips"] = int(len(self.c.test_clips))
        return test

    def _export(self, net: Any, best: dict[str, Any] | None) -> None:
        """The winner as the run's model/ (Predict, download): exactly what was scored, the backbone untouched."""
        from astapp.model.folder import export_model
        from astapp.tuning.trials import into_model

        self.stages.stage("exporting", "Saving the winning settings' model")
        extra = {"mode": self.cfg.mode, "source_model": self.cfg.model,
                 "trained_on": "the search's training clips", "tuned": {"trial": best["number"] if best else None,
                                                                         "params": best["params"] if best else None}}
        export_model(into_model(self.model, self.n, net), self.c.label_names, self.facts["max_length"],
                     self.facts["mean"], self.facts["std"], self.run / MODEL, extra=extra)
