"""What the CLI runs: the same operations as the app, on paths instead of sessions."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from astapp.core.config import AudioConfig, TrainConfig
from astapp.core.errors import ModelLoadError
from astapp.core.events import EventSink
from astapp.core.runfolder import ADAPTER, MODEL, RunResult


def inspect_data(data: str, long_clips: str = "crop") -> Any:
    """The validation report (`astapp.data.report.ValidationReport`) of a folder, zip or manifest."""
    from astapp.data.dataset import inspect_source

    with tempfile.TemporaryDirectory(prefix="astapp-inspect-") as ws:
        return inspect_source(data, Path(ws), AudioConfig(long_clips=long_clips))


def train_run(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None,
              time_limit: float | None = None, started: float | None = None) -> RunResult:
    """Train into `cfg.output`, recorded exactly as the app records a job (status, config, log).

    With a slice budget (`ASTAPP_SLICE_SECONDS`, or ZeroGPU) the run trains in slices, here one after
    another, each resuming the last exactly, as the app's queue runs them. `time_limit` (seconds from
    `started`, default now): stop there less a slice's margin, resumable; the result then says
    `time_limit_reached`."""
    from astapp.jobs import slicing
    from astapp.jobs.record import run_job

    budget = slicing.slice_seconds()
    if budget <= 0 and time_limit is None:
        return run_job(cfg, events, stop)
    return slicing.train_in_slices(cfg, events, stop, budget=budget, time_limit=time_limit, started=started)


def cv_run(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None) -> RunResult:
    """Cross-validate into `cfg.output` (task "cv"), recorded like a training run."""
    import dataclasses

    from astapp.jobs.record import run_job

    return run_job(dataclasses.replace(cfg, task="cv"), events, stop)


def distill_run(teacher: str, student: str, output: str, pool: str | None = None, epochs: float | None = None,
                events: EventSink | None = None, stop: threading.Event | None = None,
                time_limit: float | None = None, started: float | None = None, resume: str = "",
                init: str = "teacher") -> RunResult:
    """Distil the finished run `teacher` into a `student` run folder at `output`, recorded like a training run:
    in slices and under a `time_limit` as `train_run` trains, and continued from a checkpoint with `resume`
    ("latest" or a checkpoint folder) after a stop. `init`: the student's first weights ("teacher", "random")."""
    import dataclasses

    from astapp.distill.run import distill_config

    cfg = distill_config(teacher, student, output, pool, epochs, init)
    return train_run(dataclasses.replace(cfg, resume=resume or ""), events, stop, time_limit, started)


def tune_run(cfg: TrainConfig, events: EventSink | None = None, stop: threading.Event | None = None) -> RunResult:
    """Search settings into `cfg.output` (task "tune"), recorded like a training run; `cfg.output`/tune.json."""
    import dataclasses

    from astapp.jobs.record import run_job
    from astapp.tuning.space import check_counts

    check_counts(cfg.tune_trials, cfg.tune_minutes, cfg.tune_test_share)  # before a run folder is made
    return run_job(dataclasses.replace(cfg, task="tune"), events, stop)


def tune_summary(run: str | Path) -> dict[str, Any]:
    """A finished (or stopped) search's tune.json."""
    from astapp.core.errors import AccessError
    from astapp.core.runfolder import TUNE, read_json

    out = read_json(Path(run) / TUNE)
    if not out:
        raise AccessError(f"{run} has no {TUNE}: the search stopped before its first result; run it again.")
    return out


def cv_summary(run: str | Path) -> dict[str, Any]:
    """The `cv --json` contract: folds (fold, accuracy, f1_macro, clips), mean, std, grouping (+ the run)."""
    from astapp.core.runfolder import CV, read_json

    doc = read_json(Path(run) / CV)
    keep = ("fold", "accuracy", "f1_macro", "clips")
    return {"folds": [{k: f[k] for k in keep} for f in doc.get("folds", [])], "mean": doc.get("mean", {}),
            "std": doc.get("std", {}), "grouping": doc.get("grouping", ""), "run": str(run)}


