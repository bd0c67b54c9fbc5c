"""Service.detecting: a session's model (through the Predict tab's predictor cache) on one recording, and a
resumable job kept in the session's workspace."""

from __future__ import annotations

from pathlib import Path

import pytest
from detect_helpers import OracleScorer, write_recording

from astapp.core.errors import AccessError, UploadError
from astapp.jobs.sessions import Session
from astapp.service.detecting import Detecting, detect_settings


class FakePredicting:
    def __init__(self):
        self.scorer = OracleScorer()
        self.predictors = self

    def model_folder(self, session, run_id):
        if not run_id:
            raise AccessError("No trained model yet.")
        return Path("/models") / run_id

    def get(self, folder):
        return self.scorer


def test_detect_recording_and_a_job_in_the_workspace(tmp_path):
    session = Session("owner1", tmp_path / "ws")
    part = Detecting(FakePredicting())
    rec = write_recording(tmp_path / "r.wav", 10.0, [("hum", 2.0, 5.0)])
    det = part.detect_recording(session, "run1", rec, detect_settings(hop=0.25))
    assert [e.label for e in det.events] == ["hum"] and det.scores.shape[1] == 3
    summary = part.detect(session, "run1", [rec], detect_settings(hop=0.25))
    assert summary.counts == {"hum": 1}
    assert (tmp_path / "ws" / "detections" / "run1" / "events.csv").is_file()
    assert part.detect(session, "run1", [rec], detect_settings(hop=0.25)).skipped == [str(rec)]  # kept: a reload finds it
    with pytest.raises(UploadError):
        part.detect_recording(session, "run1", None)
    with pytest.raises(AccessError):
        part.output_folder(session, "../escape")


def test_two_uploads_with_one_name_keep_their_own_records(tmp_path):
    """Uploads land in temp folders of their own: two `r.wav` are two recordings, each kept and skipped alone."""
    session = Session("owner1", tmp_path / "ws")
    part = Detecting(FakePredicting())
    first = write_recording(tmp_path / "up1" / "r.wav", 6.0, [("hum", 1.0, 3.0)])
    second = write_recording(tmp_path / "up2" / "r.wav", 6.0, [("beep", 2.0, 4.0)])
    summary = part.detect(session, "run1", [first, second], detect_settings(hop=0.25))
    assert sorted(summary.done) == sorted([str(first), str(second)]) and summary.counts == {"beep": 1, "hum": 1}
    calls = part.predicting.scorer.calls
    again = part.detect(session, "run1", [second, first], detect_settings(hop=0.25))
    assert part.predicting.scorer.calls == calls and sorted(again.skipped) == sorted([str(first), str(second)])
