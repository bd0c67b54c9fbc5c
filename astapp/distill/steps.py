"""The steps of a distillation, in order: teacher, dataset, student, unlabeled pool, training, evaluation,
export (with the unknown score refitted on the student) and the teacher-vs-student table.

`run_steps(job)` takes the run's `astapp.distill.run` state (its config, folder, stages and writers), so this
module reads as the recipe and that one as the run's bookkeeping.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from astapp.core import runfolder
from astapp.core.events import make_event
from astapp.core.fsutil import atomic_write_text
from astapp.core.runfolder import RunResult
from astapp.training.pipeline import cache_root
from astapp.training.validation import evaluate_validation


def run_steps(job: Any) -> RunResult:
    from transformers import ASTForAudioClassification

    from astapp.model.folder import export_model
    from astapp.predict.settings import read_settings
    from astapp.training.devices import resolve_precision, use_cuda
    from astapp.training.trainer import training_args

    cfg = job.cfg
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    teacher = job.teacher()
    bundle = dataset(job)
    labels = list(bundle.labels)
    settings = read_settings(teacher.model_dir)
    max_length, mean, std = settings.max_length, settings.mean, settings.std
    teacher_model = ASTForAudioClassification.from_pretrained(teacher.model_dir, dtype=torch.float32).eval()
    student = job.student(teacher_model, labels)
    cuda = use_cuda(cfg.device)
    precision = resolve_precision(cfg.precision, cuda)
    args = training_args(cfg, job.run, cuda, precision)  # a checkpoint per epoch and at a stop: resumable
    checkpoint = runfolder.resume_checkpoint(job.run, cfg.resume)
    prep = prepared(job, bundle, student, max_length, mean, std)
    trainer, cbs = build(job, args, prep, teacher_model, precision == "bf16" and not cuda)
    message = prep.message
    if checkpoint is not None:
        cbs.best.load(job.run / runfolder.BEST)
        trainer.load_soft_losses(checkpoint)
        message += f" Resuming from {checkpoint.name}."
    job.stages.stage("training", message, mode="distill", cached=False, num_train=prep.num_train,
                     num_validation=len(prep.val_split))
    t_train = time.time()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.time() - t_train
    restored = cbs.best.restore()
    metrics = evaluate_validation(trainer, prep.val, labels, prep.val_split)
    metrics.update(run_facts(job, trainer, cbs, prep, restored, train_seconds, teacher))
    metrics["resumed_from"] = str(checkpoint) if checkpoint else None
    metrics["soft_loss_first"], metrics["soft_loss_last"] = soft_loss_ends(trainer.soft_losses)
    job.stages.stage("exporting", "Saving the student")
    model_dir = export_model(student, labels, max_length, mean, std, job.run / runfolder.MODEL,
                             extra=job.export_extra(metrics, teacher))
    from astapp.training.embed import fit_unknown

    metrics["unknown"] = fit_unknown(student, prep, cache_root(cfg) / "features", cfg, model_dir)
    comparison = compare_models(job, teacher, teacher_model, student, prep, metrics)
    metrics["distill"] = {k: comparison[k] for k in ("agreement", "agreement_where_teacher_right", "speedup",
                                                      "size_ratio") if k in comparison}
    metrics["total_seconds"] = time.time() - job.t0
    stopped = cbs.stop.stopped
    job.stages.stage("done", "Finished" if not stopped else "Stopped; the best student so far was saved")
    metrics["stage_seconds"] = dict(job.stages.seconds)
    job.write_comparison(comparison)
    job.write_metrics(metrics)
    return RunResult(job.run, "stopped" if stopped else "finished", metrics, model_dir, metrics["best_epoch"],
                     None, student, cfg)


def dataset(job: Any) -> Any:
    """The teacher's dataset and split (same settings, so the same cached split), its report, its noise."""
    from astapp.data.dataset import build_dataset
    from astapp.features.noise import noise_for_run

    cfg = job.cfg
    job.stages.stage("dataset", "Reading the teacher's dataset")
    bundle = build_dataset(cfg.data, cache_root(cfg), cfg.audio, cfg.val_split, cfg.seed,
                           progress=job.stages.progress("dataset"), val_fold=cfg.val_fold,
                           multi_label=cfg.multi_label)
    atomic_write_text(job.run / runfolder.REPORT, json.dumps(bundle.report.to_dict(), indent=2, ensure_ascii=False))
    job.cfg = noise_for_run(cfg, bundle.noise, job.run, cache_root(cfg), True,
                            lambda m: job.emit(make_event("log", message=m)))
    return bundle


