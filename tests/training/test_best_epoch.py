"""Which epoch is "best": the selection metric, then the lower validation loss, then the later epoch."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from astapp.core.events import describe_outcome
from astapp.training.trainer_utils import BestKeeper


def _evaluate(keeper: BestKeeper, epoch: int, **scores: float) -> None:
    state = SimpleNamespace(epoch=float(epoch), global_step=epoch * 10)
    keeper.module.weight.data.fill_(float(epoch))  # the weights of this epoch, to see which were kept
    keeper.on_evaluate(None, state, SimpleNamespace(should_training_stop=False),
                       metrics={f"eval_{k}": v for k, v in scores.items()})


def _kept_epoch(keeper: BestKeeper) -> float:
    keeper.restore()
    return float(keeper.module.weight.data.flatten()[0])


def test_a_tie_on_accuracy_goes_to_the_lower_loss_even_when_it_comes_later() -> None:
    keeper = BestKeeper(torch.nn.Linear(2, 2))
    _evaluate(keeper, 1, accuracy=0.5, loss=0.9)
    _evaluate(keeper, 2, accuracy=1.0, loss=0.66)
    _evaluate(keeper, 3, accuracy=1.0, loss=0.40)
    _evaluate(keeper, 4, accuracy=1.0, loss=0.45)  # same accuracy, higher loss: not better
    assert keeper.best["epoch"] == 3 and _kept_epoch(keeper) == 3
    assert keeper.best["why"] == "tied on accuracy, lower validation loss"
    assert keeper.bad_evals == 2  # ties are no progress for early stopping: epochs 3 and 4 count


def test_a_full_tie_goes_to_the_later_epoch_and_a_higher_score_always_wins() -> None:
    keeper = BestKeeper(torch.nn.Linear(2, 2))
    _evaluate(keeper, 1, accuracy=0.475, loss=0.5)
    _evaluate(keeper, 2, accuracy=0.475, loss=0.5)
    assert keeper.best["epoch"] == 2 and keeper.best["why"] == "tied on accuracy, the later epoch"
    _evaluate(keeper, 3, accuracy=0.6, loss=0.9)  # a higher score wins even with a higher loss
    _evaluate(keeper, 4, accuracy=0.55, loss=0.1)
    assert keeper.best["epoch"] == 3 and keeper.best["why"] == "highest accuracy" and _kept_epoch(keeper) == 3


def test_loss_as_the_metric_prefers_lower_and_ties_go_later() -> None:
    keeper = BestKeeper(torch.nn.Linear(2, 2), metric="loss")
    _evaluate(keeper, 1, loss=0.5)
    _evaluate(keeper, 2, loss=0.4)
    _evaluate(keeper, 3, loss=0.4)
    _evaluate(keeper, 4, loss=0.6)
    assert keeper.best["epoch"] == 3 and keeper.best["why"] == "tied on loss, the later epoch"


def test_the_finish_line_says_which_epoch_and_why() -> None:
    line = describe_outcome({"accuracy": 1.0, "f1_macro": 1.0, "best_epoch": 20.0,
                             "best_why": "tied on accuracy, lower validation loss"})
    assert line.endswith("(best epoch 20: tied on accuracy, lower validation loss)")


def test_a_plateau_still_stops_early_though_ties_keep_the_later_weights() -> None:
    keeper = BestKeeper(torch.nn.Linear(2, 2), patience=2)
    control = SimpleNamespace(should_training_stop=False)
    for epoch in (1, 2, 3):
        keeper.module.weight.data.fill_(float(epoch))
        keeper.on_evaluate(None, SimpleNamespace(epoch=float(epoch), global_step=epoch), control,
                           metrics={"eval_accuracy": 0.5, "eval_loss": 0.7})
    assert control.should_training_stop and keeper.early_stopped and keeper.best["epoch"] == 3
