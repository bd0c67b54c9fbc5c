"""Assemble the `transformers.Trainer` for a run: its arguments, callbacks, loss weights and logging.

Kept apart from the pipeline (`astapp.training.pipeline`) so the stages read as a recipe and this reads as the
Trainer's wiring. `training_args` must come first in a run: it sets up the process group under
torchrun / accelerate / MPI and so tells the pipeline its rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astapp.core import runfolder
from astapp.core.config import TrainConfig, launch_world
from astapp.core.events import EventSink

if TYPE_CHECKING:  # torch and transformers load only when a run builds its Trainer
    from torch import nn
    from torch.utils.data import Dataset

    from astapp.training.trainer_utils import ArrayDataset, BestKeeper, Collator, EventCallback, StopCallback


@dataclass
class TrainingData:
    """What the pipeline's feature stage hands the Trainer: per mode and augmentation, the datasets, the
    collators and the module that is trained."""

    train: Dataset  # ArrayDataset (features or cached activations) or WaveDataset (augmented waveforms)
    val: ArrayDataset  # its `labels` are the validation targets (ids, or 0/1 rows when multi-label)
    collator: Collator  # training batches: waveform augmentation, fbank, SpecAugment, mixup
    eval_collator: Collator
    module: nn.Module  # the model, or its LoRA / head-only / top-layers wrapper
    message: str  # what is trained, as the training stage says it
    cached: bool = False  # the frozen layers ran once per clip (`astapp.training.fastmodes`)
    one_off: dict[str, Any] = field(default_factory=dict)  # how that one-off pass ran (for metrics.json)


@dataclass
class Callbacks:
    """The run's own Trainer callbacks, in the order the Trainer calls them."""

    events: EventCallback  # streams log and eval events
    best: BestKeeper  # keeps (and restores) the best weights; early stopping
    stop: StopCallback  # a graceful stop when asked

    def all(self) -> list[Any]:
        return [self.events, self.best, self.stop]


def training_args(cfg: TrainConfig, run: Path, cuda: bool, precision: str):
    """TrainingArguments for the run: evaluate and checkpoint every epoch, keep one checkpoint."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(run / runfolder.CHECKPOINTS), num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear", eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
        logging_strategy="steps", logging_steps=1, report_to=[], seed=cfg.seed, data_seed=cfg.seed,
        use_cpu=not cuda, bf16=precision == "bf16" and cuda, fp16=precision == "fp16",
        ddp_backend="gloo" if launch_world() > 1 and not cuda else None, ddp_find_unused_parameters=False,
        remove_unused_columns=False, label_names=["labels"], disable_tqdm=True,
        dataloader_num_workers=0, dataloader_pin_memory=cuda, save_only_model=False,
        optim="adamw_torch_fused",  # one kernel over all parameters: 3.5x faster AdamW step on CPU (BENCHMARKS §8)
    )


def build_trainer(cfg: TrainConfig, args: Any, data: TrainingData, labels: list[str], train_labels: Any,
                  emit: EventSink, stop: Any, run: Path, is_main: bool, cpu_bf16: bool) -> tuple[Any, Callbacks]:
    """The Trainer over `data` (from the pipeline's feature stage) and its callbacks. `train_labels`: class
    ids, or 0/1 rows when multi-label."""
    import numpy as np
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from astapp.evaluation.metrics import make_compute_metrics
    from astapp.evaluation.multilabel import make_compute_metrics as multi_label_metrics
    from astapp.training.trainer_utils import (
        AstTrainer,
        BestKeeper,
        EventCallback,
        StopCallback,
        class_weights,
    )

    multi = np.ndim(train_labels) == 2  # multi-label: 0/1 rows; picked by mAP, BCE, no class weights
    global_batch = cfg.batch_size * max(args.world_size, 1) * args.gradient_accumulation_steps
    steps = max(1, -(-len(train_labels) // global_batch)) * cfg.epochs
    args.logging_steps = max(1, min(50, round(steps / 100)))
    cbs = Callbacks(events=EventCallback(emit, global_batch),
                    best=BestKeeper(data.module, "map" if multi else cfg.metric, cfg.early_stopping,
                                    save_dir=run / runfolder.BEST if is_main else None),
                    stop=StopCallback(stop))
    trainer = AstTrainer(
        model=data.module, args=args, train_dataset=data.train, eval_dataset=data.val,
        data_collator=data.collator, eval_collator=data.eval_collator,
        compute_metrics=multi_label_metrics() if multi else make_compute_metrics(len(labels)),
        callbacks=cbs.all(), multi_label=multi,
        class_weights=class_weights(train_labels, len(labels)) if cfg.class_weighted and not multi else None,
        cpu_bf16=cpu_bf16)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    tb = _tensorboard(run / runfolder.TENSORBOARD) if is_main else None
    if tb is not None:
        trainer.add_callback(tb)
    return trainer, cbs


def _tensorboard(log_dir: Path):
    """A TensorBoard callback writing into the run folder, or None when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback
    except ImportError:
        return None
    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))
