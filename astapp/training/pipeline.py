"""The training pipeline: dataset -> input length -> statistics -> model -> features -> Trainer -> export.

`train(cfg, events, stop)` writes the engine's files of the run folder `cfg.output/` (see
`astapp.core.runfolder`): report.json, history.jsonl (events), tb/, checkpoints/ (the latest, for resume),
best/ (best weights, while resumable), metrics.json and model/ (the export). It returns a `RunResult`
(with the resolved config) or raises; it never writes the run's status or config: that is the App
layer's `astapp.jobs.record.RunRecord`, which is also what the CLI and the job worker call.

Speed comes from not redoing work: clips are decoded once (Arrow), features are computed once into a
memmap when nothing augments waveforms, inputs are only as long as the clips need ("auto" length),
and the fast modes run the frozen part of the network once per clip (`astapp.training.fastmodes`). Under
torchrun / accelerate launch only rank 0 writes files, and builds caches before the other ranks read them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.core import runfolder
from astapp.core.config import SCALAR_METRICS, TrainConfig, launch_rank, launch_world
from astapp.core.errors import explain
from astapp.core.events import EventSink, JsonlSink, fanout, make_event
from astapp.core.fsutil import atomic_write_text
from astapp.core.runfolder import RunResult
from astapp.training.devices import resolve_precision, use_cuda
from astapp.training.embed import fit_unknown
from astapp.training.stages import Stages, Stopped
from astapp.training.trainer import TrainingData, build_trainer, training_args
from astapp.training.validation import evaluate_validation

log = logging.getLogger(__name__)


def clear_previous_run(run: Path) -> None:
    """A new (not resumed) run in a used folder starts clean: no old history mixed into the plots, no
    stale metrics, and no old checkpoint for a later `--resume latest` to pick up by mistake. The
    previous `model/` stays until the new export atomically replaces it."""
    for name in (runfolder.HISTORY, runfolder.METRICS, runfolder.REPORT):
        (run / name).unlink(missing_ok=True)
    for name in (runfolder.CHECKPOINTS, runfolder.BEST, runfolder.FASTCACHE, runfolder.TENSORBOARD, runfolder.ADAPTER):
        shutil.rmtree(run / name, ignore_errors=True)


def cache_root(cfg: TrainConfig) -> Path:
    """Where decoded datasets, features and statistics are cached: `ASTAPP_CACHE_DIR`, else `.cache` beside
    the run folder, which in the app is the owner's cache (`astapp.core.paths.owner_cache`)."""
    env = os.environ.get("ASTAPP_CACHE_DIR", "").strip()
    return Path(env) if env else Path(cfg.output).resolve().parent / ".cache"


def train(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None) -> RunResult:
    """Train per `cfg`, streaming events to `events`; `stop` asks for a graceful stop. See the module doc."""
    cfg.require_valid()
    return _Run(cfg, events, stop or threading.Event()).execute()


@dataclasses.dataclass
class _Prepared:
    """What the stages before training hand on: the split and its labels, the input length and statistics,
    the model and the Trainer's data."""

    labels: list[str]
    train_split: Any
    val_split: Any
    train_labels: Any  # class ids, or 0/1 rows when multi-label
    max_length: int
    mean: float
    std: float
    model: Any
    data: TrainingData