def prepared(job: Any, bundle: Any, student: Any, max_length: int, mean: float, std: float) -> Any:
    """What training and the end-of-run fits need: the training items (labelled clips, then unlabeled
    windows), the validation features, collators and the split (shaped like the pipeline's `_Prepared`)."""
    from torch.utils.data import ConcatDataset

    from astapp.distill.trainer import DistillCollator
    from astapp.features.augment import build_augment
    from astapp.features.cache import FeatureCache
    from astapp.features.fbank import Fbank
    from astapp.training.trainer_utils import ArrayDataset, Collator, WaveDataset

    cfg = job.cfg
    train_split, val_split = bundle.dataset["train"], bundle.dataset["validation"]
    targets = bundle.targets
    train_labels: Any = targets["train"] if targets else [int(x) for x in train_split["label"]]
    val_labels: Any = targets["validation"] if targets else [int(x) for x in val_split["label"]]
    fbank = Fbank(max_length, mean, std)
    job.stages.stage("features", "Computing the validation features")
    val_feats = FeatureCache(cache_root(cfg) / "features", fbank, val_split, progress=job.stages.progress("features"))
    items: Any = WaveDataset(train_split, targets["train"] if targets else None)
    message = f"Distilling on {len(train_split)} labelled clips"
    pool_summary = None
    source = unlabeled_source(job, bundle)
    if source:
        from astapp.distill.pool import build_pool
        from astapp.distill.trainer import PoolDataset

        named = cfg.pool if cfg.pool else f"(the dataset's {len(source)} background-noise clips)"
        job.stages.stage("pool", f"Cutting the unlabeled audio {named} into {max_length / 100:.2f} s windows")
        pool = build_pool(source, max_length, job.run / runfolder.POOLCACHE)
        pool_summary = pool.summary()
        for skipped in pool.skipped:
            job.emit(make_event("warning", message=f"Skipped unlabeled file {skipped['path']}: {skipped['error']}"))
        items = ConcatDataset([items, PoolDataset(str(pool.windows.filename), pool.windows.shape,
                                                  len(bundle.labels), targets is not None)])
        message += f" and {len(pool.windows)} unlabeled windows from {pool.files} files"
    freq, time_mask = job.spec_masks(max_length)
    augment = build_augment(cfg.augment, seed=cfg.seed)
    collator = DistillCollator(len(bundle.labels), fbank=fbank, augment=augment, freq_mask=freq,
                               time_mask=time_mask, mixup=cfg.augment.mixup, seed=cfg.seed)
    message += (" with the teacher's augmentation" if augment is not None else "") + \
        f", SpecAugment ({freq} bins, {time_mask} frames)" + \
        (f", mixup (p={cfg.augment.mixup:g}; the teacher sees the mixed clips)" if cfg.augment.mixup > 0 else "") + \
        "; the student copies the teacher's soft probabilities."
    return SimpleNamespace(
        labels=list(bundle.labels), train_split=train_split, val_split=val_split, train_labels=train_labels,
        max_length=max_length, mean=mean, std=std, train=items, val=ArrayDataset(val_feats, val_labels),
        val_features=val_feats, collator=collator, eval_collator=Collator(len(bundle.labels)), message=message,
        num_train=len(items), pool=pool_summary, multi_label=targets is not None)


def unlabeled_source(job: Any, bundle: Any) -> Any:
    """The unlabeled audio: the given pool, else the dataset's background-noise clips (said in the log), else
    none. Noise is the sound the user's recordings sit in: the teacher's answers on it are free lessons."""
    if job.cfg.pool:
        return job.cfg.pool
    noise = list(bundle.noise or [])
    if noise:
        job.emit(make_event("log", message=f"No unlabeled audio was given: the dataset's {len(noise)} "
                                           "background-noise clips are used as unlabeled audio."))
    return noise or None