def label_issues_of(run: str | Path) -> list[dict[str, Any]]:
    """The `label-issues --json` contract: most suspect first, [{path, given, suggested, score, kind}]."""
    import json

    from astapp.core.runfolder import LABEL_ISSUES

    try:
        return list(json.loads((Path(run) / LABEL_ISSUES).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return []


def _check_prediction_args(model: str, top_k: int) -> None:
    """Prediction needs a trained model on disk: a missing one gets prediction's advice (a run folder or an
    exported model), not training's (a Hub id or scratch:small, which have no trained classes)."""
    if top_k < 1:
        raise ModelLoadError("--top-k must be at least 1.")
    if not Path(model).expanduser().exists():
        raise ModelLoadError(f"The model {model!r} does not exist. Give a trained model: a run folder (what "
                             "`astapp train --output` wrote) or an exported model folder (an unzipped "
                             "`astapp export` zip).")


def predict_files(model: str, files: list[str], top_k: int, unknown_threshold: float | None = None
                  ) -> list[dict[str, Any]]:
    """One row per audio file (a folder or a zip expands to its files; a missing file is a row too); with the
    model's unknown statistics each row has "unknown" (its score) and the label "unknown" above the threshold
    (the model's calibrated one, or `unknown_threshold`)."""
    from astapp.predict.predictor import Predictor

    _check_prediction_args(model, top_k)
    return Predictor(model, unknown_threshold=unknown_threshold).predict_many(list(files), top_k=top_k)


def export_run(run: str, output: str, adapter: bool = False, onnx: bool = True, browser: bool = False) -> Path:
    """Zip a run's model folder (or an exported model folder) into `output`; it unpacks into one folder
    named like the zip. `adapter`: the LoRA adapter alone instead (a run trained in mode lora). `onnx`:
    with the checked ONNX files and demo.html (`astapp.export.bundle`); `browser`: also the demo's runtime."""
    from astapp.model.folder import zip_dir

    if adapter:
        folder = Path(run) / ADAPTER
        if not (folder / "adapter_config.json").is_file():
            raise ModelLoadError(f"{run} has no LoRA adapter (no {ADAPTER}/adapter_config.json): only a run "
                                 "trained with --mode lora has one; export its model without --adapter.")
        return zip_dir(folder, output, top=Path(output).stem)
    folder = Path(run) / MODEL if (Path(run) / MODEL / "config.json").is_file() else Path(run)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{run} has no trained model (no model/ folder with config.json); "
                             "finish or stop a training run first.")
    if onnx:
        from astapp.export.bundle import build_zip

        return build_zip(run, output, top=Path(output).stem, browser=browser)[0]
    return zip_dir(folder, output, top=Path(output).stem)


def predict_files_onnx(model: str, files: list[str], top_k: int, int8: bool = False,
                       unknown_threshold: float | None = None) -> list[dict[str, Any]]:
    """`predict_files` with the exported ONNX model in onnxruntime: torch is never imported; the export's second
    output (the pooled embedding) gives the unknown score (an export from before it has none)."""
    from astapp.predict.predictor import Predictor

    _check_prediction_args(model, top_k)
    return Predictor(model, backend="onnx", quantized=int8, unknown_threshold=unknown_threshold
                     ).predict_many(list(files), top_k=top_k)


def calibrate_run(run: str, others: list[str] | None = None, keep: float | None = None) -> dict[str, Any]:
    """Refit (for a run from before unknown scores) and recalibrate the unknown score of a run's model, on its
    validation clips and, given, the user's "other" sounds; saved into the model (`astapp.predict.calibrate`)."""
    from astapp.predict.calibrate import recalibrate

    return recalibrate(run, others or [], keep)


def calibration_lines(result: dict[str, Any]) -> list[str]:
    """What `calibrate` prints: what was fitted, the threshold and what it keeps and rejects, where it went."""
    def pct(x: float | None) -> str:
        return "–" if x is None else f"{float(x):.1%}"

    how = "fitted now on the run's training clips" if result.get("refit") else "kept"
    lines = [f"Unknown score: {result['method']} ({how}).",
             f"Threshold {result['threshold']:.4g}: keeps {pct(result['keep'])} of {result['known']} known "
             f"(validation) clips."]
    if result.get("other"):
        auroc = "n/a" if result.get("auroc") is None else f"{result['auroc']:.3f}"
        lines.append(f"{result['other']} other sounds: AUROC {auroc}, {pct(result.get('other_rejected'))} "
                     "rejected as unknown at this threshold.")
        if result.get("auroc") is not None and result["auroc"] < 0.5:
            lines.append("These sounds score LOWER than the known clips: the model cannot flag them as unknown; "
                         "add them as a class of their own (e.g. 'other') and train again.")
    if result.get("note"):
        lines.append(result["note"])
    lines.append(f"Saved in {result['folder']}/unknown.json; predict, the app and exports use it now.")
    return lines


def int8_caution(model: str) -> str | None:
    """Why the model's ONNX check advises against its int8 file, or None (torch-free)."""
    from astapp.predict.onnx_backend import int8_caution as caution

    return caution(model)


def push_run(run: str, repo: str, public: bool = False, license: str = "other", dry_run: str | None = None,
             api: Any = None, progress: Any = None) -> str:
    """Publish a run folder to the Hub (token from HF_TOKEN or the local login), or with `dry_run` write
    exactly the folder that would be uploaded; returns the repo URL or the folder."""
    from astapp.export import publish

    if dry_run:
        return str(publish.prepare(Path(run), repo, Path(dry_run), license))
    return publish.push(Path(run), repo, hub_token(), private=not public, license=license, api=api,
                        progress=progress)


def hub_token() -> str | None:
    """The command line's Hugging Face token: HF_TOKEN, else the one `hf auth login` saved."""
    import os

    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # noqa: BLE001 - no saved login is just no token
        return None
