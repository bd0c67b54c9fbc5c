"""Pieces `train.py` plugs into `transformers.Trainer`: datasets, collators, loss, weight loading, callbacks
(best weights, graceful stop, events).

Why a Trainer subclass: transformers 5.x resumes (and restores "best" models) with
`load_state_dict(strict=False)` on `save_pretrained`'s legacy AST key names, so the encoder silently
keeps its current weights (upstream #43701, #40187). `AstTrainer._load_from_checkpoint` goes through
`from_pretrained` (which maps the names) and loads strictly; best weights are kept by `BestKeeper`,
never by `load_best_model_at_end`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback

from astapp.core.config import SAMPLE_RATE
from astapp.core.errors import TrainingError
from astapp.core.events import EventSink, make_event
from astapp.core.fsutil import atomic_dir, atomic_write_text

log = logging.getLogger(__name__)


# --- datasets -----------------------------------------------------------------------------------
class ArrayDataset(torch.utils.data.Dataset):
    """Rows of precomputed inputs (a FeatureCache, or a numpy array/memmap) with integer labels, or with
    (rows, labels) 0/1 targets for multi-label."""

    def __init__(self, inputs: Any, labels: Sequence[int] | np.ndarray):
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs = inputs
        self.labels = labels if np.ndim(labels) == 2 else [int(x) for x in labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.inputs[i]
        x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, dtype=np.float32))
        return {"input_values": x, "labels": self.labels[i]}


class WaveDataset(torch.utils.data.Dataset):
    """Raw waveforms for augmentation in the collator (reads the Arrow `audio` column lazily)."""

    def __init__(self, hf_split: Any, targets: np.ndarray | None = None):
        self.ds = hf_split.select_columns(["audio", "label"]).with_format("numpy")
        self.targets = targets  # multi-label: the split's 0/1 rows

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.ds[int(i)]
        return {"audio": np.asarray(row["audio"], dtype=np.float32),
                "labels": int(row["label"]) if self.targets is None else self.targets[int(i)]}


class Collator:
    """Batches items; in training also augments waveforms, computes fbank, SpecAugment and mixup.

    Everything random draws from one seeded generator (and numpy's seeded global state for
    audiomentations), so runs are reproducible.
    """

    def __init__(self, num_labels: int, fbank: Any = None, augment: Callable | None = None,
                 freq_mask: int = 0, time_mask: int = 0, mixup: float = 0.0, seed: int = 0):
        self.num_labels = num_labels
        self.fbank = fbank
        self.augment = augment
        self.freq_mask, self.time_mask, self.mixup = freq_mask, time_mask, mixup
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._worker_seed: int | None = None

    def _follow_worker(self) -> None:
        """In a DataLoader worker, draw from a stream of its own (else workers repeat each other)."""
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self.generator = torch.Generator().manual_seed((self.seed * 1_000_003 + info.seed) % 2**63)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        self._follow_worker()
        first = items[0]["labels"]
        labels = (torch.as_tensor(np.stack([it["labels"] for it in items]), dtype=torch.float32)
                  if np.ndim(first) == 1 else torch.tensor([it["labels"] for it in items], dtype=torch.long))
        if "audio" in items[0]:
            wavs = [it["audio"] for it in items]
            if self.augment is not None:
                wavs = [np.asarray(self.augment(w, SAMPLE_RATE), dtype=np.float32) for w in wavs]
            feats = self.fbank(wavs)
        else:
            feats = torch.stack([it["input_values"] for it in items])
        if self.freq_mask or self.time_mask:
            from astapp.features.augment import spec_augment

            feats = spec_augment(feats, self.freq_mask, self.time_mask, generator=self.generator)
        if self.mixup > 0:
            from astapp.features.augment import mixup

            onehot = labels if labels.dim() == 2 else F.one_hot(labels, self.num_labels).float()  # multi-hot as is
            feats, soft = mixup(feats, onehot, self.mixup, generator=self.generator)
            return {"input_values": feats, "labels": soft}
        return {"input_values": feats, "labels": labels}


# --- loss -----------------------------------------------------------------------------------------
def class_weights(labels: Sequence[int], num_labels: int) -> torch.Tensor:
    """Inverse class frequency, normalised so a balanced set gets weight 1 everywhere."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels).astype(np.float64)
    weights = len(labels) / (num_labels * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor,
                        weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy for hard (B,) or soft (B, C) targets, optionally class-weighted (weighted mean)."""
    logits = logits.float()
    w = weights.to(logits.device) if weights is not None else None
    if labels.dim() == 1:
        return F.cross_entropy(logits, labels.to(logits.device).long(), weight=w)
    targets = labels.to(logits.device, torch.float32)
    per_item = -(targets * F.log_softmax(logits, dim=-1)).sum(-1)
    if w is None:
        return per_item.mean()
    item_w = targets @ w
    return (per_item * item_w).sum() / item_w.sum().clamp_min(1e-12)


def load_weights(model: nn.Module, checkpoint: str | Path) -> None:
    """Load a checkpoint's weights into `model` strictly.

    A PreTrainedModel goes through `from_pretrained` (maps the legacy AST key names); a plain module
    (a fast-mode wrapper) reads its own safetensors state dict. Any missing/unexpected key is an error.
    """
    checkpoint = Path(checkpoint)
    try:
        if isinstance(model, PreTrainedModel):
            loaded = type(model).from_pretrained(checkpoint, dtype=torch.float32)
            state = loaded.state_dict()
        else:
            from safetensors.torch import load_file

            state = load_file(str(checkpoint / "model.safetensors"), device="cpu")
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise TrainingError(f"Could not resume from {checkpoint}: its weights do not fit this model ({e}). "
                            "Resume with the same model, mode and input length as the original run.") from e


class AstTrainer(Trainer):
    """Trainer with our loss (soft labels, class weights) and strict, name-mapped checkpoint loading."""

    def __init__(self, *args: Any, class_weights: torch.Tensor | None = None,
                 eval_collator: Callable | None = None, cpu_bf16: bool = False, multi_label: bool = False,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.multi_label = multi_label  # BCE over independent labels instead of cross-entropy
        # bf16 autocast for CPU training steps only: evaluation stays fp32, so logged metrics, the
        # best-epoch restore and the exported (fp32) model all agree exactly.
        self.cpu_bf16 = cpu_bf16
        self.eval_collator = eval_collator  # evaluation never augments
        self.loss_is_scaled_for_ga = False  # our loss is a per-batch mean

    def _get_dataloader(self, dataset, description, batch_size, sampler_fn=None, is_training=False,
                        dataloader_key=None):
        saved = self.data_collator
        if not is_training and self.eval_collator is not None:
            self.data_collator = self.eval_collator
        try:
            return super()._get_dataloader(dataset, description, batch_size, sampler_fn=sampler_fn,
                                           is_training=is_training, dataloader_key=dataloader_key)
        finally:
            self.data_collator = saved

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cpu_bf16 and model.training):
            outputs = model(**inputs)
        if self.multi_label:
            from astapp.evaluation.multilabel import bce_loss

            loss = bce_loss(outputs["logits"], labels)
        else:
            loss = classification_loss(outputs["logits"].float(), labels, self.class_weights)
        return (loss, outputs) if return_outputs else loss

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        load_weights(model if model is not None else self.model, resume_from_checkpoint)


# --- callbacks ------------------------------------------------------------------------------------
def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class BestKeeper(TrainerCallback):
    """Keeps the best evaluation's weights (same key names, restored strictly) and does early stopping.

    A tie on the selection metric goes to the lower validation loss, then to the later epoch: accuracy
    saturates early on small validation sets (1.0 from epoch 2 while the loss still falls from 0.66 to
    0.21), and keeping the first of equals kept an undertrained model. `best["why"]` says which rule
    chose the epoch. With `save_dir` (rank 0 only) the best weights and their record are also written
    there, so a resumed run still knows its best epoch.
    """

    def __init__(self, module: nn.Module, metric: str = "accuracy", patience: int = 0,
                 save_dir: Path | None = None):
        self.module = module
        self.metric = metric
        self.greater = metric != "loss"
        self.patience = patience
        self.save_dir = save_dir
        self.best: dict[str, Any] | None = None  # {"value", "epoch", "step", "metrics"}
        self.state: dict[str, torch.Tensor] | None = None
        self.bad_evals = 0
        self.early_stopped = False

    def load(self, folder: Path) -> bool:
        """Pick up a previous best from `folder` (resume); True when found and loadable."""
        record, weights = folder / "best.json", folder / "model.safetensors"
        if not (record.is_file() and weights.is_file()):
            return False
        from safetensors.torch import load_file

        state = load_file(str(weights), device="cpu")
        if set(state) != set(self.module.state_dict()):
            return False
        self.best, self.state = json.loads(record.read_text(encoding="utf-8")), state
        patience = folder / "patience.json"  # evaluations since the best one: early stopping resumes too
        self.bad_evals = int(json.loads(patience.read_text())["bad_evals"]) if patience.is_file() else 0
        return True

    def improved(self, value: float, loss: float | None = None) -> str | None:
        """Why this evaluation beats the best so far (a short phrase), or None when it does not."""
        if self.best is None:
            return f"{'highest' if self.greater else 'lowest'} {self.metric}"
        old = self.best["value"]
        if value != old:
            better = value > old if self.greater else value < old
            return f"{'highest' if self.greater else 'lowest'} {self.metric}" if better else None
        old_loss = self.best.get("metrics", {}).get("loss")
        if self.metric != "loss" and loss is not None and old_loss is not None and loss != old_loss:
            return f"tied on {self.metric}, lower validation loss" if loss < old_loss else None
        return f"tied on {self.metric}, the later epoch"

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(f"eval_{self.metric}")
        if value is None:
            return
        loss = metrics.get("eval_loss")
        strictly = self.best is None or (value > self.best["value"] if self.greater else value < self.best["value"])
        why = self.improved(float(value), None if loss is None else float(loss))
        # patience counts evaluations since the metric last improved: a tie keeps the later weights (above)
        # but is no progress, so a plateau still stops early
        self.bad_evals = 0 if strictly else self.bad_evals + 1
        if why:
            self.best = {"value": float(value), "epoch": state.epoch, "step": state.global_step, "why": why,
                         "metrics": {k[5:]: v for k, v in metrics.items() if k.startswith("eval_")}}
            self.state = _cpu_state(self.module)
            if self.save_dir is not None:
                self._save()
        if self.bad_evals and self.save_dir is not None and self.save_dir.is_dir():
            atomic_write_text(self.save_dir / "patience.json", json.dumps({"bad_evals": self.bad_evals}))
        if self.patience and self.bad_evals >= self.patience:
            self.early_stopped = True
            control.should_training_stop = True

    def _save(self) -> None:
        from safetensors.torch import save_file

        with atomic_dir(self.save_dir) as tmp:
            save_file({k: v.contiguous() for k, v in self.state.items()}, str(tmp / "model.safetensors"))
            atomic_write_text(tmp / "best.json", json.dumps(self.best, default=float))

    def restore(self) -> bool:
        """Load the best weights into the module (strict); False when there was no evaluation yet."""
        if self.state is None:
            return False
        self.module.load_state_dict(self.state, strict=True)
        return True


class StopCallback(TrainerCallback):
    """Graceful stop: after the current step, save one checkpoint; evaluate only if that step completed an
    epoch (its evaluation belongs to it: a resumed run starts the next epoch and would never make it up).

    Under DDP the request is all-reduced every step so every rank stops at the same step.
    """

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.stopped = False

    def _requested(self, args) -> bool:
        flag = self.stop.is_set()
        if torch.distributed.is_available() and torch.distributed.is_initialized() and args.world_size > 1:
            t = torch.tensor([1.0 if flag else 0.0], device=args.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag

    def on_step_end(self, args, state, control, **kwargs):
        if self._requested(args):
            self.stopped = True
            control.should_training_stop = True
            control.should_evaluate = False
            control.should_save = False  # saved once at the epoch end below

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped:
            epoch = float(state.epoch or 0.0)
            if abs(epoch - round(epoch)) > 1e-6:  # stopped mid-epoch: no evaluation, stop promptly
                control.should_evaluate = False
            control.should_save = True


class EventCallback(TrainerCallback):
    """Turns Trainer logs and evaluations into `log` and `eval` events.

    `batch_size` is the global batch (per-device x processes x accumulation), for samples/s.
    """

    def __init__(self, sink: EventSink, batch_size: int):
        self.sink = sink
        self.batch_size = batch_size
        self.start = time.time()
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()
        self.start_step = state.global_step

    def _timing(self, state) -> dict[str, float]:
        elapsed = time.time() - self.start
        done = state.global_step - self.start_step
        left = max(state.max_steps - state.global_step, 0)
        eta = elapsed / done * left if done > 0 else None
        return {"elapsed": elapsed, "eta": eta,
                "progress": state.global_step / state.max_steps if state.max_steps else 0.0,
                "samples_per_second": done * self.batch_size / elapsed if elapsed > 0 and done else None}

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        self.sink(make_event("log", step=state.global_step, max_steps=state.max_steps, epoch=state.epoch,
                             loss=logs.get("loss"), lr=logs.get("learning_rate"),
                             grad_norm=logs.get("grad_norm"), **self._timing(state)))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        fields = {k[len("eval_"):]: v for k, v in metrics.items()
                  if k.startswith("eval_") and isinstance(v, (int, float))
                  and k not in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")}
        self.sink(make_event("eval", epoch=state.epoch, step=state.global_step, **fields))
