"""Review by ear through the service: decisions kept server-side (a restart shows them), each decision's clip
waiting for the next version, Listen live's "that was wrong" in the same store, "Add to dataset and retrain"
= a new version + a run with the previous run's settings; and the loop with a real tiny model: the new
version fixes every false alarm it was given."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fake_train import make_fake_train

from astapp.core.errors import AccessError, AstappError, DatasetError
from astapp.data.ingest import scan
from astapp.data.synth import make_class_folders, make_signal
from astapp.jobs.manager import JobManager
from astapp.service import Service

TIMEOUT = 30.0


@pytest.fixture
def svc(tmp_path):
    manager = JobManager(tmp_path / "data", train_fn=make_fake_train(steps=2))
    yield Service(manager, hub_online=False)
    manager.shutdown(timeout=5)


def _dataset(svc: Service, sess, root: Path, per_class: int = 3):
    make_class_folders(root, n_classes=2, per_class=per_class, seconds=1.0, seed=5)  # tone, chirp
    return svc.datasets.choose(sess, svc.datasets.inspect("Your dataset: sounds.zip", "upload", root, sess.workspace))


def _recording(path: Path, spans: list[tuple[float, str]], seconds: float, seed: int = 0) -> Path:
    """A 48 kHz stereo recording: quiet noise with a 1 s sound of `kind` at each start."""
    sr = 48_000
    rng = np.random.default_rng(seed)
    wav = rng.standard_normal(int(seconds * sr)).astype(np.float32) * 0.005
    for start, kind in spans:
        wav[int(start * sr):int(start * sr) + sr] += make_signal(kind, 1.0, sr, rng)
    sf.write(str(path), np.stack([wav, wav], axis=1), sr)
    return path


def _trained_run(svc: Service, sess) -> str:
    job = svc.training.start(sess, svc.training.form(sess))
    assert svc.manager.wait(job, TIMEOUT) == "finished"
    return job


def test_decisions_survive_a_restart_and_become_a_version_and_a_run(svc, tmp_path):
    sess = svc.open("alice-token")
    data = tmp_path / "sounds"
    _dataset(svc, sess, data)
    run = _trained_run(svc, sess)
    rec = _recording(tmp_path / "night.wav", [(1.0, "clicks"), (4.0, "tone"), (7.0, "chirp")], 10.0)
    events = [{"label": "tone", "start": 1.0, "end": 2.0, "score": 0.9},
              {"label": "tone", "start": 4.1, "end": 4.9, "score": 0.8},
              {"label": "tone", "start": 7.0, "end": 8.0, "score": 0.4}]
    review = svc.reviewing.open(sess, rec, events, run_id=run)
    rid = review.id
    svc.reviewing.decide(sess, rid, 0, "reject")
    svc.reviewing.decide(sess, rid, 1, "confirm")
    svc.reviewing.decide(sess, rid, 2, "relabel", "chirp")
    svc.reviewing.mark_missed(sess, rid, 8.5, 9.2, "tone")
    assert [a.kind for a in svc.versioning.pending(sess).list()] == ["false_alarm", "confirmed", "relabelled",
                                                                     "missed"]
    svc.reviewing.decide(sess, rid, 1, "undo")  # the confirmed clip leaves the waiting list again
    svc.reviewing.decide(sess, rid, 1, "confirm")
    assert len(svc.versioning.pending(sess).list()) == 4
    svc.versioning.keep_window(sess, np.r_[np.zeros(8000), make_signal("clicks", 1.0)], at=42.0)

    restarted = Service(JobManager(svc.root, train_fn=make_fake_train(), start=False), hub_online=False)
    again = restarted.reviewing.get(restarted.open("alice-token"), rid)
    assert [e["decision"] for e in again.events] == ["rejected", "confirmed", "relabelled", "missed"]
    assert again.events[2]["new_label"] == "chirp"
    assert [e["index"] for e in again.filtered(label="chirp")] == [2]
    assert [e["index"] for e in again.filtered(min_score=0.5)] == [0, 1, 3]  # missed sounds always shown
    assert again.counts() == "4 events, 4 decided"
    rate, heard = svc.reviewing.listen(sess, rid, 0)
    assert rate == 16000 and abs(len(heard) - 3 * 16000) < 10  # the event and a second either side
    reopened = svc.reviewing.open(sess, rec, events, run_id=run)  # the same detections again: decisions kept
    assert [e["decision"] for e in reopened.events] == ["rejected", "confirmed", "relabelled", "missed"]

    before = sorted(p.relative_to(data).as_posix() for p in data.rglob("*"))
    version, job = svc.reviewing.retrain(sess, background="background")
    assert svc.manager.wait(job, TIMEOUT) == "finished"
    assert version.name == "v2" and not svc.versioning.pending(sess).list()
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == before  # v1 unchanged
    items = scan(version.root).items
    assert sorted(i.label for i in items if "/added/" in i.path.as_posix()) == \
        ["background", "background", "chirp", "tone", "tone"]
    old_cfg = json.loads((svc.manager.get_run(sess.owner, run).path / "config.json").read_text())
    new_cfg = json.loads((svc.manager.get_run(sess.owner, job).path / "config.json").read_text())
    assert new_cfg["data"] == version.root and new_cfg["data_version"].startswith("v2 = v1 + ")
    assert {k: v for k, v in new_cfg.items() if k not in ("data", "data_version", "output")} == \
        {k: v for k, v in old_cfg.items() if k not in ("data", "data_version", "output")}
    listed = svc.versioning.view(sess)
    assert [v.name for v in listed.versions] == ["v2", "v1"] and listed.current == "v2"
    assert svc.datasets.current(sess).version == version.summary

    view = svc.versioning.use(sess, "v1")  # old versions stay usable
    assert Path(view.root) == data.resolve() and svc.versioning.view(sess).current == "v1"
    cfg = svc.training.config_from_form(sess, svc.training.form(sess))
    assert cfg.data_version.startswith("v1 = Your dataset: sounds.zip as chosen")


def test_bad_requests_are_one_sentence_and_change_nothing(svc, tmp_path):
    sess, bob = svc.open("alice-token"), svc.open("bob-token")
    _dataset(svc, sess, tmp_path / "sounds")
    rec = _recording(tmp_path / "night.wav", [(1.0, "clicks")], 4.0)
    rid = svc.reviewing.open(sess, rec, [{"label": "tone", "start": 1.0, "end": 2.0, "score": 0.9}]).id
    with pytest.raises(DatasetError, match="ends .* before it starts"):
        svc.reviewing.open(sess, rec, [{"label": "tone", "start": 2.0, "end": 1.0}])
    with pytest.raises(AccessError):
        svc.reviewing.get(bob, rid)  # another session's recording is not reachable
    with pytest.raises(AccessError):
        svc.reviewing.get(sess, "../../etc")
    for bad in [lambda: svc.reviewing.decide(sess, rid, 7, "reject"),
                lambda: svc.reviewing.decide(sess, rid, 0, "maybe"),
                lambda: svc.reviewing.decide(sess, rid, 0, "relabel", " "),
                lambda: svc.reviewing.mark_missed(sess, rid, 3.0, 2.0, "tone"),
                lambda: svc.reviewing.mark_missed(sess, rid, 9.0, 9.5, "tone"),
                lambda: svc.reviewing.mark_missed(sess, rid, 1.0, 2.0, ""),
                lambda: svc.versioning.keep_window(sess, np.zeros(16000)),
                lambda: svc.versioning.make(sess),
                lambda: svc.reviewing.retrain(sess)]:
        with pytest.raises(AstappError) as err:
            bad()
        assert str(err.value).endswith(".") and "\n" not in str(err.value)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(AstappError):
        svc.reviewing.open(sess, tmp_path / "broken.wav", [])
    assert not svc.versioning.pending(sess).list()
    assert [e["decision"] for e in svc.reviewing.get(sess, rid).events] == [None]
    svc.reviewing.decide(sess, rid, 0, "reject")
    with pytest.raises(DatasetError):  # a refused relabel leaves the earlier decision and its clip alone
        svc.reviewing.decide(sess, rid, 0, "relabel", "")
    assert [a.kind for a in svc.versioning.pending(sess).list()] == ["false_alarm"]
    assert [e["decision"] for e in svc.reviewing.get(sess, rid).events] == ["rejected"]


def test_concurrent_decisions_and_listen_clips_lose_nothing(svc, tmp_path):
    sess = svc.open("alice-token")
    rec = _recording(tmp_path / "night.wav", [(1.0, "clicks")], 6.0)
    events = [{"label": "tone", "start": 0.5 * i, "end": 0.5 * i + 0.5, "score": 0.9} for i in range(10)]
    rid = svc.reviewing.open(sess, rec, events).id
    threads = [threading.Thread(target=svc.reviewing.decide, args=(sess, rid, i, "reject")) for i in range(10)]
    threads += [threading.Thread(target=svc.versioning.keep_window, args=(sess, np.ones(8000) * 0.1))
                for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(svc.versioning.pending(sess).list()) == 15
    assert all(e["decision"] == "rejected" for e in svc.reviewing.get(sess, rid).events)


def test_the_strip_boxes_the_events_in_view(svc, tmp_path):
    sess = svc.open("alice-token")
    rec = _recording(tmp_path / "long.wav", [(1.0, "clicks"), (30.0, "tone")], 40.0)
    events = [{"label": "tone", "start": 1.0, "end": 2.0, "score": 0.9},
              {"label": "tone", "start": 30.0, "end": 31.0, "score": 0.8}]
    rid = svc.reviewing.open(sess, rec, events).id
    svc.reviewing.decide(sess, rid, 1, "reject")
    ax = svc.reviewing.strip(sess, rid, 1, zoom=10).axes[0]
    assert ax.get_xlim() == pytest.approx((25.5, 35.5))  # zoomed around the event
    assert len(ax.patches) == 1 and ax.patches[0].get_linestyle() == "--"  # only the one in view; rejected
    assert svc.reviewing.strip(sess, rid, None, zoom=60).axes[0].get_xlim() == pytest.approx((0.0, 40.0))


def test_detect_opens_a_review_through_the_detecting_part(svc, tmp_path, monkeypatch):
    """The Detect tab's "Find events" is `svc.reviewing.detect`: the events come from `svc.detecting` (the one
    path every detection of the app takes), named as uploaded, and open the recording's review."""
    from detect_helpers import OracleScorer, write_recording

    sess = svc.open("alice-token")
    oracle, asked = OracleScorer(), []
    monkeypatch.setattr(svc.predicting, "model_folder", lambda s, run_id: asked.append(run_id) or tmp_path / "m")
    monkeypatch.setattr(svc.predicting.predictors, "get", lambda folder: oracle)
    seen = []
    real = svc.detecting.detect_recording
    monkeypatch.setattr(svc.detecting, "detect_recording", lambda *a, **k: seen.append(a) or real(*a, **k))
    rec = write_recording(tmp_path / "upload-dir" / "night.wav", 10.0, [("hum", 2.0, 5.0)])
    review, notes = svc.reviewing.detect(sess, "run1", rec, {"hop": 0.25})
    assert len(seen) == 1 and asked == ["run1"] and oracle.calls > 0
    assert [n for n in notes if "no tuned per-class thresholds" in n]  # what the user should know comes along
    assert review.name == "night.wav" and review.run_id == "run1"
    assert [(e["label"], e["decision"]) for e in review.events] == [("hum", None)]
    assert abs(review.events[0]["start"] - 2.0) <= 0.5 and abs(review.events[0]["end"] - 5.0) <= 0.5  # half a window
    with pytest.raises(AstappError):
        svc.reviewing.detect(sess, "run1", None)


