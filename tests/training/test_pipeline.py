"""Training engine: real runs on a tiny AST and generated audio (a few seconds each)."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import torch
from train_helpers import cfg_for, history, one_thread, val_probs_from_export  # noqa: F401 - the fixture
from transformers import ASTForAudioClassification

from astapp.core.config import TrainConfig
from astapp.core.errors import TrainingError
from astapp.core.events import JsonlSink, fanout
from astapp.evaluation.metrics import classification_metrics, scalar_metrics
from astapp.jobs.record import run_job
from astapp.training.trainer_utils import class_weights, classification_loss, load_weights

LOG_KEYS = {"type", "time", "step", "max_steps", "epoch", "loss", "lr", "elapsed", "eta", "progress",
            "samples_per_second"}
EVAL_KEYS = {"type", "time", "epoch", "step", "accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"}


# --- the full pipeline ------------------------------------------------------------------------
def test_full_run_restores_the_best_epoch_exactly(tmp_path, tiny_ast, small_dataset):
    run = tmp_path / "run"
    # lr 1e-2, seed 4: epochs 2-4 tie on accuracy and epoch 3 has the lowest loss, so the last epoch's weights
    # are NOT the best (and the tie-break is what chose them)
    result = run_job(cfg_for(run, tiny_ast, small_dataset, epochs=4, lr=1e-2, seed=4, warmup_ratio=0.0))
    assert result.state == "finished"
    evals = [e for e in history(run) if e["type"] == "eval"]
    assert [e["epoch"] for e in evals] == [1.0, 2.0, 3.0, 4.0]
    # ties on accuracy go to the lower loss, then the later epoch, as in BestKeeper
    best = max(evals, key=lambda e: (e["accuracy"], -e["loss"], e["epoch"]))
    m = json.loads((run / "metrics.json").read_text())
    assert m["best_epoch"] == best["epoch"] and m["best_why"] == "tied on accuracy, lower validation loss"
    for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"):
        assert m[k] == best[k], k  # exactly: the returned model IS the best epoch's model
    assert best["epoch"] != evals[-1]["epoch"], "pinned case: the best epoch should not be the last"
    assert m["loss"] != evals[-1]["loss"]
    # the export is that model: its predictions on the validation clips match metrics.json
    labels, probs = val_probs_from_export(run / "model", small_dataset, m["predictions"])
    assert labels == [p["pred"] for p in m["predictions"]]
    np.testing.assert_allclose(probs, [p["prob"] for p in m["predictions"]], atol=1e-5)
    assert len(m["predictions"]) == m["num_validation"] == 6
    assert sum(map(sum, m["confusion_matrix"])) == 6 and m["labels"] == ["chirp", "noise", "tone"]
    assert m["max_length"] == 64 and m["train_samples_per_second"] > 0 and m["std"] > 0


def test_run_folder_events_and_auto_length(tmp_path, tiny_ast, small_dataset):
    run = tmp_path / "run"
    live: list[dict] = []
    result = run_job(cfg_for(run, tiny_ast, small_dataset, epochs=1, max_length="auto"), events=live.append)
    for name in ("config.json", "report.json", "status.json", "metrics.json", "history.jsonl"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir()), "TensorBoard event files"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["checkpoint-5"]
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    saved = json.loads((run / "config.json").read_text())
    assert saved["max_length"] == 112 == result.metrics["max_length"]  # 1 s clips -> 100 frames -> 112
    events = history(run)
    assert events == live  # the file and the live channel carry the same events
    assert all({"type", "time"} <= set(e) for e in events)
    logs = [e for e in events if e["type"] == "log"]
    assert logs and all(set(e) >= LOG_KEYS for e in logs) and logs[-1]["progress"] == 1.0
    assert all(set(e) >= EVAL_KEYS for e in events if e["type"] == "eval")
    stages = {e["stage"] for e in events if e["type"] == "stage"}
    assert {"dataset", "stats", "model", "features", "training", "exporting"} <= stages
    split = next(e["message"] for e in events if e.get("stage") == "split")  # the split, said at the start
    assert split.startswith("Validating on a stratified 20% of the files per class (6 examples)")
    assert events[-1]["type"] == "done" and events[-1]["metrics"]["accuracy"] == result.metrics["accuracy"]


@pytest.mark.parametrize("mode,precision", [("frozen", "fp32"), ("last-1", "fp32"), ("frozen", "bf16"),
                                            ("last-1", "bf16")])
def test_fast_modes_train_only_the_top_and_export_identically(tmp_path, tiny_ast, small_dataset, mode,
                                                              precision):
    """bf16 caches the training split's activations under autocast; validation stays fp32, so the
    export still reproduces the logged validation predictions."""
    from astapp.model.loading import load_model

    run = tmp_path / "run"
    result = run_job(cfg_for(run, tiny_ast, small_dataset, mode=mode, lr=5e-3, precision=precision))
    m = result.metrics
    assert m["cached"] is True and m["mode"] == mode
    assert not (run / ".fastcache").exists(), "activation caches are removed after the run"
    labels, probs = val_probs_from_export(run / "model", small_dataset, m["predictions"])
    assert labels == [p["pred"] for p in m["predictions"]]
    np.testing.assert_allclose(probs, [p["prob"] for p in m["predictions"]], atol=1e-5)

    torch.manual_seed(0)
    start = load_model(str(tiny_ast), m["labels"], 64)
    done = ASTForAudioClassification.from_pretrained(run / "model")
    s0, s1 = start.state_dict(), done.state_dict()
    frozen = [k for k in s0 if not k.startswith("classifier.") and not (
        mode == "last-1" and (k.startswith("audio_spectrogram_transformer.layers.1.")
                              or k.startswith("audio_spectrogram_transformer.layernorm.")))]
    assert all(torch.equal(s0[k], s1[k]) for k in frozen)
    trained = [k for k in s0 if k not in frozen]
    assert any(not torch.equal(s0[k], s1[k]) for k in trained if "layers.1." in k or mode == "frozen")


def test_augmented_fast_mode_falls_back_and_trains_with_soft_weighted_loss(tmp_path, tiny_ast, small_dataset):
    run = tmp_path / "run"
    result = run_job(cfg_for(run, tiny_ast, small_dataset, mode="frozen", epochs=1, class_weighted=True,
                           augment={"preset": "light", "freq_mask": 8, "time_mask": 8, "mixup": 0.5}))
    assert result.state == "finished" and result.metrics["cached"] is False
    msg = next(e["message"] for e in history(run) if e["type"] == "stage" and e["stage"] == "training")
    assert "no caching" in msg
    if (os.cpu_count() or 1) > 1:  # augmentation + fbank ran in a DataLoader worker process
        assert result.metrics["dataloader_workers"] >= 1
    assert all(np.isfinite(e["loss"]) for e in history(run) if e["type"] == "log")


# --- resume and stop ------------------------------------------------------------------------------
@pytest.mark.slow
def test_stop_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_ast, small_dataset):
    stop = threading.Event()

    def stop_at_step_3(ev: dict) -> None:
        if ev["type"] == "log" and ev["step"] >= 3:
            stop.set()

    run = tmp_path / "run"
    cfg = cfg_for(run, tiny_ast, small_dataset, epochs=3, lr=5e-3)
    first = run_job(cfg, events=stop_at_step_3, stop=stop)
    assert first.state == "stopped" and first.model_dir is not None
    assert json.loads((run / "status.json").read_text())["state"] == "stopped"
    ckpt = next((run / "checkpoints").iterdir())
    stopped_at = int(ckpt.name.split("-")[1])
    assert 3 <= stopped_at < 15

    # the checkpoint really holds the trained encoder: loading through our path restores it, while
    # Trainer's plain strict=False load of the legacy names would silently leave it untouched
    from safetensors.torch import load_file

    reference = ASTForAudioClassification.from_pretrained(ckpt)
    fresh = ASTForAudioClassification(reference.config)
    naive = ASTForAudioClassification(reference.config)
    naive.load_state_dict(load_file(ckpt / "model.safetensors"), strict=False)
    load_weights(fresh, ckpt)
    x = torch.randn(2, 64, 128)
    with torch.no_grad():
        assert torch.equal(fresh(x).logits, reference(x).logits)
        assert not torch.allclose(naive(x).logits, reference(x).logits)

    resumed = run_job(TrainConfig.from_dict({**cfg.to_dict(), "resume": "latest"}))
    assert resumed.state == "finished" and resumed.resumed_from == str(ckpt)
    assert resumed.metrics["global_step"] == 15  # 3 epochs x ceil(18 / 4)
    steps = [e["step"] for e in history(run) if e["type"] == "log"]
    assert steps == list(range(1, stopped_at + 1)) + list(range(stopped_at + 1, 16))

    straight = run_job(cfg_for(tmp_path / "straight", tiny_ast, small_dataset, epochs=3, lr=5e-3))
    a = ASTForAudioClassification.from_pretrained(run / "model").state_dict()
    b = ASTForAudioClassification.from_pretrained(tmp_path / "straight" / "model").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert resumed.metrics["accuracy"] == straight.metrics["accuracy"]


def test_fast_mode_resume_continues_the_head(tmp_path, tiny_ast, small_dataset):
    stop = threading.Event()
    run = tmp_path / "run"
    cfg = cfg_for(run, tiny_ast, small_dataset, mode="frozen", lr=5e-3)
    first = run_job(cfg, events=lambda ev: ev["type"] == "log" and ev["step"] >= 2 and stop.set(), stop=stop)
    assert first.state == "stopped"
    resumed = run_job(TrainConfig.from_dict({**cfg.to_dict(), "resume": "latest"}))
    straight = run_job(cfg_for(tmp_path / "straight", tiny_ast, small_dataset, mode="frozen", lr=5e-3))
    assert resumed.metrics["global_step"] == 10 and resumed.metrics["cached"] is True
    a, b = resumed.model.classifier.state_dict(), straight.model.classifier.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_stop_before_training_saves_nothing(tmp_path, tiny_ast, small_dataset):
    stop = threading.Event()
    stop.set()
    result = run_job(cfg_for(tmp_path / "run", tiny_ast, small_dataset), stop=stop)
    assert result.state == "stopped" and result.model_dir is None
    assert not (tmp_path / "run" / "model").exists()


def test_early_stopping_stops_when_the_metric_stalls(tmp_path, tiny_ast, small_dataset):
    result = run_job(cfg_for(tmp_path / "run", tiny_ast, small_dataset, epochs=5, lr=1e-9, early_stopping=1))
    assert result.metrics["early_stopped"] is True
    evals = [e for e in history(tmp_path / "run") if e["type"] == "eval"]
    assert result.metrics["epochs"] == 2.0 and len(evals) == 2
    # the stalled metric ties: the tie goes to the lower loss, then the later epoch (BestKeeper)
    assert result.best_epoch == max(evals, key=lambda e: (e["accuracy"], -e["loss"], e["epoch"]))["epoch"]


# --- failures -------------------------------------------------------------------------------------
def test_bad_settings_list_every_problem(tmp_path):
    with pytest.raises(TrainingError) as err:
        run_job(TrainConfig(data="", output=str(tmp_path / "r"), epochs=0, batch_size=0, mode="sideways"))
    text = str(err.value)
    assert "No dataset" in text and "Epochs" in text and "Batch size" in text and "Mode" in text


def test_out_of_memory_becomes_a_clear_error(tmp_path, tiny_ast, small_dataset, monkeypatch):
    from astapp.training import trainer_utils

    def boom(self, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer_utils.AstTrainer, "train", boom)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="smaller batch size"):
        run_job(cfg_for(run, tiny_ast, small_dataset))
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "Out of memory" in status["error"]
    assert history(run)[-1]["type"] == "error"


def test_missing_resume_checkpoint_is_explained(tmp_path, tiny_ast, small_dataset):
    with pytest.raises(TrainingError, match="no checkpoint"):
        run_job(cfg_for(tmp_path / "run", tiny_ast, small_dataset, resume="latest"))


# --- units ----------------------------------------------------------------------------------------
def test_loss_handles_soft_labels_and_class_weights():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -1.0, 0.0]])
    hard = torch.tensor([0, 2, 1])
    soft = torch.nn.functional.one_hot(hard, 3).float()
    w = class_weights([0, 0, 0, 1, 2, 2], 3)
    assert torch.allclose(w, torch.tensor([6 / 9, 2.0, 1.0]))
    for weights in (None, w):
        expected = torch.nn.functional.cross_entropy(logits, hard, weight=weights)
        assert torch.allclose(classification_loss(logits, hard, weights), expected)
        assert torch.allclose(classification_loss(logits, soft, weights), expected)
    mixed = torch.tensor([[0.5, 0.5, 0.0]] * 3)
    assert torch.allclose(classification_loss(logits, mixed),
                          0.5 * (torch.nn.functional.cross_entropy(logits, torch.zeros(3, dtype=torch.long))
                                 + torch.nn.functional.cross_entropy(logits, torch.ones(3, dtype=torch.long))))


def test_metrics_values():
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 1], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert m["per_class"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["recall_macro"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert scalar_metrics([], [], 3)["accuracy"] == 0.0


def test_sinks(tmp_path):
    sink = JsonlSink(tmp_path / "h.jsonl")
    seen = []

    def broken(ev):
        raise RuntimeError("display failed")

    send = fanout(sink, broken, seen.append)
    for i in range(3):
        send({"type": "log", "step": i, "loss": float("nan")})
    sink.close()
    lines = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2] and lines[0]["loss"] is None
    assert [x["step"] for x in seen] == [0, 1, 2]  # the sink after the broken one still gets every event


# --- precision ------------------------------------------------------------------------------------
def test_precision_resolution(monkeypatch):
    import astapp.training.devices as tr

    monkeypatch.setattr(tr, "cpu_has_native_bf16", lambda: True)
    assert tr.resolve_precision("auto", use_cuda=False) == "bf16"
    monkeypatch.setattr(tr, "cpu_has_native_bf16", lambda: False)
    assert tr.resolve_precision("auto", use_cuda=False) == "fp32"
    assert tr.resolve_precision("bf16", use_cuda=False) == "bf16"
    with pytest.raises(TrainingError, match="fp16 precision needs a CUDA GPU"):
        tr.resolve_precision("fp16", use_cuda=False)
    with pytest.raises(TrainingError, match="Precision must be"):
        tr.resolve_precision("int8", use_cuda=False)


@pytest.mark.slow
def test_cpu_bf16_trains_in_bf16_and_evaluates_in_fp32(tmp_path, tiny_ast, small_dataset):
    """bf16 autocast changes the training numerics, yet metrics.json still describes the fp32 export."""
    runs = {p: tmp_path / p for p in ("fp32", "bf16")}
    results = {p: run_job(cfg_for(runs[p], tiny_ast, small_dataset, precision=p)) for p in runs}
    w = {p: results[p].model.state_dict() for p in runs}
    name = next(k for k in w["fp32"] if "layers.0.attention.q_proj.weight" in k)
    assert not torch.equal(w["fp32"][name], w["bf16"][name]), "bf16 autocast must really be used"
    assert "bf16" in next(e["message"] for e in history(runs["bf16"]) if e.get("stage") == "training")
    m = json.loads((runs["bf16"] / "metrics.json").read_text())
    best = [e for e in history(runs["bf16"]) if e["type"] == "eval" and e["epoch"] == m["best_epoch"]][0]
    assert m["accuracy"] == best["accuracy"] and m["loss"] == best["loss"]
    labels, probs = val_probs_from_export(runs["bf16"] / "model", small_dataset, m["predictions"])
    assert labels == [p["pred"] for p in m["predictions"]]
    np.testing.assert_allclose(probs, [p["prob"] for p in m["predictions"]], atol=1e-5)


def test_a_new_run_in_a_used_folder_starts_clean(tmp_path, tiny_ast, small_dataset):
    run = tmp_path / "run"
    run_job(cfg_for(run, tiny_ast, small_dataset, epochs=1))
    (run / "checkpoints" / "checkpoint-999").mkdir(parents=True)  # a stale checkpoint from elsewhere
    run_job(cfg_for(run, tiny_ast, small_dataset, epochs=1, seed=3))
    events = history(run)
    assert sum(e["type"] == "done" for e in events) == 1, "history holds only the latest run"
    assert [e["epoch"] for e in events if e["type"] == "eval"] == [1.0]
    assert not (run / "checkpoints" / "checkpoint-999").exists()
    assert json.loads((run / "config.json").read_text())["seed"] == 3