def build(job: Any, args: Any, prep: Any, teacher_model: Any, cpu_bf16: bool) -> tuple[Any, Any]:
    """The DistillTrainer and its callbacks (events, best student by the validation metric, stop)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from astapp.distill.trainer import BatchNumber, DistillTrainer
    from astapp.evaluation.metrics import make_compute_metrics
    from astapp.evaluation.multilabel import make_compute_metrics as multi_label_metrics
    from astapp.training.trainer import Callbacks
    from astapp.training.trainer_utils import BestKeeper, EventCallback, StopCallback

    cfg, multi = job.cfg, prep.multi_label
    steps = max(1, -(-prep.num_train // cfg.batch_size)) * cfg.epochs
    args.logging_steps = max(1, min(50, round(steps / 100)))
    cbs = Callbacks(events=EventCallback(job.emit, cfg.batch_size),
                    best=BestKeeper(job.student_model, "map" if multi else cfg.metric, 0,
                                    save_dir=job.run / runfolder.BEST),  # the best so far survives a stop
                    stop=StopCallback(job.stop))
    trainer = DistillTrainer(
        model=job.student_model, args=args, train_dataset=prep.train, eval_dataset=prep.val, data_collator=prep.collator,
        eval_collator=prep.eval_collator, compute_metrics=multi_label_metrics() if multi else
        make_compute_metrics(len(prep.labels)), callbacks=cbs.all(), multi_label=multi, cpu_bf16=cpu_bf16,
        teacher=teacher_model)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(BatchNumber(prep.collator))
    return trainer, cbs


def run_facts(job: Any, trainer: Any, cbs: Any, prep: Any, restored: bool, train_seconds: float,
              teacher: Any) -> dict[str, Any]:
    """The training facts a training run's metrics.json has, plus where the student came from."""
    cfg, best = job.cfg, cbs.best.best
    epochs = float(trainer.state.epoch or 0.0)
    return {
        "best_epoch": best["epoch"] if best else None, "best_step": best["step"] if best else None,
        "best_why": best.get("why") if best else None, "selection_metric": cbs.best.metric,
        "restored_best": restored, "epochs": epochs, "global_step": trainer.state.global_step,
        "train_seconds": train_seconds,
        "train_samples_per_second": prep.num_train * epochs / train_seconds if train_seconds else 0.0,
        "max_length": prep.max_length, "mean": prep.mean, "std": prep.std, "mode": "distill", "cached": False,
        "dataloader_workers": trainer.args.dataloader_num_workers, "model": cfg.model,
        "num_train": len(prep.train_split), "num_validation": len(prep.val_split), "early_stopped": False,
        "stopped": cbs.stop.stopped,
        "trainable_parameters": sum(p.numel() for p in job.student_model.parameters() if p.requires_grad),
        "distilled_from": str(teacher.run), "student": cfg.student, "pool": prep.pool,
        "teacher_train_seconds": teacher.metrics.get("train_seconds"),
        "teacher_accuracy": teacher.metrics.get("accuracy"),
    }


def soft_loss_ends(losses: list[float]) -> tuple[float | None, float | None]:
    """Mean teacher-term loss over the first and the last tenth of the steps (it must fall)."""
    if not losses:
        return None, None
    k = max(1, len(losses) // 10)
    return float(np.mean(losses[:k])), float(np.mean(losses[-k:]))


def compare_models(job: Any, teacher: Any, teacher_model: Any, student: Any, prep: Any,
                   metrics: dict[str, Any]) -> dict[str, Any]:
    """distill.json: the teacher-vs-student table on the validation clips, with the run facts around it."""
    from astapp.distill.compare import compare

    job.stages.stage("exporting", "Comparing the student with its teacher")
    labels = prep.labels
    t_th = teacher.metrics.get("thresholds") or {}
    s_th = metrics.get("thresholds") or {}
    doc = compare(teacher_model, student.eval(), prep.val_features, prep.val.labels, teacher.model_dir,
                  job.run / runfolder.MODEL, prep.multi_label,
                  [float(t_th.get(la, 0.5)) for la in labels] if t_th else None,
                  [float(s_th.get(la, 0.5)) for la in labels] if s_th else None)
    doc.update(teacher_run=str(teacher.run), student_size=job.cfg.student, pool=prep.pool,
               train_seconds=metrics["train_seconds"], teacher_train_seconds=teacher.metrics.get("train_seconds"))
    return doc
