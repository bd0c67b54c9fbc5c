"""Mode lora (peft): adapters on the attention projections, the head trained fully, a merged plain export,
the adapter alone, exact resume, and every bad input as one sentence."""

from __future__ import annotations

import builtins
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import cfg_for, history, one_thread_fixture, val_probs_from_export
from transformers import ASTForAudioClassification

from astapp.core import runfolder
from astapp.core.config import TrainConfig
from astapp.core.errors import TrainingError
from astapp.jobs.record import run_job

one_thread = one_thread_fixture()  # autouse


def lora_cfg(out: Path, tiny_ast: Path, data: Path, **kw) -> TrainConfig:
    return cfg_for(out, tiny_ast, data, **{"mode": "lora", "lr": 5e-3, "lora_rank": 4, "lora_alpha": 8.0,
                                           "lora_dropout": 0.0, **kw})


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")  # peft's, in PeftModel below
def test_lora_trains_adapters_and_head_and_exports_a_merged_plain_model(tmp_path, tiny_ast, small_dataset):
    from peft import PeftModel

    from astapp.model.loading import load_model

    run = tmp_path / "run"
    result = run_job(lora_cfg(run, tiny_ast, small_dataset, epochs=2))
    m = result.metrics
    assert result.state == "finished" and m["mode"] == "lora"
    reference = ASTForAudioClassification.from_pretrained(tiny_ast)
    assert m["trainable_parameters"] < 0.1 * sum(p.numel() for p in reference.parameters())
    msg = next(e["message"] for e in history(run) if e.get("stage") == "training")
    assert msg.startswith("Training LoRA adapters (rank 4) on q_proj, v_proj and the head:")

    # The export is a plain AST (no adapter names) that reproduces the unmerged model's validation
    # predictions: merging changes nothing beyond float rounding.
    exported = ASTForAudioClassification.from_pretrained(run / "model")
    assert not any("lora" in k for k in exported.state_dict())
    labels, probs = val_probs_from_export(run / "model", small_dataset, m["predictions"])
    assert labels == [p["pred"] for p in m["predictions"]]
    np.testing.assert_allclose(probs, [p["prob"] for p in m["predictions"]], atol=1e-4)
    # Frozen weights really stayed frozen: keys LoRA does not target equal the starting checkpoint's.
    start = load_model(str(tiny_ast), m["labels"], 64).state_dict()
    got = exported.state_dict()
    k_proj = next(k for k in got if "layers.0.attention.k_proj.weight" in k)
    q_proj = next(k for k in got if "layers.0.attention.q_proj.weight" in k)
    assert torch.equal(got[k_proj], start[k_proj]) and not torch.equal(got[q_proj], start[q_proj])

    # The adapter alone (peft's format, a few kB here) on the same base gives the same predictions.
    adapter = run / runfolder.ADAPTER
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    base = load_model(str(tiny_ast), m["labels"], 64)
    with_adapter = PeftModel.from_pretrained(base, str(adapter)).eval()
    x = torch.randn(3, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(with_adapter(input_values=x).logits, exported.eval()(x).logits, atol=1e-4,
                                   rtol=0)


@pytest.mark.slow
def test_lora_stop_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_ast, small_dataset):
    stop = threading.Event()
    run = tmp_path / "run"
    cfg = lora_cfg(run, tiny_ast, small_dataset, epochs=3)
    first = run_job(cfg, events=lambda ev: ev["type"] == "log" and ev["step"] >= 3 and stop.set(), stop=stop)
    assert first.state == "stopped"
    resumed = run_job(TrainConfig.from_dict({**cfg.to_dict(), "resume": "latest"}))
    straight = run_job(lora_cfg(tmp_path / "straight", tiny_ast, small_dataset, epochs=3))
    assert resumed.metrics["global_step"] == straight.metrics["global_step"] == 15
    a, b = resumed.model.state_dict(), straight.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert resumed.metrics["accuracy"] == straight.metrics["accuracy"]

    # A LoRA checkpoint resumes only as lora (and a full one never as lora).
    as_full = TrainConfig.from_dict({**cfg.to_dict(), "mode": "full", "resume": "latest"})
    with pytest.raises(TrainingError, match="trained with LoRA adapters: resume it in mode lora"):
        run_job(as_full)
    full_run = run_job(cfg_for(tmp_path / "full", tiny_ast, small_dataset, epochs=1))
    with pytest.raises(TrainingError, match="was not trained with LoRA"):
        run_job(lora_cfg(full_run.output, tiny_ast, small_dataset, epochs=2, resume="latest"))


