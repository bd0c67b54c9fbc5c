"""Fused AdamW in the default path (issue 18): the engine's Trainer builds it, and it trains to the same
weights as torch's default (foreach) AdamW within float noise."""

from __future__ import annotations

import torch
from transformers import ASTConfig, ASTForAudioClassification, Trainer

from astapp.core.config import TrainConfig
from astapp.training.trainer import training_args


def test_engine_trainer_uses_fused_adamw(tmp_path):
    args = training_args(TrainConfig(output=str(tmp_path)), tmp_path, cuda=False, precision="fp32")
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    assert cls is torch.optim.AdamW and kwargs.get("fused") is True


def test_fused_adamw_matches_foreach_within_float_noise():
    """Stated tolerance (lr 1e-3, tiny AST): after one step every weight agrees to 1e-6; after five to 1e-4
    (measured 2.5e-5: Adam's m/sqrt(v) turns last-bit differences of near-zero gradients into lr-sized
    ones) and the losses to 1e-4 relative."""
    torch.manual_seed(0)
    cfg = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    max_length=32, num_labels=3)
    models = [ASTForAudioClassification(cfg) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [torch.optim.AdamW(models[0].parameters(), lr=1e-3, weight_decay=0.01, foreach=True),
            torch.optim.AdamW(models[1].parameters(), lr=1e-3, weight_decay=0.01, fused=True)]
    x, y = torch.randn(4, 32, 128), torch.tensor([0, 1, 2, 0])
    start = {k: v.clone() for k, v in models[0].state_dict().items()}

    def worst() -> float:
        a, b = models[0].state_dict(), models[1].state_dict()
        return max(float((a[k] - b[k]).abs().max()) for k in a)

    for step in range(5):
        losses = []
        for model, opt in zip(models, opts, strict=True):
            loss = torch.nn.functional.cross_entropy(model(input_values=x).logits, y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        assert abs(losses[0] - losses[1]) <= 1e-4 * abs(losses[0]), (step, losses)
        if step == 0:
            assert worst() <= 1e-6, worst()
    assert any(not torch.equal(v, start[k]) for k, v in models[0].state_dict().items()), "the steps trained"
    assert worst() <= 1e-4, worst()
