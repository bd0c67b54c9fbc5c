"""The FLOP counter behind every benchmark's MFU: a hand count for a tiny config, and torch's own
FlopCounterMode on the real model's forward."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import ASTConfig, ASTForAudioClassification

from astapp.model.loading import flops_breakdown, model_flops_per_sample, pass_flops

TINY = dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
            max_length=36, num_labels=3)


def test_flop_count_matches_a_hand_count_for_a_tiny_config():
    cfg = ASTConfig(**TINY)
    # 128 mel bins, patch 16, strides 10: f = (128-16)//10+1 = 12, t = (36-16)//10+1 = 3 -> 36 patches, 38 tokens
    hand = {
        "patch_embedding": 2 * 36 * 8 * 16 * 16,  # 147,456
        "qkv": 2 * (2 * 38 * 8 * 24),             # 2 layers x 14,592
        "attention_scores": 2 * (2 * 38 * 38 * 8),
        "attention_values": 2 * (2 * 38 * 38 * 8),
        "attention_out": 2 * (2 * 38 * 8 * 8),
        "mlp": 2 * (2 * 38 * 2 * 8 * 16),
        "head": 2 * 8 * 3,
    }
    assert flops_breakdown(cfg) == hand
    total = sum(hand.values())
    assert total == 147_456 + 2 * (14_592 + 23_104 + 23_104 + 4_864 + 19_456) + 48
    assert model_flops_per_sample(cfg, training=False) == total
    assert model_flops_per_sample(cfg, training=True) == 3 * total
    layers = total - hand["patch_embedding"] - hand["head"]
    assert pass_flops(cfg) == hand["patch_embedding"] + layers  # frozen: everything but the head
    assert pass_flops(cfg, frozen_layers=1) == hand["patch_embedding"] + layers / 2  # last-1 of 2 layers
    # a longer input: 56 frames -> t = 5, 60 patches, 62 tokens; the quadratic part grows with tokens^2
    assert flops_breakdown(cfg, 56)["attention_scores"] == 2 * (2 * 62 * 62 * 8)


def test_flop_count_equals_torchs_count_of_the_real_forward():
    cfg = ASTConfig(**TINY)
    cfg._attn_implementation = "eager"  # FlopCounterMode does not count CPU SDPA kernels; eager is plain matmuls
    model = ASTForAudioClassification(cfg).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_values=torch.randn(4, 36, 128))
    assert counter.get_total_flops() == 4 * model_flops_per_sample(cfg, training=False)
