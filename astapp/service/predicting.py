"""Prediction for the app: a trained run's model on one clip or a zip of clips, and its download.

Predictors are cached per model folder (reloaded when the model is re-exported), so repeated clicks
cost one forward pass, not a reload.
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astapp.core.errors import AccessError, UploadError
from astapp.jobs.registry import model_dir
from astapp.jobs.sessions import Session

CACHE_SIZE = 3


def scratch_dir(prefix: str) -> Path:
    """A fresh folder in the system temp dir (Gradio serves files returned from there)."""
    return Path(tempfile.mkdtemp(prefix=f"astapp-{prefix}-"))


class PredictorCache:
    """The last few `astapp.predict.predictor.Predictor`s, by model folder and its export time.

    A model is loaded once however many requests ask for it at the same moment (five clients predicting with a
    fresh model used to load it five times side by side on 2 cores, and concurrent `from_pretrained` calls are
    not something transformers promises to be safe): the first request loads it, the others wait for it.
    """

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[tuple[str, float, int], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, float, int], threading.Lock] = {}  # one lock per model being loaded

    def get(self, folder: Path) -> Any:
        stats = folder / "unknown.json"  # a recalibrated or edited unknown threshold reloads the predictor too
        key = (str(folder), (folder / "config.json").stat().st_mtime,
               stats.stat().st_mtime_ns if stats.is_file() else 0)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            return self._load(key, folder)

    def _load(self, key: tuple[str, float, int], folder: Path) -> Any:
        """Load the model behind `key` unless a request that held the loading lock first already did."""
        from astapp.predict.predictor import Predictor

        with self._lock:
            if key in self._items:
                return self._items[key]
        try:
            predictor = Predictor(folder)
        except Exception:  # a failed load leaves no lock behind: the next request tries again
            with self._lock:
                self._loading.pop(key, None)
            raise
        with self._lock:  # cached and unlocked in one step: no request can start a second load in between
            self._items[key] = predictor
            self._loading.pop(key, None)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return predictor


class Predicting:
    """A trained run's model: predictions, the live listener, and its download."""

    def __init__(self, root: Path, predictors: PredictorCache):
        self.root = root  # the data root the runs live under
        self.predictors = predictors

    def model_folder(self, session: Session, run_id: str | None) -> Path:
        """The exported model of one of the session's runs (AccessError before there is one)."""
        if not run_id:
            raise AccessError("No trained model yet: train one in the Train tab, then pick it here.")
        return model_dir(self.root, session.owner, run_id)

    def predict(self, session: Session, run_id: str | None, clip: str | Path | None, top_k: int) -> Any:
        """`astapp.predict.predictor.Prediction` for one uploaded or recorded clip."""
        return self.predict_with_verdict(session, run_id, clip, top_k)[0]

    def predict_with_verdict(self, session: Session, run_id: str | None, clip: str | Path | None,
                             top_k: int) -> tuple[Any, str]:
        """(the `Prediction` of one clip, its unknown-score line: "unknown (not like any class; score 0.93 >
        0.71)", the score under the threshold, or why the model has none)."""
        if not clip:
            raise UploadError("Upload or record a clip first.")
        predictor = self.predictors.get(self.model_folder(session, run_id))
        pred = predictor.predict(clip, top_k=int(top_k))
        return pred, predictor.verdict(pred)

    def predict_batch(self, session: Session, run_id: str | None, zip_path: str | Path | None, top_k: int,
                      progress: Callable[[float, str], None] | None = None) -> tuple[Path, list[dict[str, Any]]]:
        """Every audio file in a zip: (CSV path, rows {file, label, prob, top, error})."""
        if not zip_path:
            raise UploadError("Upload a .zip of audio files first.")
        predictor = self.predictors.get(self.model_folder(session, run_id))
        rows = predictor.predict_many(zip_path, top_k=int(top_k), progress=progress)
        if not rows:
            raise UploadError("The zip holds no audio files (.wav, .flac, .mp3, .ogg …).")
        return predictor.to_csv(rows, scratch_dir("csv") / "predictions.csv"), rows

    def download(self, session: Session, run_id: str | None) -> Path:
        """The run's model as a zip that unpacks into one folder plain transformers loads, with its checked
        ONNX files (made once per model) and the browser demo (`astapp.export.bundle`)."""
        from astapp.export.bundle import build_zip

        name = model_zip_name(run_id)
        run = self.model_folder(session, run_id).parent
        return build_zip(run, scratch_dir("model") / f"{name}.zip", top=name)[0]

    def download_browser(self, session: Session, run_id: str | None) -> Path:
        """The model zip plus the browser runtime (~7 MB): unzip it anywhere static and open demo.html."""
        from astapp.export.bundle import build_zip

        name = f"{model_zip_name(run_id)}-browser"
        run = self.model_folder(session, run_id).parent
        return build_zip(run, scratch_dir("model") / f"{name}.zip", top=name, browser=True)[0]

    def usage_snippet(self, run_id: str | None) -> str:
        """The Python that uses the downloaded model (folder named as the zip unpacks)."""
        from astapp.model.folder import usage_snippet

        return usage_snippet(model_zip_name(run_id) if run_id else "astapp-model")

    def listener(self, session: Session, run_id: str | None, settings: Any = None) -> Any:
        """A `service.listening.Listener` over the run's model; per-class thresholds default to what the
        validation clips support (`thresholds_from_validation`), the unknown threshold to the model's."""
        from astapp.core.runfolder import METRICS, read_json
        from astapp.service.listening import Listener, ListenSettings, thresholds_from_validation

        folder = self.model_folder(session, run_id)
        predictor = self.predictors.get(folder)
        labels = list(predictor.labels)
        settings = settings or ListenSettings()
        if not settings.thresholds:
            preds = read_json(folder.parent / METRICS).get("predictions") or []
            settings.thresholds = thresholds_from_validation(preds, labels)
        if settings.unknown_threshold is None and predictor.unknown is not None:
            settings.unknown_threshold = predictor.unknown.threshold  # windows above it are "unknown"

        def predict(wav: Any) -> tuple[Any, float | None]:
            pred = predictor.predict(wav, top_k=len(labels))
            return pred.probs, pred.unknown

        return Listener(predict, labels, predictor.window_samples, settings)


def model_zip_name(run_id: str | None) -> str:
    return f"astapp-model-{run_id}"
