"""distill(): a finished run teaches a small AST student, which is written as a normal run folder.

The student has the teacher's input length, mel settings, statistics and labels, and a smaller transformer
(`astapp.distill.sizes`). It trains with the training pipeline's pieces (the Arrow split, waveform
augmentation, SpecAugment, the Trainer, its callbacks and best-weights keeper) and one difference, the loss:
`astapp.distill.trainer.DistillTrainer` matches the teacher's soft probabilities on every augmented batch,
plus the hard labels where there are some, and on unlabeled audio (`astapp.distill.pool`) when given. The
folder it writes is a training run's: history.jsonl, report.json, metrics.json, model/ with its unknown
score refitted on the student, plus distill.json (teacher vs student). `RunRecord` writes status, config
(with `distilled_from`) and log, as for any run: `astapp.jobs.record.run_engine` dispatches task "distill".
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from astapp.core import runfolder
from astapp.core.config import DISTILL_EPOCHS, SCALAR_METRICS, STUDENT_INITS, TrainConfig, defaults_for
from astapp.core.errors import TrainingError, explain
from astapp.core.events import EventSink, JsonlSink, fanout, make_event
from astapp.core.fsutil import atomic_write_text
from astapp.core.runfolder import RunResult
from astapp.distill.sizes import check_smaller, describe, student_config
from astapp.distill.teacher import Teacher, open_teacher
from astapp.training.pipeline import clear_previous_run
from astapp.training.stages import Stages, Stopped

SPEC_FREQ, SPEC_TIME_SHARE = 24, 8  # SpecAugment when the teacher had none: 24 mel bins, 1/8 of the frames


def distill_config(teacher_run: str | Path, student: str, output: str | Path, pool: str | Path | None = None,
                   epochs: float | None = None, init: str = "teacher") -> TrainConfig:
    """The student run's settings: the teacher's data, split, audio and augmentation settings, with a
    from-scratch learning rate and batch, task "distill". TrainingError for a bad teacher, size or `init`
    ("teacher": the student starts from a slice of the teacher's weights; "random")."""
    from transformers import ASTConfig

    if init not in STUDENT_INITS:
        raise TrainingError(f"Unknown student start {init!r}: use teacher (a slice of the teacher's weights) "
                            "or random.")
    teacher = open_teacher(teacher_run)
    teacher_config = ASTConfig.from_pretrained(teacher.model_dir)
    check_smaller(student_config(teacher_config, student), teacher_config)  # refused now, not after a wait in the queue
    scratch = defaults_for("scratch:small")
    cfg = dataclasses.replace(
        teacher.config, output=str(output), task="distill", distilled_from=str(teacher.run), student=str(student),
        pool=str(pool or ""), student_init=init, model=str(teacher.model_dir), mode="full", resume="",
        early_stopping=0,
        max_length=int(teacher.metrics.get("max_length") or teacher.config.max_length),
        epochs=float(epochs) if epochs else DISTILL_EPOCHS, lr=float(scratch["lr"]), warmup_ratio=0.1)
    if Path(cfg.output).resolve() == teacher.run:
        raise TrainingError("The student's output folder is the teacher's run folder: give a new folder.")
    cfg.require_valid()
    return cfg


def distill(teacher_run: str | Path, student: str, output: str | Path, pool: str | Path | None = None,
            epochs: float | None = None, events: EventSink | None = None,
            stop: threading.Event | None = None, init: str = "teacher") -> RunResult:
    """Distil `teacher_run` into a `student` ("tiny", "small", "HxL") written to `output` (engine files
    only; the CLI and the app go through `astapp.jobs.record.run_job`, which records the run too)."""
    return distill_run(distill_config(teacher_run, student, output, pool, epochs, init), events, stop)


def distill_run(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None) -> RunResult:
    """Run the distillation `cfg` (task "distill") into `cfg.output`; returns its RunResult or raises."""
    cfg.require_valid()
    return _Distill(cfg, events, stop or threading.Event()).execute()


class _Distill:
    def __init__(self, cfg: TrainConfig, events: EventSink | None, stop: threading.Event):
        self.cfg, self.run, self.stop = cfg, Path(cfg.output), stop
        self.user_events = events
        self.stages = Stages(lambda e: None, stop, runs_to_the_end=("training", "exporting", "done"))
        self.t0 = time.time()
        self.student_model: Any = None

    def emit(self, ev: dict[str, Any]) -> None:
        self.stages.emit(ev)

    def execute(self) -> RunResult:
        self.run.mkdir(parents=True, exist_ok=True)
        if not self.cfg.resume:  # a resumed distillation keeps its checkpoint, best weights and history
            clear_previous_run(self.run)
            (self.run / runfolder.DISTILL).unlink(missing_ok=True)
        shutil.rmtree(self.run / runfolder.POOLCACHE, ignore_errors=True)
        jsonl = JsonlSink(self.run / runfolder.HISTORY)
        self.stages.emit = fanout(jsonl, self.user_events)
        finished = False
        try:
            from astapp.distill.steps import run_steps

            result = run_steps(self)
            finished = result.state == "finished"
            self.emit(make_event("done", state=result.state,
                                 metrics={k: v for k, v in result.metrics.items() if k != "predictions"}))
            return result
        except Stopped:
            self.emit(make_event("done", state="stopped", metrics={}))
            return RunResult(self.run, "stopped")
        except BaseException as e:
            self.emit(make_event("error", message=explain(e, self.run)))
            raise
        finally:
            jsonl.close()
            shutil.rmtree(self.run / runfolder.POOLCACHE, ignore_errors=True)
            if finished:  # a stopped one (Stop, a slice's end, a time limit) is resumed from them
                shutil.rmtree(self.run / runfolder.CHECKPOINTS, ignore_errors=True)
                shutil.rmtree(self.run / runfolder.BEST, ignore_errors=True)

    def teacher(self) -> Teacher:
        teacher = open_teacher(self.cfg.distilled_from)
        if (warning := teacher.warning()) is not None:
            self.emit(make_event("warning", message=warning))
        return teacher

    def student(self, teacher_model: Any, labels: list[str]) -> Any:
        """The student for `labels` (checked smaller than the teacher), its first weights a slice of the
        teacher's (`astapp.distill.init`) unless the settings ask for random ones."""
        from transformers import ASTForAudioClassification, set_seed

        from astapp.distill.init import select_weights

        config = student_config(teacher_model.config, self.cfg.student)
        check_smaller(config, teacher_model.config)
        if list(teacher_model.config.id2label.values()) != labels:
            raise TrainingError("The teacher's classes differ from its dataset's classes now: the dataset "
                                f"changed since it was trained ({', '.join(labels)}); train a new teacher.")
        set_seed(self.cfg.seed)
        self.student_model = ASTForAudioClassification(config).float()
        start = "random weights"
        if self.cfg.student_init == "teacher":
            kept = select_weights(self.student_model, teacher_model)
            start = "a slice of the teacher's weights" + (f" ({len(kept)} tensors random)" if kept else "")
        self.stages.stage("model", f"Student: {describe(config)}, starting from {start} "
                                   f"(teacher: {describe(teacher_model.config)})")
        return self.student_model

    def spec_masks(self, max_length: int) -> tuple[int, int]:
        aug = self.cfg.augment
        if aug.freq_mask or aug.time_mask:
            return aug.freq_mask, aug.time_mask
        return SPEC_FREQ, max(1, max_length // SPEC_TIME_SHARE)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.run / runfolder.METRICS, json.dumps(metrics, indent=2, ensure_ascii=False, default=float))

    def write_comparison(self, doc: dict[str, Any]) -> None:
        atomic_write_text(self.run / runfolder.DISTILL, json.dumps(doc, indent=2, ensure_ascii=False, default=float))

    def export_extra(self, metrics: dict[str, Any], teacher: Teacher) -> dict[str, Any]:
        keep = {k: metrics[k] for k in ("problem_type", "thresholds") if k in metrics}
        return {"metrics": {k: metrics[k] for k in SCALAR_METRICS}, "mode": "distill",
                "source_model": teacher.config.model, "distilled_from": str(teacher.run),
                "student": self.cfg.student, "best_epoch": metrics.get("best_epoch"), **keep}