class _Run:
    def __init__(self, cfg: TrainConfig, events: EventSink | None, stop: threading.Event):
        self.cfg = cfg
        self.run = Path(cfg.output)
        self.stop = stop
        self.rank, self.world = launch_rank(), launch_world()  # until TrainingArguments knows better
        self.is_main = self.rank == 0
        self.args: Any = None
        self.user_events = events
        self.stages = Stages(lambda e: None, stop, runs_to_the_end=("training", "exporting", "done"),
                             stop_in_progress=self.world == 1)
        self.jsonl: JsonlSink | None = None
        self.t0 = time.time()

    @property
    def emit(self) -> EventSink:
        return self.stages.emit

    def stage(self, name: str, message: str, **fields: Any) -> None:
        self.stages.stage(name, message, **fields)

    def execute(self) -> RunResult:
        try:
            # first: sets up the process group (torchrun, accelerate, MPI) and tells us our rank
            cuda = use_cuda(self.cfg.device)
            precision = resolve_precision(self.cfg.precision, cuda)
            self.cpu_bf16 = precision == "bf16" and not cuda
            self.args = training_args(self.cfg, self.run, cuda, precision)
            self.rank, self.world = self.args.process_index, self.args.world_size
            self.is_main = self.rank == 0
            self.stages.stop_in_progress = self.world == 1  # long preparation stops promptly too
            if self.is_main:
                self.run.mkdir(parents=True, exist_ok=True)
                if not self.cfg.resume:
                    clear_previous_run(self.run)
                self.jsonl = JsonlSink(self.run / runfolder.HISTORY)
                self.stages.emit = fanout(self.jsonl, self.user_events)
            result = self.pipeline()
            done = {k: v for k, v in result.metrics.items() if k != "predictions"}
            self.emit(make_event("done", state=result.state, metrics=done))
            return result
        except Stopped:
            self.emit(make_event("done", state="stopped", metrics={}))
            return RunResult(self.run, "stopped")
        except KeyboardInterrupt:
            self._report("Interrupted; resume from the last checkpoint.")
            raise
        except BaseException as e:
            self._report(explain(e, self.run))
            raise
        finally:
            if self.jsonl:
                self.jsonl.close()

    def _report(self, message: str) -> None:
        """The failure as the last event of the history (the App layer records the status)."""
        try:
            self.emit(make_event("error", message=message))
        except Exception:  # noqa: BLE001 - reporting must not hide the original error
            log.exception("Could not record the failure")

    # --- the pipeline ----------------------------------------------------------------------------
    def pipeline(self) -> RunResult:
        if self.cfg.threads > 0:
            torch.set_num_threads(self.cfg.threads)
        checkpoint = runfolder.resume_checkpoint(self.run, self.cfg.resume)
        if checkpoint is not None:
            from astapp.model.lora import check_resume

            check_resume(checkpoint, self.cfg.mode)
        prep = self._prepare()
        resolved = dataclasses.replace(self.cfg, max_length=prep.max_length)
        metrics = self._fit(prep, checkpoint)
        return self._finish(prep, metrics, checkpoint, resolved)

    def _prepare(self) -> _Prepared:
        """The stages before training: dataset and split, input length, statistics, model, features."""
        from transformers import set_seed

        args = self.args
        self.stage("dataset", "Reading and checking the dataset")
        bundle = self._dataset(args)
        from astapp.data.dataset import describe_split
        from astapp.features.noise import noise_for_run

        with args.main_process_first(local=False, desc="noise"):  # real noise, copied into the run
            cfg = self.cfg = noise_for_run(self.cfg, bundle.noise, self.run, cache_root(self.cfg), self.is_main,
                                           lambda m: self.emit(make_event("log", message=m)))
        train_split, val_split = bundle.dataset["train"], bundle.dataset["validation"]
        labels = list(bundle.labels)
        train_labels: Any = [int(x) for x in train_split["label"]]
        val_labels: Any = [int(x) for x in val_split["label"]]
        if bundle.targets is not None:  # multi-label: 0/1 rows per clip
            train_labels, val_labels = bundle.targets["train"], bundle.targets["validation"]
        self.stage("split", describe_split(bundle.split, bundle.report.folds, len(train_split), len(val_split),
                                           cfg.val_split), split=bundle.split)

        max_length = self._max_length(train_split)
        self.stage("stats", f"Computing dataset statistics at {max_length} frames "
                            f"({max_length / 100:.2f} s per input)", max_length=max_length)
        mean, std = self._stats(args, train_split, max_length)

        self.stage("model", f"Loading the model {cfg.model}")
        from astapp.model.loading import load_model, set_head_dropout

        set_seed(cfg.seed)
        model = load_model(cfg.model, labels, max_length)
        set_head_dropout(model, float(cfg.head_dropout))

        self.stage("features", "Computing input features")
        data = self._data(args, model, bundle, max_length, mean, std, train_labels, val_labels)
        return _Prepared(labels, train_split, val_split, train_labels, max_length, mean, std, model, data)

    def _fit(self, prep: _Prepared, checkpoint: Path | None) -> dict[str, Any]:
        """The training stage: the Trainer's epochs (resumed from `checkpoint`), the best weights restored and
        evaluated; returns the run's metrics."""
        from transformers import set_seed

        cfg, data = self.cfg, prep.data
        set_seed(cfg.seed)
        trainer, cbs = build_trainer(cfg, self.args, data, prep.labels, prep.train_labels, self.emit, self.stop,
                                     self.run, self.is_main, self.cpu_bf16)
        if checkpoint is not None:
            cbs.best.load(self.run / runfolder.BEST)
        message = data.message
        if self.cpu_bf16:
            message += " Training steps in bf16 on this CPU (evaluation in fp32)."
        if checkpoint:
            message += f" Resuming from {checkpoint.name}."
        num_train, num_val = len(prep.train_split), len(prep.val_split)
        self.stage("training", message, mode=cfg.mode, cached=data.cached, num_train=num_train,
                   num_validation=num_val)
        start_epoch = 0.0
        if checkpoint is not None:
            start_epoch = float(json.loads((checkpoint / "trainer_state.json").read_text())["epoch"] or 0.0)
        t_train = time.time()
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        train_seconds = time.time() - t_train
        stopped = cbs.stop.stopped
        best = cbs.best
        restored = best.restore()

        metrics = evaluate_validation(trainer, data.val, prep.labels, prep.val_split)
        epochs_run = float(trainer.state.epoch or 0.0) - start_epoch
        metrics.update({
            "best_epoch": best.best["epoch"] if best.best else None,
            "best_step": best.best["step"] if best.best else None,
            "best_why": best.best.get("why") if best.best else None,
            "selection_metric": best.metric, "restored_best": restored,
            "epochs": float(trainer.state.epoch or 0.0), "global_step": trainer.state.global_step,
            "train_seconds": train_seconds,
            "train_samples_per_second": num_train * epochs_run / train_seconds if train_seconds else 0.0,
            "max_length": prep.max_length, "mean": prep.mean, "std": prep.std, "mode": cfg.mode,
            "cached": data.cached, "dataloader_workers": trainer.args.dataloader_num_workers,
            "model": cfg.model, "num_train": num_train, "num_validation": num_val,
            "early_stopped": best.early_stopped, "stopped": stopped,
            "resumed_from": str(checkpoint) if checkpoint else None,
            "trainable_parameters": sum(p.numel() for p in data.module.parameters() if p.requires_grad),
            **data.one_off,  # how the frozen layers' one-off pass ran (fastmodes.train_pass)
        })
        return metrics

    def _finish(self, prep: _Prepared, metrics: dict[str, Any], checkpoint: Path | None,
                resolved: TrainConfig) -> RunResult:
        """The export stage, metrics.json and the result."""
        stopped = metrics["stopped"]
        self.stage("exporting", "Saving the trained model")
        model = prep.model
        if self.cfg.mode == "lora":  # the adapter alone, then the plain model with the adapters merged in
            if self.is_main:
                prep.data.module.save_adapter(self.run / runfolder.ADAPTER)
            model = prep.data.module.merged()
        model_dir = self._export(model, prep.labels, prep.max_length, prep.mean, prep.std, metrics)
        if model_dir is not None:  # the unknown score's statistics, beside the export's config.json
            metrics["unknown"] = fit_unknown(model, prep, cache_root(self.cfg) / "features", self.cfg, model_dir)
        metrics["total_seconds"] = time.time() - self.t0
        self.stage("done", "Finished" if not stopped else "Stopped; the best weights so far were saved")
        metrics["stage_seconds"] = dict(self.stages.seconds)
        if self.is_main:
            atomic_write_text(self.run / runfolder.METRICS, json.dumps(metrics, indent=2, ensure_ascii=False))
        self._cleanup(finished=not stopped)
        return RunResult(self.run, "stopped" if stopped else "finished", metrics, model_dir,
                         metrics["best_epoch"], str(checkpoint) if checkpoint else None, model, resolved)

    def _dataset(self, args):
        from astapp.data.dataset import build_dataset

        workspace = cache_root(self.cfg)
        with args.main_process_first(local=False, desc="dataset"):
            bundle = build_dataset(self.cfg.data, workspace, self.cfg.audio, self.cfg.val_split, self.cfg.seed,
                                   progress=self.stages.progress("dataset") if self.is_main else None,
                                   val_fold=self.cfg.val_fold, multi_label=self.cfg.multi_label)
        if self.is_main:
            atomic_write_text(self.run / runfolder.REPORT,
                              json.dumps(bundle.report.to_dict(), indent=2, ensure_ascii=False))
        for w in bundle.report.warnings:
            self.emit(make_event("warning", message=w))
        return bundle

    def _max_length(self, train_split) -> int:
        from astapp.features.fbank import choose_max_length

        if self.cfg.max_length != "auto":
            return int(self.cfg.max_length)
        return choose_max_length([float(d) for d in train_split["duration"]])

    def _stats(self, args, train_split, max_length: int) -> tuple[float, float]:
        """Global mean/std of the training split's fbank (no augmentation), cached per data and length."""
        from astapp.features.cache import cached_stats

        with args.main_process_first(local=False, desc="stats"):
            return cached_stats(cache_root(self.cfg) / "stats", train_split, max_length, write=self.is_main)

    def _data(self, args, model, bundle, max_length: int, mean: float, std: float,
              train_labels: Any, val_labels: Any) -> TrainingData:
        """Datasets, collators and the module the Trainer trains, per mode and augmentation."""
        from astapp.features.augment import build_augment
        from astapp.features.cache import FeatureCache
        from astapp.features.fbank import Fbank
        from astapp.training.fastmodes import HeadModel, TopLayersModel, freeze, trainable_n
        from astapp.training.trainer_utils import ArrayDataset, Collator, WaveDataset

        cfg = self.cfg
        fbank = Fbank(max_length, mean, std)
        augment = build_augment(cfg.augment, seed=cfg.seed + self.rank)
        aug = cfg.augment
        # SpecAugment changes the inputs every step, so the frozen layers must run on them; mixup does not: it
        # mixes what the trainable part sees, the cached activations (as the settings search's trials do)
        spec_aug = aug.freq_mask > 0 or aug.time_mask > 0
        feat_dir = cache_root(cfg) / "features"
        with args.main_process_first(local=False, desc="features"):
            val_feats = FeatureCache(feat_dir, fbank, bundle.dataset["validation"],
                                     progress=self.stages.progress("features") if self.is_main else None)
            train_feats = None if augment is not None else FeatureCache(
                feat_dir, fbank, bundle.dataset["train"],
                progress=self.stages.progress("features") if self.is_main else None)
        num_labels = len(bundle.labels)
        train_collator = Collator(num_labels, fbank=fbank, augment=augment, freq_mask=aug.freq_mask,
                                  time_mask=aug.time_mask, mixup=aug.mixup, seed=cfg.seed + self.rank)
        module, cached, message, one_off = model, False, "Training all layers.", {}
        n = trainable_n(model, cfg.mode)
        train_ds = ArrayDataset(train_feats, train_labels) if train_feats is not None else \
            WaveDataset(bundle.dataset["train"], bundle.targets["train"] if bundle.targets else None)
        val_ds = ArrayDataset(val_feats, val_labels)
        if cfg.mode == "lora":
            from astapp.model.lora import LoraModule, targets

            module = LoraModule(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, targets(cfg.lora_targets))
            trained, total = module.trainable()
            message = (f"Training LoRA adapters (rank {cfg.lora_rank}) on {', '.join(targets(cfg.lora_targets))} "
                       f"and the head: {trained:,} of {total:,} parameters ({100 * trained / total:.2f}%).")
        elif n is not None:
            freeze(model, n)
            what = "the head" if n == 0 else f"the top {n} layer(s) and the head"
            if augment is not None or spec_aug:
                message = (f"Training {what} only. Augmentation is on, so the frozen layers run on "
                           "every step (no caching); turn augmentation off for a much faster run.")
            elif (found := self._fast_cache(args, model, n, max_length, train_ds, val_ds)) is None:
                message = (f"Training {what} only. The cached activations would not fit on disk, "
                           "so the frozen layers run on every step.")
            else:
                (train_act, val_act), one_off = found
                train_ds, val_ds = ArrayDataset(train_act, train_labels), ArrayDataset(val_act, val_labels)
                module, cached = HeadModel(model) if n == 0 else TopLayersModel(model, n), True
                message = f"Training {what} on activations computed once per clip." + one_off.pop("message", "")
        if augment is not None:  # decode-side work per batch: overlap it with training in worker processes
            args.dataloader_num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
            args.dataloader_persistent_workers = args.dataloader_num_workers > 0
        return TrainingData(train_ds, val_ds, train_collator, Collator(num_labels), module, message, cached, one_off)

    def _fast_cache(self, args, model, n: int, max_length: int, train_ds, val_ds):
        """(frozen-part outputs for train and validation, how the pass ran), rank 0 computing and the others
        reading; None if they would not fit on disk."""
        from astapp.training.fastmodes import cache_shape, cache_splits, fits_on_disk

        folder = self.run / runfolder.FASTCACHE
        shape = cache_shape(model, n, max_length)
        if not fits_on_disk(self.run, 4 * int(np.prod(shape)) * (len(train_ds) + len(val_ds))):
            return None
        model.to(args.device).eval()
        with args.main_process_first(local=False, desc="activations"):
            if not self.is_main:
                return [np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("train", "validation")], {}
            return cache_splits(model, n, train_ds, val_ds, folder, shape, args.device, self.cfg.int8_pass,
                                self.cpu_bf16, self.stages.progress("features"))

    def _export(self, model, labels, max_length, mean, std, metrics) -> Path | None:
        from astapp.model.folder import export_model

        if not self.is_main:
            return None
        extra = {"metrics": {k: metrics[k] for k in SCALAR_METRICS}, "mode": self.cfg.mode, "source_model": self.cfg.model,
                 "best_epoch": metrics.get("best_epoch"), **{k: metrics[k] for k in ("problem_type", "thresholds") if k in metrics}}
        return export_model(model, labels, max_length, mean, std, self.run / runfolder.MODEL, extra=extra)

    def _cleanup(self, finished: bool) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
        if self.is_main:
            shutil.rmtree(self.run / runfolder.FASTCACHE, ignore_errors=True)
            if finished:
                shutil.rmtree(self.run / runfolder.BEST, ignore_errors=True)
