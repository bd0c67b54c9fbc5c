"""Detection for the app and the CLI: events in long recordings, and their scores against references.

The app's part (`Service.detecting`) runs a session's trained model through the predictor cache the
Predict tab uses, and keeps a job's outputs in the session's workspace (`detections/<run id>/`: the
per-file records, merged events and summary), so a reload, or a second look the next day, finds them.
The headless functions are what `python -m astapp detect` and `detect-score` run.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astapp.core.errors import AccessError, ModelLoadError, UploadError
from astapp.core.events import EventSink
from astapp.jobs.sessions import Session

DETECTIONS = "detections"


def detect_settings(**values: Any) -> Any:
    """`astapp.detection.detect.DetectSettings` from keyword values (None means the default), checked."""
    from astapp.detection.detect import DetectSettings

    return DetectSettings(**{k: v for k, v in values.items() if v is not None}).validate()


def _check_model(model: str) -> None:
    if not Path(model).expanduser().exists():
        raise ModelLoadError(f"The model {model!r} does not exist. Give a trained model: a run folder (what "
                             "`astapp train --output` wrote) or an exported model folder (an unzipped "
                             "`astapp export` zip).")


def detect_files(model: str, files: Sequence[str], output: str, settings: Any = None, backend: str = "torch",
                 int8: bool = False, events: EventSink | None = None, stop: threading.Event | None = None,
                 shard: str | tuple[int, int] | None = None, fmt: str = "csv", threads: int = 0) -> Any:
    """`astapp.detection.run.detect_files` for the CLI: the summary of a resumable job in `output`."""
    from astapp.detection.run import detect_files as run
    from astapp.detection.run import parse_shard

    part = parse_shard(shard) if isinstance(shard, str) else shard  # a typo is said before the model loads
    _check_model(model)
    return run(model, list(files), output, settings, backend=backend, int8=int8, events=events, stop=stop,
               shard=part, fmt=fmt, threads=threads)


def detect_score(output: str, reference: str, collar: float = 0.5, target_fa_per_hour: float | None = None
                 ) -> dict[str, Any]:
    """A detection output scored against reference annotations (and the threshold sweep with a target)."""
    from astapp.detection.reference import score_output

    if collar <= 0:
        raise UploadError(f"--collar must be a positive number of seconds (got {collar}).")
    if target_fa_per_hour is not None and target_fa_per_hour < 0:
        raise UploadError(f"--target-fa-per-hour must be 0 or more (got {target_fa_per_hour}).")
    return score_output(output, reference, collar, target_fa_per_hour)


class Detecting:
    """A session's trained model finding events in recordings (one in memory, or many into its workspace)."""

    def __init__(self, predicting: Any):
        self.predicting = predicting  # its model folders and predictor cache are shared with Predict

    def _scorer(self, session: Session, run_id: str | None) -> Any:
        return self.predicting.predictors.get(self.predicting.model_folder(session, run_id))

    def detect_recording(self, session: Session, run_id: str | None, path: str | Path | None,
                         settings: Any = None) -> Any:
        """`astapp.detection.detect.Detections` of one uploaded recording (events, the score timeline)."""
        from astapp.detection.detect import detect_recording

        if not path:
            raise UploadError("Upload a recording first.")
        return detect_recording(self._scorer(session, run_id), Path(path), settings, name=Path(path).name)

    def output_folder(self, session: Session, run_id: str | None) -> Path:
        """Where this session's detections with a run's model live (inside its workspace)."""
        if not run_id or not re.fullmatch(r"[\w.-]+", run_id):
            raise AccessError("Pick one of your trained models first.")
        return session.workspace / DETECTIONS / run_id

    def detect(self, session: Session, run_id: str | None, paths: Sequence[str | Path], settings: Any = None,
               events: EventSink | None = None, stop: threading.Event | None = None, fmt: str = "csv") -> Any:
        """A resumable job over uploaded recordings into the session's workspace: its `DetectSummary`."""
        from astapp.detection.run import detect_files as run

        if not paths:
            raise UploadError("Upload one or more recordings (or a zip of them) first.")
        return run(self._scorer(session, run_id), list(paths), self.output_folder(session, run_id), settings,
                   events=events, stop=stop, fmt=fmt)
