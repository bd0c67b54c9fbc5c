"""Distillation (issue 28): a tiny trained teacher teaches a smaller student, written as a normal run folder
that predict, export (ONNX) and transformers' pipeline load; the teacher-vs-student table; the CLI and the
service paths; and one sentence for each bad input (unfinished run, larger student, undecodable pool)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import cfg_for, history, one_thread  # noqa: F401 - autouse fixture

from astapp.cli import main
from astapp.core.errors import DatasetError, TrainingError
from astapp.data.synth import make_class_folders
from astapp.distill.pool import build_pool, cut
from astapp.distill.sizes import check_smaller, parse_size, student_config
from astapp.distill.teacher import open_teacher
from astapp.distill.trainer import DistillCollator, distill_loss
from astapp.jobs.record import run_job


# --- fast: sizes, loss, pool, teacher checks ---------------------------------------------------------
def test_sizes_parse_and_a_larger_student_is_refused_with_both_sizes():
    from transformers import ASTConfig

    assert parse_size("tiny") == (192, 4) and parse_size("small") == (384, 6) and parse_size(" 128X2 ") == (128, 2)
    for bad in ("huge", "100x2", "64x0", ""):
        with pytest.raises(TrainingError, match="(?i)student size"):
            parse_size(bad)
    teacher = ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                        max_length=64, num_labels=3)
    student = student_config(teacher, "32x1")
    assert (student.hidden_size, student.num_hidden_layers, student.max_length, student.num_labels) == (32, 1, 64, 3)
    check_smaller(student, teacher)
    with pytest.raises(TrainingError, match=r"student \(hidden 192, 4 layers.*not smaller than its teacher "
                                            r"\(hidden 64, 2 layers"):
        check_smaller(student_config(teacher, "tiny"), teacher)


def test_the_soft_loss_falls_when_the_student_moves_towards_the_teacher():
    torch.manual_seed(0)
    teacher = torch.randn(8, 4) * 3
    student = torch.zeros(8, 4, requires_grad=True)
    labels = torch.tensor([0, 1, -1, -1, 2, 3, -1, 0])  # -1: unlabeled windows get the soft term only
    opt = torch.optim.SGD([student], lr=1.0)
    losses = []
    for _ in range(100):
        loss = distill_loss(student, teacher, labels, multi_label=False, soft_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0] and all(b <= a + 1e-6 for a, b in zip(losses, losses[1:], strict=False))
    multi = distill_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([[1.0, 0, 1], [-1, -1, -1]]), True)
    assert torch.isfinite(multi)


def test_agreement_is_split_by_whether_the_teacher_is_right():
    from astapp.distill.compare import where_the_teacher_errs

    y = np.array([0, 1, 2, 2, 1, 0])
    teacher = np.array([0, 1, 1, 2, 0, 0])  # wrong on clips 2 and 4
    student = np.array([0, 2, 2, 2, 0, 0])  # leaves the teacher on clip 1, fixes clip 2, copies clip 4
    got = where_the_teacher_errs(y, teacher, student)
    assert got == {"agreement_where_teacher_right": 0.75, "teacher_wrong": 2, "student_right_where_teacher_wrong": 1}


def test_the_cli_line_says_agreement_also_where_the_teacher_is_right():
    from astapp.cli.distill import summary

    m = {"accuracy": 0.9, "teacher_accuracy": 0.8,
         "distill": {"agreement": 0.85, "agreement_where_teacher_right": 0.97, "speedup": 3.2, "size_ratio": 0.1}}
    assert summary("finished", m) == ("Finished: student accuracy 0.900 (teacher 0.800), agreement with the teacher "
                                      "0.850 (0.970 where the teacher is right), 3.2x faster, 10 % of its size.")
    del m["distill"]["agreement_where_teacher_right"]  # multi-label: no split
    assert "where the teacher" not in summary("finished", m)


def test_mixup_mixes_labels_and_keeps_unlabeled_items_unlabeled():
    feats = torch.arange(4, dtype=torch.float32)[:, None, None].expand(4, 8, 4).clone()
    items = [{"input_values": feats[i], "labels": label} for i, label in enumerate([0, 1, -1, 2])]
    collate = DistillCollator(3, mixup=1.0, seed=3)
    out = collate(items)
    x, y = out["input_values"], out["labels"]
    assert y.shape == (4, 3) and not torch.equal(x, feats)  # every item mixed with a partner (p = 1)
    # item i is lam * x_i + (1 - lam) * x_j: recover j from the constant feature rows, then check the labels
    for i in range(4):
        value = float(x[i, 0, 0])
        partners = [j for j in range(4) if j != i and min(i, j) - 1e-6 <= value <= max(i, j) + 1e-6]
        assert partners, (i, value)
        if i == 2 or all(j == 2 for j in partners):  # mixed with the unlabeled item: no hard label
            assert torch.all(y[i] == -1)
        else:
            assert torch.all(y[i] >= 0) and float(y[i].sum()) == pytest.approx(1.0) and int((y[i] > 0).sum()) == 2
    again = DistillCollator(3, mixup=1.0, seed=3)
    assert torch.equal(again(items)["input_values"], x)  # batch 0 draws the same, whatever ran before
    assert not torch.equal(again(items)["input_values"], x)  # batch 1 draws anew
    again.batches = 0  # as a resumed run sets it from its checkpoint's step
    assert torch.equal(again(items)["input_values"], x)


def test_the_hard_term_of_mixed_rows_is_soft_cross_entropy_on_labelled_rows():
    torch.manual_seed(1)
    student, teacher = torch.randn(3, 4), torch.randn(3, 4)
    rows = torch.tensor([[0.6, 0.4, 0.0, 0.0], [-1.0, -1.0, -1.0, -1.0], [0.0, 0.0, 0.3, 0.7]])
    hard_only = distill_loss(student, teacher, rows, multi_label=False, soft_weight=0.0)
    keep = torch.tensor([0, 2])
    expected = -(rows[keep] * torch.log_softmax(student[keep], -1)).sum(-1).mean()
    assert float(hard_only) == pytest.approx(float(expected), rel=1e-6)
    assert float(distill_loss(student, teacher, rows, False, soft_weight=1.0)) == pytest.approx(
        float(distill_loss(student, teacher, torch.tensor([-1, -1, -1]), False, soft_weight=1.0)), rel=1e-6)


def test_pool_windows_skip_bad_files_and_silence(tmp_path):
    make_class_folders(tmp_path / "pool", n_classes=2, per_class=2, seconds=2.0, seed=3)
    (tmp_path / "pool" / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    import soundfile as sf

    sf.write(tmp_path / "pool" / "silence.wav", np.zeros(32000, np.float32), 16000)
    pool = build_pool(tmp_path / "pool", 64, tmp_path / "cache")
    s = pool.summary()
    assert s["files"] == 5 and [x["path"] for x in s["skipped"]] == ["broken.wav"] and s["silent_windows"] > 0
    assert pool.windows.shape[1] == 63 * 160 + 400 and len(pool.windows) >= 4 * 3  # 2 s -> three 0.64 s windows
    assert [len(w) for w in cut(np.ones(25), 10)] == [10, 10, 10] and cut(np.ones(3), 10) == []
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "a.wav").write_bytes(b"not audio")
    with pytest.raises(DatasetError, match="no audio that decodes.*a.wav"):
        build_pool(only_bad, 64, tmp_path / "cache2")
    with pytest.raises(DatasetError, match="does not exist"):
        build_pool(tmp_path / "nowhere", 64, tmp_path / "cache3")


def test_an_unfinished_or_missing_run_cannot_teach(tmp_path):
    with pytest.raises(TrainingError, match="is not a folder"):
        open_teacher(tmp_path / "nope")
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    with pytest.raises(TrainingError, match="is running, not finished"):
        open_teacher(run)
    (run / "status.json").write_text(json.dumps({"state": "finished"}))
    with pytest.raises(TrainingError, match="no trained model"):
        open_teacher(run)


# --- slow: a real teacher and student ------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("distill")
    make_class_folders(root / "sounds", n_classes=3, per_class=8, seconds=1.0, seed=1)
    make_class_folders(root / "pool", n_classes=3, per_class=4, seconds=3.0, seed=7)
    (root / "pool" / "bad.wav").write_bytes(b"not audio")
    import soundfile as sf

    noise = root / "sounds" / "_background_noise_"  # the dataset's noise: unlabeled audio when no --pool
    noise.mkdir()
    rng = np.random.default_rng(5)
    for i in range(2):
        sf.write(noise / f"hum{i}.wav", (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)
    return root


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory, one_thread_module) -> Path:
    run = tmp_path_factory.mktemp("teacher") / "run"
    from conftest import build_tiny_ast

    ckpt = build_tiny_ast(run.parent / "ckpt", max_length=64, num_labels=3)
    assert run_job(cfg_for(run, ckpt, data / "sounds", epochs=4, lr=1e-2, seed=4)).state == "finished"
    return run


@pytest.fixture(scope="module")
def one_thread_module(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("ASTAPP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "astapp-cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    mp.undo()


@pytest.fixture(scope="module")
def student(teacher, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student") / "run"
    code = main(["distill", "--run", str(teacher), "--student", "32x1", "--output", str(out),
                 "--pool", str(data / "pool"), "--epochs", "10", "--quiet"])
    assert code == 0
    return out


@pytest.mark.slow
def test_the_student_agrees_with_its_teacher_and_is_a_normal_run(student, teacher):
    doc = json.loads((student / "distill.json").read_text())
    assert doc["agreement"] >= 0.9 and doc["clips"] >= 5
    assert doc["student"]["parameters"] < doc["teacher"]["parameters"] / 2
    assert doc["student"]["size_mb"] < doc["teacher"]["size_mb"] and doc["student"]["ms_per_clip"] > 0
    assert doc["pool"]["skipped"][0]["path"] == "bad.wav" and doc["pool"]["windows"] >= 12
    m = json.loads((student / "metrics.json").read_text())
    assert m["soft_loss_last"] < m["soft_loss_first"]
    assert m["mode"] == "distill" and m["distilled_from"] == str(teacher.resolve()) and "unknown" in m
    assert {"accuracy", "f1_macro", "confusion_matrix", "predictions", "best_epoch"} <= set(m)
    cfg = json.loads((student / "config.json").read_text())
    assert cfg["task"] == "distill" and cfg["distilled_from"] == str(teacher.resolve()) and cfg["student"] == "32x1"
    assert cfg["student_init"] == "teacher"
    assert any("starting from a slice of the teacher's weights" in e.get("message", "") for e in history(student)
               if e["type"] == "stage")
    assert json.loads((student / "status.json").read_text())["state"] == "finished"
    assert (student / "model" / "unknown.json").is_file() and not (student / ".poolcache").exists()
    losses = [e["loss"] for e in history(student) if e["type"] == "log"]
    assert losses and losses[-1] < losses[0]
    from astapp.distill.compare import table

    rows = table(doc)
    assert [r[0] for r in rows] == ["accuracy", "macro F1", "agreement with the teacher",
                                    "… where the teacher is right", "the teacher's mistakes it gets right",
                                    "size (MB)", "ms per clip"]
    assert 0.0 <= doc["agreement_where_teacher_right"] <= 1.0
    assert 0 <= doc["student_right_where_teacher_wrong"] <= doc["teacher_wrong"] <= doc["clips"]


@pytest.mark.slow
def test_predict_export_onnx_and_pipeline_load_the_student(student, data, tmp_path, capsys):
    from transformers import pipeline

    clip = next((data / "sounds").rglob("*.wav"))
    assert main(["predict", "--model", str(student), str(clip), "--top-k", "1"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert main(["export", "--run", str(student), "--output", str(tmp_path / "s.zip")]) == 0
    names = set(zipfile.ZipFile(tmp_path / "s.zip").namelist())
    assert {"s/onnx/model.onnx", "s/onnx/model_quantized.onnx", "s/onnx/check.json", "s/demo.html"} <= names
    check = json.loads((student / "onnx" / "check.json").read_text())
    assert check["passed"] and check["fp32"]["top1_agreement"] == 1.0
    import soundfile as sf

    wav, sr = sf.read(clip, dtype="float32")
    theirs = pipeline("audio-classification", model=str(student / "model"))({"raw": wav, "sampling_rate": sr}, top_k=1)
    assert theirs[0]["label"] == ours["label"]


@pytest.mark.slow
def test_cli_sentences_for_bad_input(teacher, tmp_path, capsys):
    assert main(["distill", "--run", str(teacher), "--student", "tiny", "--output", str(tmp_path / "s")]) == 2
    assert "not smaller than its teacher" in capsys.readouterr().err
    assert main(["distill", "--run", str(tmp_path / "none"), "--output", str(tmp_path / "s")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["distill", "--run", str(teacher), "--student", "32x1", "--output", str(tmp_path / "s"),
                 "--pool", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_the_service_queues_a_student_and_says_which_model_answers(teacher, student, tmp_path):
    from astapp.jobs.manager import JobManager
    from astapp.service import Service

    svc = Service(JobManager(tmp_path / "data", start=False), hub_online=False)
    session = svc.open("owner-token-distill")
    own = tmp_path / "data" / "runs" / session.owner
    shutil.copytree(teacher, own / "teacher1")
    shutil.copytree(student, own / "student1")
    cfg = json.loads((own / "student1" / "config.json").read_text())
    cfg["distilled_from"] = str((own / "teacher1").resolve())  # the copy teaches the copy
    (own / "student1" / "config.json").write_text(json.dumps(cfg))
    assert "small fast version (run student1)" in svc.distilling.model_note(session, "teacher1")
    assert "Using the small fast version (32x1)" in svc.distilling.model_note(session, "student1")
    assert [r[0] for r in svc.distilling.table(session, "student1")][2] == "agreement with the teacher"
    assert svc.distilling.table(session, "teacher1") == []
    with pytest.raises(TrainingError, match="not smaller"):  # refused before it is queued
        svc.distilling.start(session, "teacher1", "small")
    with pytest.raises(TrainingError, match="is running, not finished"):
        (own / "teacher1" / "status.json").write_text(json.dumps({"state": "running"}))
        svc.distilling.start(session, "teacher1", "32x1")
    (own / "teacher1" / "status.json").write_text(json.dumps({"state": "finished"}))
    job = svc.distilling.start(session, "teacher1", "32x1", epochs=1)
    queued = json.loads((own / job / "config.json").read_text())
    assert queued["task"] == "distill" and queued["distilled_from"] == str((own / "teacher1").resolve())
    svc.manager.shutdown(timeout=5)


@pytest.mark.slow
def test_a_distillation_stopped_and_resumed_ends_with_the_same_student(teacher, tmp_path):
    """With mixup on and, no --pool given, the dataset's background noise as unlabeled audio: a run stopped
    mid-epoch (as a ZeroGPU slice ends) and resumed from its checkpoint ends where one run in one go does."""
    import dataclasses
    import threading

    from transformers import ASTForAudioClassification

    from astapp.core import runfolder
    from astapp.distill.run import distill_config

    def cfg(out: Path):
        c = distill_config(teacher, "32x1", out, epochs=3)
        return dataclasses.replace(c, augment=dataclasses.replace(c.augment, mixup=0.5))

    whole = run_job(cfg(tmp_path / "whole"))
    assert whole.state == "finished"
    stop = threading.Event()
    per_epoch = whole.metrics["global_step"] // 3
    assert per_epoch >= 4

    def stop_mid_epoch_2(ev):  # the stop lands a step or two later: mid-epoch 2, after epoch 1's best
        if ev.get("type") == "log" and ev.get("step") == per_epoch + 1:
            stop.set()

    first = run_job(cfg(tmp_path / "sliced"), stop_mid_epoch_2, stop)
    assert first.state == "stopped" and runfolder.last_checkpoint(tmp_path / "sliced") is not None
    assert (tmp_path / "sliced" / runfolder.BEST).is_dir()
    rest = run_job(dataclasses.replace(cfg(tmp_path / "sliced"), resume="latest"))
    assert rest.state == "finished" and rest.metrics["resumed_from"]
    a, b = whole.metrics, rest.metrics
    for key in ("accuracy", "f1_macro", "best_epoch", "global_step", "confusion_matrix"):
        assert a[key] == b[key], key
    assert b["soft_loss_first"] == pytest.approx(a["soft_loss_first"], rel=1e-5)
    assert b["soft_loss_last"] == pytest.approx(a["soft_loss_last"], rel=1e-4)
    wa = ASTForAudioClassification.from_pretrained(tmp_path / "whole" / "model").state_dict()
    wb = ASTForAudioClassification.from_pretrained(tmp_path / "sliced" / "model").state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    assert a["pool"]["files"] == 2 and a["pool"]["windows"] >= 4  # the two 2 s noise clips, cut into windows
    logs = [e.get("message", "") for e in history(tmp_path / "whole")]
    assert any("background-noise clips are used as unlabeled audio" in m for m in logs)
    assert any("mixup (p=0.5; the teacher sees the mixed clips)" in m for m in logs)
    assert not (tmp_path / "sliced" / runfolder.CHECKPOINTS).exists()  # cleaned once finished
