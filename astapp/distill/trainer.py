"""The distillation Trainer: the training pipeline's AstTrainer with the teacher's soft targets as the loss.

The teacher runs on exactly the batch the student sees (after waveform augmentation and SpecAugment), so
the student learns the teacher's function on augmented and unlabeled audio, not only on the clean clips
("function matching"). Single-label: KL divergence at temperature T (scaled by T², Hinton et al.) plus the
hard-label cross-entropy where a clip has a label; multi-label: BCE on the teacher's probabilities plus BCE
on the 0/1 rows. Unlabeled items carry label -1 (a row of -1 when multi-label) and get the soft term only.

Mixup (when the run's settings have it) mixes the batch before the teacher sees it, so the soft target is the
teacher's prediction on the mixed input; the hard labels are mixed alike, and a mix with an unlabeled item has
no hard label. Every random draw of a batch (waveform augmentation, SpecAugment, mixup) is seeded by the
batch's number, which a resumed run knows from its checkpoint: a distillation stopped (a ZeroGPU slice, a time
limit, Stop) and resumed ends with the same student as one run in one go.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.trainer_callback import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from astapp.core.fsutil import atomic_write_text
from astapp.training.trainer_utils import AstTrainer, Collator

TEMPERATURE = 2.0
SOFT_WEIGHT = 0.7  # share of the soft (teacher) term; the rest is the hard labels
SOFT_LOSSES = "soft_losses.json"  # in each checkpoint: the teacher term per step so far


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
        if labels.dim() == 2:  # mixed one-hot rows (mixup); a row of -1 has no hard label
            known = (labels >= 0).all(dim=-1)
            hard = (-(labels[known].float() * F.log_softmax(student[known], dim=-1)).sum(-1).mean() if known.any()
                    else student.sum() * 0.0)
            return soft_weight * soft + (1.0 - soft_weight) * hard
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

    def _save_checkpoint(self, model, trial):
        """The checkpoint, plus the teacher-term losses so far (a resumed run reports the whole curve)."""
        super()._save_checkpoint(model, trial)
        folder = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if folder.is_dir() and self.args.should_save:
            atomic_write_text(folder / SOFT_LOSSES, json.dumps(self.soft_losses))

    def load_soft_losses(self, checkpoint: Path) -> None:
        path = Path(checkpoint) / SOFT_LOSSES
        self.soft_losses = list(json.loads(path.read_text())) if path.is_file() else []


class DistillCollator(Collator):
    """The training Collator with draws seeded per batch number and mixup that keeps unlabeled items unlabeled.

    Why per batch: the Trainer skips the batches a resumed epoch already trained without collating them, so
    a generator that runs on from the start would hand the resumed batches other masks than the first run
    gave them; `BatchNumber` sets `batches` from the checkpoint's step.
    """

    def __init__(self, num_labels: int, fbank: Any = None, augment: Any = None, freq_mask: int = 0,
                 time_mask: int = 0, mixup: float = 0.0, seed: int = 0):
        super().__init__(num_labels, fbank=fbank, augment=augment, freq_mask=freq_mask, time_mask=time_mask,
                         mixup=0.0, seed=seed)
        self.mix = float(mixup)
        self.batches = 0  # training batches collated so far (the next batch's number)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch_seed = (self.seed * 1_000_003 + self.batches) % 2**63
        self.batches += 1
        self.generator = torch.Generator().manual_seed(batch_seed)
        if self.augment is not None:
            self.augment.reseed(batch_seed)
        out = super().__call__(items)
        return self.mixed(out) if self.mix > 0 else out

    def mixed(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mixup on features and labels; an extra "labelled" column, mixed alike, stays 1 only where both
        partners had labels, and the other rows become -1 (no hard label; the teacher term still applies)."""
        from astapp.features.augment import mixup

        labels = batch["labels"]
        rows = labels.float() if labels.dim() == 2 else F.one_hot(labels.clamp(min=0), self.num_labels).float()
        known = (labels >= 0).all(dim=-1) if labels.dim() == 2 else labels >= 0
        rows = torch.cat([rows * known[:, None], known[:, None].float()], dim=1)
        feats, mixed = mixup(batch["input_values"], rows, self.mix, generator=self.generator)
        labelled = mixed[:, -1] > 1.0 - 1e-6
        targets = torch.where(labelled[:, None], mixed[:, :-1], torch.full_like(mixed[:, :-1], -1.0))
        return {"input_values": feats, "labels": targets}


class BatchNumber(TrainerCallback):
    """Tells the DistillCollator which batch comes next when training (re)starts: the checkpoint's step."""

    def __init__(self, collator: DistillCollator):
        self.collator = collator

    def on_train_begin(self, args, state, control, **kwargs):
        self.collator.batches = int(state.global_step) * int(args.gradient_accumulation_steps)


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
