"""The training collator's feature-level augmentation (SpecAugment then mixup) on a batch."""

from __future__ import annotations

import torch

from astapp.training.trainer_utils import Collator


def test_collator_feature_augmentation_off_and_on():
    feats = torch.randn(4, 32, 128) + 3  # no zeros but the masks'
    items = [{"input_values": feats[i], "labels": i} for i in range(4)]
    plain = Collator(4)(items)  # off (evaluation, or no masks and no mixup): the batch as it is
    assert torch.equal(plain["input_values"], feats) and plain["labels"].tolist() == [0, 1, 2, 3]
    on = Collator(4, freq_mask=8, time_mask=8, mixup=0.5, seed=0)(items)
    x, y = on["input_values"], on["labels"]
    assert x.shape == (4, 32, 128) and y.shape == (4, 4) and (x == 0).any()  # masked, soft one-hot labels
