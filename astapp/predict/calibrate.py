"""Recalibrate the unknown score of a finished run (`python3 -m astapp calibrate`, the Evaluate tab).

Training fits and calibrates the unknown score (`astapp.training.embed.fit_unknown`); this redoes it after the
fact: for a run exported before unknown scores (the statistics are fitted now on its training clips), with
another share of known clips kept, or with the user's own "other" sounds, clips the model should reject.
Everything is scored the way prediction scores it (`Predictor`: windows, their mean), so the threshold
means exactly what `predict` compares it with. The known clips are the run's validation clips (found
under its dataset as the ONNX check finds them); the result is written atomically into the run's model
folder, which every later prediction, export and model card reads.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import ModelLoadError, UploadError
from astapp.core.runfolder import CONFIG, METRICS, MODEL, read_json
from astapp.evaluation import unknown

FIT_CLIPS = 256  # training clips embedded to refit a run without statistics (as at the end of training)


@dataclass
class RunClips:
    """The audio files of a run's dataset on disk: validation (known, for the threshold) and training."""

    validation: list[Path]
    training: list[tuple[Path, str]]  # (file, its first label)


def dataset_root(run: Path) -> Path | None:
    """The folder of the run's dataset, whatever it was trained from: a folder as it is; a zip or manifest
    resolved the way training resolved it (the zip's extraction in the run's cache is reused, else redone
    safely); None when it is gone or cannot be had (a Hub dataset offline)."""
    data = str(read_json(run / CONFIG).get("data", "")).strip()
    if not data:
        return None
    if Path(data).is_dir():
        return Path(data)
    from astapp.core.config import TrainConfig
    from astapp.data.ingest import resolve_source
    from astapp.training.pipeline import cache_root

    try:
        cfg = TrainConfig.from_dict({**read_json(run / CONFIG), "output": str(run)})
        return resolve_source(data, cache_root(cfg))
    except Exception:  # noqa: BLE001 - no dataset: the caller says what that means for it
        return None


def run_clips(run: Path) -> RunClips:
    """The run's validation clips (metrics.json's paths) and the rest of its dataset (the training clips)."""
    from astapp.data.ingest import scan
    from astapp.data.ingest.layout import rel_path

    root = dataset_root(run)
    if root is None:
        return RunClips([], [])
    listing = scan(root)
    val = {str(p.get("path", "")) for p in read_json(run / METRICS).get("predictions") or [] if isinstance(p, dict)}
    clips = RunClips([], [])
    for item in listing.items:
        names = {rel_path(item.path, listing.root), rel_path(item.path, root)}
        if names & val:
            clips.validation.append(item.path)
        else:
            clips.training.append((item.path, (item.labels or (item.label,))[0]))
    return clips


def model_folder(run: str | Path) -> Path:
    """The run's exported model (model/), or `run` itself when it is an exported model folder."""
    run = Path(run)
    for folder in (run / MODEL, run):
        if (folder / "config.json").is_file() and (folder / "preprocessor_config.json").is_file():
            return folder
    raise ModelLoadError(f"{run} has no trained model (no model/ folder with config.json): calibrate a finished "
                         "run, or wait until this one has saved its model.")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scores(predictor: Any, files: list[Path]) -> np.ndarray:
    """The unknown score of each readable file, as `predict` computes it."""
    rows = predictor.predict_many(files) if files else []
    return np.array([r["unknown"] for r in rows if not r.get("error") and r.get("unknown") is not None])


def _refit(predictor: Any, training: list[tuple[Path, str]], seed: int = 0) -> unknown.UnknownStats:
    """Fit the default statistics on (at most FIT_CLIPS of) the training clips: each clip's first window,
    as training saw one window of each clip."""
    if not training:
        raise UploadError("This run has no unknown score yet and its training clips are not on disk (the dataset "
                          "moved or was deleted), so none can be fitted; put the dataset back where it was trained "
                          "from, or train the model again.")
    from astapp.data.audio import load_audio

    pick = np.sort(np.random.default_rng(seed).permutation(len(training))[:FIT_CLIPS])
    index = {name: i for i, name in enumerate(predictor.labels)}
    wins, labels = [], []
    for i in pick:
        path, label = training[int(i)]
        if label in index:
            wins.append(load_audio(path, sr=16_000, max_seconds=30)[:predictor.window_samples])
            labels.append(index[label])
    embs = [predictor.backend.embed_logits(wins[b:b + predictor.batch_size])[0]
            for b in range(0, len(wins), predictor.batch_size)]
    return unknown.fit(np.concatenate(embs), np.asarray(labels), seed=seed)


