"""Review by ear: a recording's detected events, a decision on each, and the decisions back into training.

Per recording, `<workspace>/review/<id>/` holds a copy of the recording and `review.json`: the events
(label, start, end, score) with the user's decision on each (confirmed, relabelled to X, rejected = a false
alarm, or a missed sound the user marked). The files are the state, so a reload or a restart shows the
same list. Each decision puts its clip among the clips waiting for the next dataset version at once (the
same store as Listen live's "that was wrong"); undoing it takes the clip back out. "Add to dataset and
retrain" makes the version and queues a training run with the settings of the run that found the events.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.config import TrainConfig
from astapp.core.errors import AccessError, DatasetError, UploadError
from astapp.core.fsutil import atomic_write_text
from astapp.core.paths import check_id
from astapp.core.runfolder import CONFIG, read_json
from astapp.data.additions import BACKGROUND, PendingAdditions, clip_span, read_span
from astapp.jobs.manager import JobManager
from astapp.jobs.sessions import Session
from astapp.service.detecting import Detecting
from astapp.service.versioning import Versioning

REVIEW_DIR, REVIEW_FILE = "review", "review.json"
DECISIONS = {"confirm": "confirmed", "relabel": "relabelled", "reject": "rejected"}
KIND_OF = {"confirmed": "confirmed", "relabelled": "relabelled", "rejected": "false_alarm", "missed": "missed"}
CONTEXT_SECONDS = 1.0  # heard around an event
ZOOM_SECONDS = 20.0  # the strip around an event (the whole recording when shorter)
MAX_RECORDINGS = 200


@dataclass
class Review:
    """One recording under review (review.json)."""

    id: str
    name: str  # the recording's file name as uploaded
    audio: str  # the copy in the workspace
    duration: float
    run_id: str | None  # the run whose model found the events (its settings retrain)
    events: list[dict[str, Any]] = field(default_factory=list)  # index, label, start, end, score, decision, ...

    def filtered(self, label: str | None = None, min_score: float = 0.0) -> list[dict[str, Any]]:
        """The events a filter keeps (class "" or None = all; missed sounds always shown)."""
        return [e for e in self.events if (not label or e["label"] == label or e.get("new_label") == label)
                and (e.get("decision") == "missed" or float(e.get("score") or 0) >= float(min_score or 0))]

    def event(self, index: int) -> dict[str, Any]:
        for e in self.events:
            if e["index"] == int(index):
                return e
        raise AccessError(f"There is no event {index} in {self.name}; pick one from the list.")

    def counts(self) -> str:
        done = sum(1 for e in self.events if e.get("decision"))
        return f"{len(self.events)} events, {done} decided"


def _event(i: int, e: dict[str, Any]) -> dict[str, Any]:
    start, end = float(e["start"]), float(e["end"])
    if not end > start >= 0:
        raise DatasetError(f"Event {i + 1} ends ({end:g} s) before it starts ({start:g} s); fix the events file.")
    return {"index": i, "label": str(e["label"]), "start": round(start, 3), "end": round(end, 3),
            "score": round(float(e.get("score") or 0.0), 4), "decision": None, "new_label": None}


def _origin(review: Review, e: dict[str, Any]) -> str:
    """Which event a waiting clip came from: by label and times, which stay the same when a new detection
    renumbers the list (an index would then point at another event)."""
    return f"review:{review.id}:{e['label']}@{e['start']}-{e['end']}"


class Reviewing:
    """Recordings under review, decisions on their events, and "Add to dataset and retrain"."""

    def __init__(self, manager: JobManager, versioning: Versioning, detecting: Detecting):
        self.manager = manager  # the run whose settings retrain; the queue that trains the new version
        self.versioning = versioning  # waiting clips and versions (its lock covers the review files too)
        self.detecting = detecting  # finds the events: the same path as every other detection of the app

    # --- where events come from ----------------------------------------------------------------
    def detect(self, session: Session, run_id: str | None, file: str | Path | None,
               settings: dict[str, Any] | None = None) -> tuple[Review, list[str]]:
        """Find the events of one recording with a run's model (`astapp.detection`, streamed) and open its
        review. Returns the review and what the user should know (padded, truncated)."""
        if not file:
            raise UploadError("Upload a recording first (wav, flac, ogg or mp3, any length).")
        from astapp.detection.detect import DetectSettings

        det = self.detecting.detect_recording(session, run_id, file, DetectSettings.from_dict(settings or {}))
        events = [{"label": e.label, "start": e.start, "end": e.end, "score": e.score} for e in det.events]
        return self.open(session, file, events, run_id=run_id), list(det.notes)

    def from_file(self, session: Session, file: str | Path | None, events_file: str | Path | None,
                  run_id: str | None = None) -> Review:
        """Open a recording's review with the events of a detection output (CSV, Audacity, Raven, JSONL):
        the events of that recording (all of them when the file names one recording or none)."""
        if not file or not events_file:
            raise UploadError("Upload the recording and its events file (CSV, Audacity, Raven or JSONL).")
        from astapp.detection.formats import parse_events, recording_stem

        name = Path(file).name
        parsed = parse_events(events_file, default_file=name)
        files = {e.file for e in parsed}
        mine = [e for e in parsed if len(files) <= 1 or recording_stem(Path(e.file)) == Path(name).stem]
        if not mine:
            raise DatasetError(f"{Path(events_file).name} lists no events of {name} (it names "
                               f"{', '.join(sorted(files)[:3])}); pick the events file of this recording.")
        return self.open(session, file, [{"label": e.label, "start": e.start, "end": e.end, "score": e.score}
                                         for e in mine], run_id=run_id)

    # --- recordings ----------------------------------------------------------------------------
    def open(self, session: Session, file: str | Path, events: list[dict[str, Any]], run_id: str | None = None,
             name: str | None = None) -> Review:
        """Start (or refresh) the review of a recording with `events` ({label, start, end, score}). The same
        recording again keeps the decisions of events that are found again (same label and times)."""
        src = Path(file)
        if not src.is_file():
            raise UploadError("Choose a recording first.")
        from astapp.data.audio import audio_info

        info = audio_info(src)  # refuses what cannot be decoded, in one sentence
        digest = hashlib.sha256()
        with src.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        rid = digest.hexdigest()[:16]
        folder = session.workspace / REVIEW_DIR / rid
        with self.versioning.lock(session):
            old = self._load(session, rid) if (folder / REVIEW_FILE).is_file() else None
            if old is None and len(self.list(session)) >= MAX_RECORDINGS:
                raise DatasetError(f"{MAX_RECORDINGS} recordings are under review already; finish or delete some.")
            audio = folder / f"recording{src.suffix.lower()}"
            if not audio.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, audio)
            new = [_event(i, e) for i, e in enumerate(sorted(events, key=lambda e: float(e["start"])))]
            if old is not None:
                kept = {(e["label"], e["start"], e["end"]): e for e in old.events}
                new = [{**kept.get((e["label"], e["start"], e["end"]), e), "index": e["index"]} for e in new]
                new += [{**e, "index": len(new) + i} for i, e in enumerate(x for x in old.events
                                                                         if x.get("decision") == "missed")]
            review = Review(rid, name or src.name, str(audio), float(info.duration), run_id, new)
            self._save(session, review)
        return review

    def list(self, session: Session) -> list[Review]:
        folder = session.workspace / REVIEW_DIR
        out = [self._load(session, d.name) for d in sorted(folder.iterdir())] if folder.is_dir() else []
        return [r for r in out if r is not None]

    def get(self, session: Session, rid: str) -> Review:
        review = self._load(session, check_id(rid, "recording"))
        if review is None:
            raise AccessError("That recording is not under review here; open it again in Detect.")
        return review

    # --- decisions -----------------------------------------------------------------------------
    def decide(self, session: Session, rid: str, index: int, action: str, label: str | None = None) -> Review:
        """confirm | reject | relabel (to `label`) | undo one event; its clip joins (or leaves) the waiting clips."""
        if action != "undo" and action not in DECISIONS:
            raise AccessError(f"Unknown decision {action!r}: confirm, reject, relabel or undo.")
        new_label = str(label or "").strip()
        if action == "relabel" and not new_label:
            raise DatasetError("Type the class the event really is, then relabel.")
        with self.versioning.lock(session):  # checked above: a refused decision changes nothing
            review = self.get(session, rid)
            e = review.event(index)
            pending = self.versioning.pending(session)
            origin = _origin(review, e)
            pending.remove_origin(origin)
            if action == "undo":
                if e.get("decision") == "missed":
                    review.events = [x for x in review.events if x is not e]
                else:
                    e["decision"], e["new_label"] = None, None
            else:
                e["decision"], e["new_label"] = DECISIONS[action], (new_label if action == "relabel" else None)
                self._add(pending, review, e, origin)
            self._save(session, review)
        return review

    def mark_missed(self, session: Session, rid: str, start: float, end: float, label: str) -> Review:
        """A sound the model missed, marked by the user (start, end, class): a new event, decided."""
        label = str(label or "").strip()
        if not label:
            raise DatasetError("Name the class of the missed sound.")
        with self.versioning.lock(session):
            review = self.get(session, rid)
            clip_span(start, end, review.duration)  # checks the span before anything is written
            e = {**_event(max((x["index"] for x in review.events), default=-1) + 1,
                          {"label": label, "start": start, "end": end, "score": 0.0}), "decision": "missed"}
            review.events.append(e)
            self._add(self.versioning.pending(session), review, e, _origin(review, e))
            self._save(session, review)
        return review

    def listen(self, session: Session, rid: str, index: int) -> tuple[int, Any]:
        """An event with a second of context either side, to hear it."""
        review = self.get(session, rid)
        e = review.event(index)
        a, b = max(0.0, e["start"] - CONTEXT_SECONDS), min(review.duration, e["end"] + CONTEXT_SECONDS)
        return 16000, read_span(review.audio, a, min(b, a + 60.0))

    def strip(self, session: Session, rid: str, index: int | None = None, zoom: float = ZOOM_SECONDS) -> Any:
        """The spectrogram strip around event `index` (the recording's start without one), events boxed."""
        from astapp.evaluation.figures import event_strip

        review = self.get(session, rid)
        zoom = max(2.0, min(float(zoom or ZOOM_SECONDS), 120.0))
        mid = (lambda e: (e["start"] + e["end"]) / 2)(review.event(index)) if index is not None else zoom / 2
        a = max(0.0, min(mid - zoom / 2, review.duration - zoom))
        wav = read_span(review.audio, a, min(review.duration, a + zoom))
        return event_strip(wav, a, review.events, index)

    # --- back into training --------------------------------------------------------------------
    def retrain(self, session: Session, background: str = BACKGROUND, run_id: str | None = None) -> tuple[Any, str]:
        """Every waiting clip into a new dataset version, then a training run on it with the settings of
        `run_id` (default: the run of the most recently reviewed recording). Returns (version, job id)."""
        run_id = run_id or next((r.run_id for r in sorted(
            self.list(session), key=lambda r: (Path(r.audio).parent / REVIEW_FILE).stat().st_mtime, reverse=True) if r.run_id), None)
        if not run_id:
            raise DatasetError("Pick the model whose settings should retrain (run detection with it first).")
        cfg = TrainConfig.from_dict(read_json(self.manager.get_run(session.owner, run_id).path / CONFIG))
        version, view = self.versioning.make(session, background)
        cfg.data, cfg.data_version, cfg.resume, cfg.task = view.root, version.summary, "", "train"
        name = f"{version.title} · {version.name} · {cfg.model.rstrip('/').split('/')[-1]}"
        return version, self.manager.submit(session.owner, cfg, name=name)

    # --- files ---------------------------------------------------------------------------------
    def _add(self, pending: PendingAdditions, review: Review, e: dict[str, Any], origin: str) -> None:
        kind = KIND_OF[e["decision"]]
        label = e["new_label"] if kind == "relabelled" else ("" if kind == "false_alarm" else e["label"])
        pending.add_span(Path(review.audio), e["start"], e["end"], review.duration, kind, label, review.name,
                         origin)

    def _load(self, session: Session, rid: str) -> Review | None:
        d = read_json(session.workspace / REVIEW_DIR / rid / REVIEW_FILE)
        if not d.get("id") or not Path(str(d.get("audio", ""))).is_file():
            return None
        return Review(str(d["id"]), str(d.get("name", "")), str(d["audio"]), float(d.get("duration") or 0),
                      d.get("run_id"), [e for e in d.get("events") or [] if isinstance(e, dict)])

    def _save(self, session: Session, review: Review) -> None:
        atomic_write_text(session.workspace / REVIEW_DIR / review.id / REVIEW_FILE,
                          json.dumps(review.__dict__, ensure_ascii=False))