def test_lora_with_augmentation_and_early_stopping(tmp_path, tiny_ast, small_dataset):
    from astapp.core.config import AugmentConfig

    result = run_job(lora_cfg(tmp_path / "run", tiny_ast, small_dataset, epochs=4, lr=1e-9, early_stopping=1,
                            augment=AugmentConfig(preset="light", mixup=0.5).to_dict()))
    assert result.metrics["early_stopped"] is True and result.metrics["epochs"] == 2.0
    assert all(np.isfinite(e["loss"]) for e in history(tmp_path / "run") if e["type"] == "log")


@pytest.mark.parametrize("overrides, words", [
    ({"lora_rank": 0}, "LoRA rank must be a whole number of 1 or more"),
    ({"lora_rank": 65}, "between 1 and the model's hidden size (64), not 65"),
    ({"lora_targets": "query,fc9"}, "match nothing in this model; available: attention.q_proj, attention.k_proj"),
    ({"lora_targets": " "}, "Name the modules LoRA adapts"),
    ({"lora_alpha": 0}, "LoRA alpha must be above 0"),
])
def test_bad_lora_settings_are_one_sentence(tmp_path, tiny_ast, small_dataset, overrides, words):
    with pytest.raises(TrainingError) as err:
        run_job(lora_cfg(tmp_path / "run", tiny_ast, small_dataset, **overrides))
    assert words in str(err.value)


def test_missing_peft_names_the_install_command(tmp_path, tiny_ast, small_dataset, monkeypatch):
    real_import = builtins.__import__

    def no_peft(name, *args, **kwargs):
        if name == "peft" or name.startswith("peft."):
            raise ImportError("No module named 'peft'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_peft)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"needs the peft package.*pip install peft==0\.21\.2"):
        run_job(lora_cfg(run, tiny_ast, small_dataset))
    assert json.loads((run / runfolder.STATUS).read_text())["state"] == "failed"


@pytest.mark.slow
def test_cli_lora_run_exports_the_model_and_the_adapter(tmp_path, tiny_ast, small_dataset, capsys):
    import zipfile

    from astapp.cli import main

    run = tmp_path / "run"
    assert main(["train", "--data", str(small_dataset), "--model", str(tiny_ast), "--output", str(run),
                 "--epochs", "1", "--max-length", "64", "--threads", "1", "--mode", "lora", "--lora-rank", "2",
                 "--lora-targets", "q_proj,k_proj,v_proj"]) == 0
    assert json.loads((run / runfolder.CONFIG).read_text())["lora_targets"] == "q_proj,k_proj,v_proj"
    assert main(["export", "--run", str(run), "--output", str(tmp_path / "adapter.zip"), "--adapter"]) == 0
    names = zipfile.ZipFile(tmp_path / "adapter.zip").namelist()
    assert "adapter/adapter_config.json" in names and "adapter/adapter_model.safetensors" in names
    assert main(["export", "--run", str(run), "--output", str(tmp_path / "m.zip")]) == 0
    clip = sorted((small_dataset / "tone").iterdir())[0]
    capsys.readouterr()
    assert main(["predict", "--model", str(run / "model"), str(clip)]) == 0  # the merged export predicts
    assert json.loads(capsys.readouterr().out)["label"] in ("chirp", "noise", "tone")
    plain = tmp_path / "plain"
    run_job(cfg_for(plain, tiny_ast, small_dataset, epochs=1))
    assert main(["export", "--run", str(plain), "--output", str(tmp_path / "none.zip"), "--adapter"]) == 2
    assert "only a run trained with --mode lora has one" in capsys.readouterr().err
