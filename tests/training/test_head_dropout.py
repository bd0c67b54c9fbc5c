"""Head dropout is a training setting (the settings search tunes it, so "train the best" must be able to set
it): one row of the settings table drives its CLI flag and its check; in a run it drops the classifier's input
in training only, without changing a weight name; and mixup no longer turns off the frozen-mode cache."""

from __future__ import annotations

import shlex

import pytest
import torch
from train_helpers import cfg_for, one_thread  # noqa: F401 - autouse fixture

from astapp.cli import build_parser
from astapp.cli.training import config_from_args
from astapp.core.config import TrainConfig
from astapp.model.loading import load_model, set_head_dropout


@pytest.mark.parametrize("value", [-0.1, 1.0, 2, "0.2"])
def test_out_of_range_is_one_sentence(value):
    ok = {"data": "d", "model": "m", "output": "o"}
    problems = TrainConfig(**ok, head_dropout=value).validate()
    assert problems == ["Head dropout must be at least 0 and below 1 (typical: 0 to 0.3)."]
    assert TrainConfig(**ok, head_dropout=0.3).validate() == []


def test_the_flag_round_trips_through_the_command_line():
    cfg = TrainConfig(head_dropout=0.25)
    assert "--head-dropout 0.25" in cfg.to_cli()
    assert config_from_args(build_parser().parse_args(shlex.split(cfg.to_cli())[3:])).head_dropout == 0.25
    assert "--head-dropout" not in TrainConfig().to_cli()  # the default (off) is not written


def test_dropout_acts_in_training_only_and_keeps_the_weights(tiny_ast):
    model = load_model(str(tiny_ast), ["a", "b", "c"], 64).float()
    keys = list(model.state_dict())
    x = torch.randn(4, 64, 128)
    model.eval()
    with torch.no_grad():
        plain = model(x).logits
    set_head_dropout(model, 0.5)
    assert list(model.state_dict()) == keys  # checkpoints, resume and export unchanged
    with torch.no_grad():
        assert torch.equal(model(x).logits, plain)  # evaluation: the identity
        model.train()
        torch.manual_seed(0)
        a = model(x).logits
        torch.manual_seed(1)
        b = model(x).logits
        assert not torch.allclose(a, b)  # training: a different mask each step
        set_head_dropout(model, 0.0)  # off again: the hook is gone, training is deterministic
        assert torch.equal(model(x).logits, model(x).logits)


@pytest.mark.slow
def test_frozen_run_with_mixup_keeps_its_activation_cache(tmp_path, tiny_ast, small_dataset):
    from astapp.training.pipeline import train

    over = {"mode": "frozen", "epochs": 2, "head_dropout": 0.2, "augment": {"mixup": 0.5}}
    first = train(cfg_for(tmp_path / "a", tiny_ast, small_dataset, **over))
    assert first.state == "finished" and first.metrics["cached"] is True
    again = train(cfg_for(tmp_path / "b", tiny_ast, small_dataset, **over))
    assert again.metrics["f1_macro"] == first.metrics["f1_macro"]  # same settings, same score