def other_files(sources: Iterable[str | Path], tmp: Path, known: set[str]) -> list[Path]:
    """The audio files of the "other" sounds (files, folders, zips); one sentence when there are none, or
    when they are clips of the run's own dataset (those cannot teach what the model should reject)."""
    from astapp.predict.sources import expand_sources

    files = [p for _, p in expand_sources(list(sources), tmp) if p is not None]
    if not files:
        raise UploadError("The \"other\" sounds hold no audio files (.wav, .flac, .mp3, .ogg …); give files, a folder "
                          "or a zip of recordings the model should not recognise.")
    same = [p for p in files if _digest(p) in known]
    if same:
        raise UploadError(f"{len(same)} of the {len(files)} \"other\" sounds are clips of the run's own dataset "
                          f"(e.g. {same[0].name}); give recordings of sounds outside its classes instead.")
    return files


def recalibrate(run: str | Path, others: Iterable[str | Path] = (), keep: float | None = None,
                predictor: Any = None) -> dict[str, Any]:
    """Refit (when missing) and recalibrate the unknown score of `run`'s model and save it there.

    The threshold keeps the share `keep` of the validation clips; with `others` and no `keep`, it is the one
    that best separates the validation clips from them (`unknown.best_threshold`). Returns the saved
    summary plus what was done: {"refit", "known", "other", "auroc", "other_rejected", "folder"}."""
    from astapp.predict.predictor import Predictor

    folder = model_folder(run)
    run = folder.parent if folder.name == MODEL else folder
    if keep is not None and not 0.0 < float(keep) <= 1.0:
        raise UploadError(f"--keep is the share of known clips kept: a number above 0 and at most 1, not {keep}.")
    predictor = predictor or Predictor(folder)
    clips = run_clips(run)
    refit = unknown.load(folder) is None
    stats = _refit(predictor, clips.training) if refit else unknown.load(folder)
    assert stats is not None
    stats.threshold = None
    predictor.unknown = stats
    known = _scores(predictor, clips.validation)
    if known.size == 0:
        raise UploadError("The run's validation clips are not on disk (or it had none: every clip trained the "
                          "model), so there are no known clips to set the threshold on; put its dataset back, or "
                          "train again with a validation split.")
    sources = list(others)
    other = np.zeros(0)
    if sources:
        with tempfile.TemporaryDirectory(prefix="astapp-other-") as tmp:
            dataset = {_digest(p) for p in clips.validation + [p for p, _ in clips.training]}
            other = _scores(predictor, other_files(sources, Path(tmp), dataset))
        if other.size == 0:
            raise UploadError("None of the \"other\" sounds could be read as audio; give .wav, .flac, .mp3 or .ogg "
                              "files.")
    default_keep = float(read_json(run / CONFIG).get("unknown_keep") or stats.keep or unknown.DEFAULT_KEEP)
    t, note = None, ""
    if other.size and keep is None:  # the other sounds pick it, unless they separate no better than the default
        t = unknown.best_threshold(known, other)
        default = unknown.calibrate(known, default_keep)
        if default is not None and unknown.balanced(known, other, t) <= unknown.balanced(known, other, default):
            t, note = None, (f"The other sounds are not told apart better by any threshold than by the default (keep "
                             f"{default_keep:.0%} of known clips), so that one was kept.")
    unknown.set_threshold(stats, known, default_keep if keep is None else float(keep), other, threshold=t)
    unknown.save(stats, folder)
    return {**stats.summary(), "refit": refit, "known": int(known.size), "other": int(other.size),
            "auroc": stats.calibration.get("auroc"), "other_rejected": stats.calibration.get("other_rejected"),
            "folder": str(folder), "note": note}
