"""The training pipeline: dataset -> input length -> statistics -> model -> features -> Trainer -> export.

`train(cfg, events, stop)` writes the run folder `cfg.output/`: status.json, config.json (with the
resolved input length), report.json, history.jsonl (events), tb/ (TensorBoard), checkpoints/ (the
latest, for resume), best/ (best weights, while resumable), metrics.json and model/ (the export).

Speed comes from not redoing work: clips are decoded once (Arrow), features are computed once into a
memmap when nothing augments waveforms, inputs are only as long as the clips need ("auto" length),
and the fast modes run the frozen part of the network once per clip (`astapp.fastmodes`).
Under torchrun / accelerate launch only rank 0 writes files, and rank 0 builds caches before the
other ranks read them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astapp.config import TrainConfig
from astapp.errors import AstappError, TrainingError
from astapp.events import EventCallback, EventSink, JsonlSink, fanout, make_event
from astapp.fsutil import atomic_write_text
from astapp.metrics import SCALARS, classification_metrics, softmax

log = logging.getLogger(__name__)

OOM_MESSAGE = ("Out of memory while training: try a smaller batch size, a shorter input length, "
               "or the frozen / last-N mode.")


@dataclass
class RunResult:
    """What a finished (or stopped) run produced."""

    output: Path
    state: str  # "finished" | "stopped"
    metrics: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    best_epoch: float | None = None
    resumed_from: str | None = None
    model: Any = field(default=None, repr=False)  # the trained ASTForAudioClassification (best weights)


class _Stopped(Exception):
    """Stop was requested before training began."""


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 autocast speeds up a
    training step ~1.7x (small AST, 2 cores); elsewhere it is emulated and slower, so auto keeps fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def resolve_precision(requested: str, use_cuda: bool) -> str:
    """fp32 | bf16 | fp16 for this device; `auto` picks bf16/fp16 on CUDA, bf16 on a bf16-capable CPU."""
    if requested == "auto":
        if use_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if requested not in ("fp32", "bf16", "fp16"):
        raise TrainingError(f"Precision must be auto, fp32, bf16 or fp16, not {requested!r}.")
    if requested == "fp16" and not use_cuda:
        raise TrainingError("fp16 precision needs a CUDA GPU; use 'auto', 'bf16' or 'fp32' on a CPU.")
    return requested


def clear_previous_run(run: Path) -> None:
    """A new (not resumed) run in a used folder starts clean: no old history mixed into the plots, no
    stale metrics, and no old checkpoint for a later `--resume latest` to pick up by mistake. The
    previous `model/` stays until the new export atomically replaces it."""
    import shutil

    for name in ("history.jsonl", "metrics.json", "report.json"):
        (run / name).unlink(missing_ok=True)
    for name in ("checkpoints", "best", ".fastcache", "tb"):
        shutil.rmtree(run / name, ignore_errors=True)


def cache_root(cfg: TrainConfig) -> Path:
    """Where decoded datasets, features and statistics are cached (shared by runs)."""
    env = os.environ.get("ASTAPP_CACHE_DIR", "").strip()
    return Path(env) if env else Path(cfg.output).resolve().parent / ".cache"


def resolve_checkpoint(cfg: TrainConfig) -> Path | None:
    """The checkpoint folder `cfg.resume` names ("latest" = newest complete one in the run), or None."""
    if not cfg.resume:
        return None
    from astapp.runs import last_checkpoint

    if cfg.resume == "latest":
        ckpt = last_checkpoint(Path(cfg.output))
        if ckpt is None:
            raise TrainingError(f"There is no checkpoint to resume from in {cfg.output}/checkpoints; "
                                "start a new run instead.")
        return ckpt
    ckpt = Path(cfg.resume)
    if not (ckpt / "trainer_state.json").is_file():
        raise TrainingError(f"{cfg.resume!r} is not a training checkpoint (no trainer_state.json); give a "
                            "checkpoints/checkpoint-N folder of an earlier run, or 'latest'.")
    return ckpt


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def train(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None) -> RunResult:
    """Train per `cfg`, streaming events to `events`; `stop` asks for a graceful stop. See the module doc."""
    problems = cfg.validate()
    if problems:
        raise TrainingError("The training settings need fixing: " + " ".join(problems))
    return _Run(cfg, events, stop or threading.Event()).execute()


class _Run:
    def __init__(self, cfg: TrainConfig, events: EventSink | None, stop: threading.Event):
        self.cfg = cfg
        self.run = Path(cfg.output)
        self.stop = stop
        self.rank, self.world = 0, _launched_world()  # until TrainingArguments knows better
        self.is_main = int(os.environ.get("RANK", "0")) == 0
        self.args: Any = None
        self.user_events = events
        self.emit: EventSink = lambda e: None
        self.jsonl: JsonlSink | None = None
        self.t0 = time.time()
        self.stage_seconds: dict[str, float] = {}
        self._stage: tuple[str, float] | None = None

    # --- bookkeeping -----------------------------------------------------------------------------
    def status(self, state: str, error: str | None = None) -> None:
        if self.is_main:
            from astapp.runs import write_status

            write_status(self.run, state, error=error)

    def stage(self, name: str, message: str, **fields: Any) -> None:
        """Announce a pipeline stage (and time the previous one); honours a pending stop."""
        now = time.time()
        if self._stage:
            prev, since = self._stage
            self.stage_seconds[prev] = self.stage_seconds.get(prev, 0.0) + now - since
        self._stage = (name, now)
        self.emit(make_event("stage", stage=name, message=message, **fields))
        if self.stop.is_set() and name not in ("training", "exporting", "done"):
            raise _Stopped()

    def _progress(self, stage: str):
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            if self.stop.is_set() and self.world == 1:  # long preparation stops promptly too
                raise _Stopped()
            now = time.time()
            if now - last[0] >= 0.5 or fraction >= 1.0:
                last[0] = now
                self.emit(make_event("stage", stage=stage, message=message, fraction=float(fraction)))

        return report

    def execute(self) -> RunResult:
        try:
            # first: sets up the process group (torchrun, accelerate, MPI) and tells us our rank
            self.args = self._training_args(self._use_cuda())
            self.rank, self.world = self.args.process_index, self.args.world_size
            self.is_main = self.rank == 0
            if self.is_main:
                self.run.mkdir(parents=True, exist_ok=True)
                if not self.cfg.resume:
                    clear_previous_run(self.run)
                self.jsonl = JsonlSink(self.run / "history.jsonl")
                self.emit = fanout(self.jsonl, self.user_events)
                self.status("running")
            result = self.pipeline()
            self.status(result.state)
            done = {k: v for k, v in result.metrics.items() if k != "predictions"}
            self.emit(make_event("done", state=result.state, metrics=done))
            return result
        except _Stopped:
            self.status("stopped")
            self.emit(make_event("done", state="stopped", metrics={}))
            return RunResult(self.run, "stopped")
        except AstappError as e:
            self._fail(str(e))
            raise
        except KeyboardInterrupt:
            self._fail("Interrupted; resume from the last checkpoint.", state="interrupted")
            raise
        except BaseException as e:
            if _is_oom(e):
                self._fail(OOM_MESSAGE)
                raise TrainingError(OOM_MESSAGE) from e
            self._fail(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
            raise
        finally:
            if self.jsonl:
                self.jsonl.close()

    def _fail(self, message: str, state: str = "failed") -> None:
        try:
            self.emit(make_event("error", message=message))
            self.status(state, message)
        except Exception:  # noqa: BLE001 - reporting must not hide the original error
            log.exception("Could not record the failure")

    # --- the pipeline ----------------------------------------------------------------------------
    def pipeline(self) -> RunResult:
        from transformers import set_seed

        cfg = self.cfg
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        checkpoint = resolve_checkpoint(cfg)
        args = self.args

        self.stage("dataset", "Reading and checking the dataset")
        bundle = self._dataset(args)
        train_split, val_split = bundle.dataset["train"], bundle.dataset["validation"]
        labels = list(bundle.labels)
        train_labels = [int(x) for x in train_split["label"]]
        val_labels = [int(x) for x in val_split["label"]]

        max_length = self._max_length(train_split)
        resolved = dataclasses.replace(cfg, max_length=max_length)
        if self.is_main:
            resolved.save(self.run / "config.json")

        self.stage("stats", f"Computing dataset statistics at {max_length} frames "
                            f"({max_length / 100:.2f} s per input)", max_length=max_length)
        mean, std = self._stats(args, train_split, max_length)

        self.stage("model", f"Loading the model {cfg.model}")
        from astapp.model import load_model

        set_seed(cfg.seed)
        model = load_model(cfg.model, labels, max_length)

        self.stage("features", "Computing input features")
        data = self._data(args, model, bundle, max_length, mean, std, train_labels, val_labels)

        set_seed(cfg.seed)
        trainer, cbs = self._trainer(args, data, labels, train_labels, len(train_split))
        if checkpoint is not None:
            cbs["best"].load(self.run / "best")
        message = data["message"]
        if self.cpu_bf16:
            message += " Training steps in bf16 on this CPU (evaluation in fp32)."
        if checkpoint:
            message += f" Resuming from {checkpoint.name}."
        self.stage("training", message, mode=cfg.mode, cached=data["cached"], num_train=len(train_split),
                   num_validation=len(val_split))
        start_epoch = 0.0
        if checkpoint is not None:
            start_epoch = float(json.loads((checkpoint / "trainer_state.json").read_text())["epoch"] or 0.0)
        t_train = time.time()
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        train_seconds = time.time() - t_train
        stopped = cbs["stop"].stopped
        best = cbs["best"]
        restored = best.restore()

        metrics = self._evaluate(trainer, data["val"], labels, val_split)
        epochs_run = float(trainer.state.epoch or 0.0) - start_epoch
        metrics.update({
            "best_epoch": best.best["epoch"] if best.best else None,
            "best_step": best.best["step"] if best.best else None,
            "selection_metric": cfg.metric, "restored_best": restored,
            "epochs": float(trainer.state.epoch or 0.0), "global_step": trainer.state.global_step,
            "train_seconds": train_seconds,
            "train_samples_per_second": len(train_split) * epochs_run / train_seconds if train_seconds else 0.0,
            "max_length": max_length, "mean": mean, "std": std, "mode": cfg.mode, "cached": data["cached"],
            "dataloader_workers": trainer.args.dataloader_num_workers,
            "model": cfg.model, "num_train": len(train_split), "num_validation": len(val_split),
            "early_stopped": best.early_stopped, "stopped": stopped,
            "resumed_from": str(checkpoint) if checkpoint else None,
        })

        self.stage("exporting", "Saving the trained model")
        model_dir = self._export(model, labels, max_length, mean, std, metrics)
        metrics["total_seconds"] = time.time() - self.t0
        self.stage("done", "Finished" if not stopped else "Stopped; the best weights so far were saved")
        metrics["stage_seconds"] = dict(self.stage_seconds)
        if self.is_main:
            atomic_write_text(self.run / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False))
        self._cleanup(finished=not stopped)
        return RunResult(self.run, "stopped" if stopped else "finished", metrics, model_dir,
                         metrics["best_epoch"], str(checkpoint) if checkpoint else None, model)

    def _use_cuda(self) -> bool:
        cuda = torch.cuda.is_available()
        if self.cfg.device == "cuda" and not cuda:
            raise TrainingError("Device 'cuda' was requested but no CUDA GPU is available; use 'auto' or 'cpu'.")
        return cuda and self.cfg.device != "cpu"

    def _training_args(self, use_cuda: bool):
        from transformers import TrainingArguments

        cfg = self.cfg
        precision = resolve_precision(cfg.precision, use_cuda)
        self.cpu_bf16 = precision == "bf16" and not use_cuda
        if cfg.metric not in (*SCALARS, "loss"):
            raise TrainingError(f"The metric that picks the best epoch must be one of {', '.join(SCALARS)} "
                                f"or loss, not {cfg.metric!r}.")
        if not 0 <= cfg.warmup_ratio < 1:
            raise TrainingError("Warm-up ratio must be at least 0 and below 1 (typical: 0.1).")
        return TrainingArguments(
            output_dir=str(self.run / "checkpoints"), num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
            learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio,
            lr_scheduler_type="linear", eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
            logging_strategy="steps", logging_steps=1, report_to=[], seed=cfg.seed, data_seed=cfg.seed,
            use_cpu=not use_cuda, bf16=precision == "bf16" and use_cuda, fp16=precision == "fp16",
            ddp_backend="gloo" if _launched_world() > 1 and not use_cuda else None, ddp_find_unused_parameters=False,
            remove_unused_columns=False, label_names=["labels"], disable_tqdm=True,
            dataloader_num_workers=0, dataloader_pin_memory=use_cuda, save_only_model=False,
        )

    def _dataset(self, args):
        from astapp.dataset import build_dataset

        workspace = cache_root(self.cfg)
        with args.main_process_first(local=False, desc="dataset"):
            bundle = build_dataset(self.cfg.data, workspace, self.cfg.audio, self.cfg.val_split, self.cfg.seed,
                                   progress=self._progress("dataset") if self.is_main else None)
        if self.is_main:
            atomic_write_text(self.run / "report.json",
                              json.dumps(bundle.report.to_dict(), indent=2, ensure_ascii=False))
        for w in bundle.report.warnings:
            self.emit(make_event("warning", message=w))
        return bundle

    def _max_length(self, train_split) -> int:
        from astapp.features import choose_max_length

        if self.cfg.max_length != "auto":
            return int(self.cfg.max_length)
        return choose_max_length([float(d) for d in train_split["duration"]])

    def _stats(self, args, train_split, max_length: int) -> tuple[float, float]:
        """Global mean/std of the training split's fbank (no augmentation), cached per data and length."""
        from astapp.features import Fbank, compute_stats

        key = hashlib.sha256(json.dumps({"data": getattr(train_split, "_fingerprint", None) or
                                         str(train_split["path"]), "n": len(train_split),
                                         "max_length": max_length, "v": 1}).encode()).hexdigest()[:20]
        path = cache_root(self.cfg) / "stats" / f"stats-{key}.json"
        with args.main_process_first(local=False, desc="stats"):
            if path.is_file():
                d = json.loads(path.read_text(encoding="utf-8"))
                return float(d["mean"]), float(d["std"])
            mean, std = compute_stats(_iter_audio(train_split), Fbank(max_length))
            if self.is_main:
                atomic_write_text(path, json.dumps({"mean": mean, "std": std}))
        return mean, std

    def _data(self, args, model, bundle, max_length: int, mean: float, std: float,
              train_labels: list[int], val_labels: list[int]) -> dict[str, Any]:
        """Datasets, collators and the module the Trainer trains, per mode and augmentation."""
        from astapp.augment import build_augment
        from astapp.fastmodes import HeadModel, TopLayersModel, freeze, trainable_n
        from astapp.features import Fbank, FeatureCache
        from astapp.trainer_utils import ArrayDataset, Collator, WaveDataset

        cfg = self.cfg
        fbank = Fbank(max_length, mean, std)
        augment = build_augment(cfg.augment, seed=cfg.seed + self.rank)
        aug = cfg.augment
        feature_aug = aug.freq_mask > 0 or aug.time_mask > 0 or aug.mixup > 0
        feat_dir = cache_root(cfg) / "features"
        with args.main_process_first(local=False, desc="features"):
            val_feats = FeatureCache(feat_dir, fbank, bundle.dataset["validation"],
                                     progress=self._progress("features") if self.is_main else None)
            train_feats = None if augment is not None else FeatureCache(
                feat_dir, fbank, bundle.dataset["train"],
                progress=self._progress("features") if self.is_main else None)
        num_labels = len(bundle.labels)
        train_collator = Collator(num_labels, fbank=fbank, augment=augment, freq_mask=aug.freq_mask,
                                  time_mask=aug.time_mask, mixup=aug.mixup, seed=cfg.seed + self.rank)
        out: dict[str, Any] = {"collator": train_collator, "eval_collator": Collator(num_labels),
                               "module": model, "cached": False, "message": "Training all layers."}
        n = trainable_n(model, cfg.mode)
        train_ds = ArrayDataset(train_feats, train_labels) if train_feats is not None else \
            WaveDataset(bundle.dataset["train"])
        val_ds = ArrayDataset(val_feats, val_labels)
        if n is not None:
            freeze(model, n)
            what = "the head" if n == 0 else f"the top {n} layer(s) and the head"
            if augment is not None or feature_aug:
                out["message"] = (f"Training {what} only. Augmentation is on, so the frozen layers run on "
                                  "every step (no caching); turn augmentation off for a much faster run.")
            else:
                cached = self._fast_cache(args, model, n, max_length, train_ds, val_ds)
                if cached is None:
                    out["message"] = (f"Training {what} only. The cached activations would not fit on disk, "
                                      "so the frozen layers run on every step.")
                else:
                    train_ds = ArrayDataset(cached[0], train_labels)
                    val_ds = ArrayDataset(cached[1], val_labels)
                    out.update(module=HeadModel(model) if n == 0 else TopLayersModel(model, n), cached=True,
                               message=f"Training {what} on activations computed once per clip.")
        out.update(train=train_ds, val=val_ds)
        if augment is not None:  # decode-side work per batch: overlap it with training in worker processes
            args.dataloader_num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
            args.dataloader_persistent_workers = args.dataloader_num_workers > 0
        return out

    def _fast_cache(self, args, model, n: int, max_length: int, train_ds, val_ds):
        """Frozen-part outputs for train and validation (rank 0 computes, others read), or None if too big."""
        from astapp.fastmodes import cache_shape, compute_cache, fits_on_disk, frozen_part

        folder = self.run / ".fastcache"
        shape = cache_shape(model, n, max_length)
        nbytes = 4 * int(np.prod(shape)) * (len(train_ds) + len(val_ds))
        if not fits_on_disk(self.run, nbytes):
            return None
        device = args.device
        model.to(device).eval()
        fn = frozen_part(model, n)
        out = []
        with args.main_process_first(local=False, desc="activations"):
            for name, ds in (("train", train_ds), ("validation", val_ds)):
                path = folder / f"{name}.npy"
                if self.is_main:
                    report = self._progress("features")

                    def prog(done: int, total: int, name: str = name, report=report) -> None:
                        report(done / total, f"Running the frozen layers once: {name} {done}/{total} clips")

                    out.append(compute_cache(fn, ds, shape, path, device, progress=prog,
                                             cpu_bf16=self.cpu_bf16 and name == "train"))
                else:
                    out.append(np.load(path, mmap_mode="r"))
        return out

    def _trainer(self, args, data: dict[str, Any], labels: list[str], train_labels: list[int],
                 num_train: int):
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        from astapp.metrics import make_compute_metrics
        from astapp.trainer_utils import AstTrainer, BestKeeper, StopCallback, class_weights

        cfg = self.cfg
        global_batch = cfg.batch_size * max(self.world, 1) * args.gradient_accumulation_steps
        steps = max(1, -(-num_train // global_batch)) * cfg.epochs
        args.logging_steps = max(1, min(50, round(steps / 100)))
        cbs = {"events": EventCallback(self.emit, global_batch),
               "best": BestKeeper(data["module"], cfg.metric, cfg.early_stopping,
                                  save_dir=self.run / "best" if self.is_main else None),
               "stop": StopCallback(self.stop)}
        trainer = AstTrainer(
            model=data["module"], args=args, train_dataset=data["train"], eval_dataset=data["val"],
            data_collator=data["collator"], eval_collator=data["eval_collator"],
            compute_metrics=make_compute_metrics(len(labels)), callbacks=list(cbs.values()),
            class_weights=class_weights(train_labels, len(labels)) if cfg.class_weighted else None,
            cpu_bf16=self.cpu_bf16)
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        tb = _tensorboard(self.run / "tb") if self.is_main else None
        if tb is not None:
            trainer.add_callback(tb)
        return trainer, cbs

    def _evaluate(self, trainer, val_ds, labels: list[str], val_split) -> dict[str, Any]:
        """Final validation metrics of the (restored) model, with per-clip predictions."""
        pred = trainer.predict(val_ds, metric_key_prefix="eval")
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        probs = softmax(logits)
        y_true, y_pred = np.asarray(pred.label_ids), probs.argmax(-1)
        metrics = classification_metrics(y_true, y_pred, labels)
        metrics["loss"] = pred.metrics.get("eval_loss")
        paths = list(val_split["path"])
        metrics["predictions"] = [
            {"path": paths[i], "true": labels[int(y_true[i])], "pred": labels[int(y_pred[i])],
             "prob": float(probs[i, y_pred[i]])} for i in range(len(y_true))]
        return metrics

    def _export(self, model, labels, max_length, mean, std, metrics) -> Path | None:
        from astapp.export import export_model

        if not self.is_main:
            return None
        extra = {"metrics": {k: metrics[k] for k in SCALARS}, "mode": self.cfg.mode, "source_model": self.cfg.model,
                 "best_epoch": metrics.get("best_epoch")}
        return export_model(model, labels, max_length, mean, std, self.run / "model", extra=extra)

    def _cleanup(self, finished: bool) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
        if self.is_main:
            shutil.rmtree(self.run / ".fastcache", ignore_errors=True)
            if finished:
                shutil.rmtree(self.run / "best", ignore_errors=True)


def _launched_world() -> int:
    """Processes the launcher started (torchrun/accelerate set WORLD_SIZE; MPI sets its own)."""
    for var in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if os.environ.get(var, "").strip().isdigit():
            return int(os.environ[var])
    return 1


def _iter_audio(split, batch_size: int = 64) -> Iterator[np.ndarray]:
    ds = split.select_columns(["audio"]).with_format("numpy")
    for start in range(0, len(ds), batch_size):
        for a in ds[start:start + batch_size]["audio"]:
            yield np.asarray(a, dtype=np.float32)


def _tensorboard(log_dir: Path):
    """A TensorBoard callback writing into the run folder, or None when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback
    except ImportError:
        return None
    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))
