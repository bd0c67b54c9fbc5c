"""The distillation Trainer: the training pipeline's AstTrainer with the teacher's soft targets as the loss.

The teacher runs on exactly the batch the student sees (after waveform augmentation and SpecAugment), so
the student learns the teacher's function on augmented and unlabeled audio, not only on the clean clips
("function matching"). Single-label: KL divergence at temperature T (scaled by T², Hinton et al.) plus the
hard-label cross-entropy where a clip has a label; multi-label: BCE on the teacher's probabilities plus BCE
on the 0/1 rows. Unlabeled items carry label -1 (a row of -1 when multi-label) and get the soft term only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from astapp.training.trainer_utils import AstTrainer

TEMPERATURE = 2.0
SOFT_WEIGHT = 0.7  # share of the soft (teacher) term; the rest is the hard labels


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, multi_label: bool,
                 temperature: float = TEMPERATURE, soft_weight: float = SOFT_WEIGHT) -> torch.Tensor:
    """soft_weight x (teacher term) + (1 - soft_weight) x (hard-label term over the labelled items)."""
    student, teacher = student.float(), teacher.float().detach()
    labels = labels.to(student.device)
    if multi_label:
        soft = F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher))
        known = (labels >= 0).all(dim=-1)
        hard = (F.binary_cross_entropy_with_logits(student[known], labels[known].float()) if known.any()
                else student.sum() * 0.0)
    else:
        t = temperature
        soft = F.kl_div(F.log_softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1),
                        reduction="batchmean") * t * t
        known = labels >= 0
        hard = F.cross_entropy(student[known], labels[known].long()) if known.any() else student.sum() * 0.0
    return soft_weight * soft + (1.0 - soft_weight) * hard


class DistillTrainer(AstTrainer):
    """AstTrainer whose loss is `distill_loss` against a frozen teacher on the same inputs."""

    def __init__(self, *args: Any, teacher: torch.nn.Module, temperature: float = TEMPERATURE,
                 soft_weight: float = SOFT_WEIGHT, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.temperature, self.soft_weight = temperature, soft_weight
        self.soft_losses: list[float] = []  # the teacher term per training step: it must fall

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        with torch.no_grad():
            teacher_logits = self.teacher(**inputs).logits
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cpu_bf16 and model.training):
            outputs = model(**inputs)
        loss = distill_loss(outputs["logits"], teacher_logits, labels, self.multi_label, self.temperature,
                            self.soft_weight)
        if model.training:
            with torch.no_grad():
                only_soft = distill_loss(outputs["logits"], teacher_logits, labels, self.multi_label,
                                         self.temperature, 1.0)
            self.soft_losses.append(float(only_soft))
        return (loss, outputs) if return_outputs else loss


class PoolDataset(torch.utils.data.Dataset):
    """Unlabeled windows (rows of `astapp.distill.pool`'s float32 file) as waveform items with label -1 (a row
    of -1 when multi-label). The file is opened on first use, so a DataLoader worker opens its own memmap
    instead of receiving a pickled copy of all the audio."""

    def __init__(self, path: str, shape: tuple[int, int], num_labels: int, multi_label: bool):
        self.path, self.shape = str(path), (int(shape[0]), int(shape[1]))
        self.label: Any = np.full(num_labels, -1.0, np.float32) if multi_label else -1
        self._windows: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_windows": None}

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._windows is None:
            self._windows = np.memmap(self.path, dtype=np.float32, mode="r", shape=self.shape)
        return {"audio": np.array(self._windows[int(i)], dtype=np.float32), "labels": self.label}