@pytest.mark.slow
def test_the_new_version_fixes_every_false_alarm_it_was_given(tiny_ast, tmp_path, monkeypatch):
    """The loop with a real tiny model: trained on tone and chirp only, it hears the hiss of band noise in a
    recording as one of them (false alarms); rejected in review, they become background clips of a new
    version, and the model retrained from the old run's settings on it hears background there."""
    import torch

    from astapp.predict.predictor import Predictor

    monkeypatch.setenv("ASTAPP_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(2)
    manager = JobManager(tmp_path / "data")
    try:
        svc = Service(manager, hub_online=False)
        sess = svc.open("alice-token")
        _dataset(svc, sess, tmp_path / "sounds", per_class=8)
        form = {**svc.training.form(sess), "model": str(tiny_ast), "epochs": 12, "lr": 1e-3, "batch_size": 4,
                "max_length": 128, "seed": 0}
        run = svc.training.start(sess, form)
        assert manager.wait(run, 600) == "finished", manager.tail(run)
        starts = [2.0 + 3.0 * i for i in range(6)]
        rec = _recording(tmp_path / "field.wav", [(t, "noise") for t in starts] + [(20.0, "tone")], 23.0, seed=9)
        old = Predictor(svc.predicting.model_folder(sess, run))
        events = []  # what a detector reports: the old model's top class on each sound (noise is no class)
        for t in starts + [20.0]:
            p = old.predict(read_span_16k(rec, t, t + 1.0), top_k=1)
            events.append({"label": p.top[0][0], "start": t, "end": t + 1.0, "score": p.top[0][1]})
        rid = svc.reviewing.open(sess, rec, events, run_id=run).id
        for e in svc.reviewing.get(sess, rid).events:
            svc.reviewing.decide(sess, rid, e["index"], "reject" if e["start"] < 20 else "confirm")
        version, job = svc.reviewing.retrain(sess)
        assert manager.wait(job, 600) == "finished", manager.tail(job)
        assert version.changes["false_alarm"] == {"background": 6}
        new = Predictor(svc.predicting.model_folder(sess, job))
        assert "background" in new.labels
        heard = [new.predict(read_span_16k(rec, t, t + 1.0), top_k=1).top[0][0] for t in starts]
        assert heard == ["background"] * len(starts), heard
        assert new.predict(read_span_16k(rec, 20.0, 21.0), top_k=1).top[0][0] == "tone"
        again, _notes = svc.reviewing.detect(sess, job, rec)  # what the user sees: the new model's detections
        assert again.run_id == job and again.id == rid  # the same recording's review, refreshed
        # no class is heard where the false alarms were ("unknown" stretches may remain: the recording's quiet
        # floor is unlike every training clip, and the unknown score says so rather than forcing a class)
        assert not [e for e in again.events if e["label"] in ("tone", "chirp") and e.get("decision") != "missed"
                    and any(e["start"] < t + 1.0 and t < e["end"] for t in starts)], again.events
    finally:
        manager.shutdown(timeout=10)


def read_span_16k(path: Path, start: float, end: float) -> np.ndarray:
    from astapp.data.additions import read_span

    return read_span(path, start, end)
