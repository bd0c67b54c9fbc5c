"""Model loading: the head swap keeps the backbone, position embeddings adapt the AST way, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import ASTConfig, ASTForAudioClassification

from astapp.core.config import DEFAULT_MODEL
from astapp.core.errors import ModelLoadError
from astapp.core.hub import hub_reachable
from astapp.model.loading import adapt_position_embeddings, load_model, model_flops_per_sample
from astapp.model.sources import SCRATCH_NOTE, describe_source


def _pos(model: ASTForAudioClassification) -> torch.Tensor:
    return model.audio_spectrogram_transformer.embeddings.position_embeddings.detach().clone()


def test_head_swap_keeps_every_backbone_tensor(tiny_ast):
    original = ASTForAudioClassification.from_pretrained(tiny_ast).state_dict()
    labels = ["chien", "chat", "oiseau", "鳥"]
    torch.manual_seed(123)
    model = load_model(str(tiny_ast), labels, 128)
    loaded = model.state_dict()
    assert set(loaded) == set(original)
    differing = {k for k in original if k.startswith("classifier.")
                 or not torch.equal(original[k], loaded[k])}
    assert all(k.startswith("classifier.") for k in differing)
    assert "audio_spectrogram_transformer.embeddings.position_embeddings" not in differing
    assert loaded["classifier.dense.weight"].shape == (4, 64)
    assert model.config.id2label == dict(enumerate(labels))
    assert model.config.label2id["鳥"] == 3
    assert model.config.problem_type == "single_label_classification"
    assert model.config._attn_implementation == "sdpa"


def test_head_is_new_even_when_label_count_matches(tiny_ast):
    original = ASTForAudioClassification.from_pretrained(tiny_ast).state_dict()
    torch.manual_seed(5)
    model = load_model(str(tiny_ast), ["a", "b"], 128)  # the checkpoint also has 2 outputs
    assert not torch.equal(model.state_dict()["classifier.dense.weight"], original["classifier.dense.weight"])
    assert torch.count_nonzero(model.classifier.dense.bias) == 0


def test_same_length_changes_nothing(tiny_ast):
    model = load_model(str(tiny_ast), ["a", "b"], 128)
    before = _pos(model)
    adapt_position_embeddings(model, 128)
    assert torch.equal(_pos(model), before)
    adapt_position_embeddings(model, 130)  # same 12-step time grid: only the config changes
    assert torch.equal(_pos(model), before) and model.config.max_length == 130


def test_shorter_input_takes_the_middle_of_the_time_axis(tiny_ast):
    original = _pos(ASTForAudioClassification.from_pretrained(tiny_ast))  # grid 12 freq x 12 time
    model = load_model(str(tiny_ast), ["a", "b"], 64)  # time grid (64 - 16) // 10 + 1 = 5
    new = _pos(model)
    grid = original[0, 2:].reshape(12, 12, 64)
    expected = grid[:, 4:9].reshape(60, 64)  # middle 5 of 12 columns, start 12 // 2 - 5 // 2 = 4
    assert new.shape == (1, 62, 64)
    assert torch.equal(new[0, :2], original[0, :2])
    assert torch.equal(new[0, 2:], expected)
    assert model.config.max_length == 64
    with torch.no_grad():
        assert model(torch.randn(2, 64, 128)).logits.shape == (2, 2)


def test_longer_input_interpolates_the_time_axis(tiny_ast):
    model = load_model(str(tiny_ast), ["a", "b"], 128)
    emb = model.audio_spectrogram_transformer.embeddings
    f = torch.arange(12.0)[:, None, None]
    t = torch.arange(12.0)[None, :, None]
    with torch.no_grad():  # a grid whose value is 20 * freq_row + time_column in every channel
        emb.position_embeddings[0, 2:] = (20 * f + t).expand(12, 12, 64).reshape(144, 64)
        emb.position_embeddings[0, :2] = -7.0
    adapt_position_embeddings(model, 256)  # time grid 25
    new = _pos(model)[0]
    assert new.shape == (2 + 12 * 25, 64)
    assert torch.all(new[:2] == -7.0)
    grid = new[2:].reshape(12, 25, 64)
    # bilinear (align_corners=False) of a linear ramp: sample at (j + 0.5) * 12 / 25 - 0.5, clamped
    j = torch.arange(25.0)
    ramp = ((j + 0.5) * 12 / 25 - 0.5).clamp(0, 11)
    expected = (20 * torch.arange(12.0)[:, None] + ramp[None, :])[..., None].expand(12, 25, 64)
    torch.testing.assert_close(grid, expected, atol=1e-4, rtol=0)
    with torch.no_grad():
        assert model(torch.randn(1, 256, 128)).logits.shape == (1, 2)


def test_adapted_model_round_trips_through_save_and_from_pretrained(tiny_ast, tmp_path):
    model = load_model(str(tiny_ast), ["x", "y", "z"], 300).eval()
    model.save_pretrained(tmp_path / "m")
    again = ASTForAudioClassification.from_pretrained(tmp_path / "m").eval()
    assert again.config.max_length == 300
    a, b = model.state_dict(), again.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 300, 128)
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)


def test_reload_of_own_checkpoint_keeps_position_embeddings(tiny_ast, tmp_path):
    first = load_model(str(tiny_ast), ["x", "y"], 200)
    first.save_pretrained(tmp_path / "m")
    second = load_model(str(tmp_path / "m"), ["p", "q", "r"], 200)
    assert torch.equal(_pos(first), _pos(second))


def test_hub_offline_gives_a_clear_message():
    assert not hub_reachable()
    with pytest.raises(ModelLoadError) as err:
        load_model(DEFAULT_MODEL, ["a", "b"], 1024)
    msg = str(err.value)
    assert DEFAULT_MODEL in msg and "Hub" in msg and "scratch:small" in msg and "local checkpoint" in msg
    assert DEFAULT_MODEL in describe_source(DEFAULT_MODEL)


def test_bad_sources_get_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not an AST checkpoint"):
        load_model(str(tmp_path / "empty"), ["a", "b"], 128)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="not an AST checkpoint"):
        load_model(str(bert), ["a", "b"], 128)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing" / "x"), ["a", "b"], 128)
    with pytest.raises(ModelLoadError, match="scratch:tiny"):
        load_model("scratch:huge", ["a", "b"], 128)
    with pytest.raises(ModelLoadError, match="at least 2 labels"):
        load_model("scratch:tiny", ["a"], 128)
    with pytest.raises(ModelLoadError, match="unique"):
        load_model("scratch:tiny", ["a", "a"], 128)
    with pytest.raises(ModelLoadError, match="between 16 and 4096"):
        load_model("scratch:tiny", ["a", "b"], 8)


def test_scratch_models_and_descriptions(tiny_ast):
    model = load_model("scratch:small", ["a", "b", "c"], 96)
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (192, 4, 3, 768)
    assert (c.num_mel_bins, c.patch_size, c.frequency_stride, c.time_stride, c.max_length) == (128, 16, 10, 10, 96)
    with torch.no_grad():
        assert model(torch.randn(1, 96, 128)).logits.shape == (1, 3)
    assert SCRATCH_NOTE == "random weights: needs much more data"
    assert SCRATCH_NOTE in describe_source("scratch:base") and "hidden 768, 12 layers" in describe_source("scratch:base")
    assert describe_source(str(tiny_ast)) == "local checkpoint (hidden 64, 2 layers, 128 frames)"
    assert "not an AST checkpoint" in describe_source(str(tiny_ast.parent))


def test_flops_match_the_models_own_matmul_parameters():
    model = load_model("scratch:tiny", ["a", "b"], 128)
    cfg = model.config
    tokens = model.audio_spectrogram_transformer.embeddings.position_embeddings.shape[1]
    layer_matmul = sum(m.weight.numel() for m in model.audio_spectrogram_transformer.layers.modules()
                       if isinstance(m, torch.nn.Linear))
    attention = cfg.num_hidden_layers * 4 * tokens * tokens * cfg.hidden_size
    fwd = model_flops_per_sample(cfg, 128, training=False)
    assert fwd >= 2 * tokens * layer_matmul + attention
    assert fwd <= 1.1 * (2 * tokens * layer_matmul + attention) + 2 * tokens * 256 * cfg.hidden_size
    assert model_flops_per_sample(cfg, 128, training=True) == pytest.approx(3 * fwd)
    base = ASTConfig()  # AST base at 1024 frames: ~2 x 85M x 1214 tokens + attention ~ 0.26 TFLOP
    assert 2.4e11 < model_flops_per_sample(base, 1024, training=False) < 2.9e11


def test_headless_checkpoint_gets_a_head_and_keeps_its_encoder(tmp_path):
    from transformers import ASTModel

    torch.manual_seed(2)
    base = ASTModel(ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                              max_length=128))
    base.save_pretrained(tmp_path / "encoder")
    model = load_model(str(tmp_path / "encoder"), ["a", "b", "c"], 128)
    want, got = base.state_dict(), model.audio_spectrogram_transformer.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    assert model.classifier.dense.out_features == 3


def test_an_astapp_run_folder_is_a_model_source(tiny_ast, tmp_path):
    """A finished run can be fine-tuned further: its folder (whose own config.json is the run's settings,
    not a model config) resolves to its model/ (bench_lora pretrains this way)."""
    import shutil

    from astapp.core.config import TrainConfig
    from astapp.model.sources import describe_source, local_folder

    run = tmp_path / "run"
    shutil.copytree(tiny_ast, run / "model")
    TrainConfig(data="d", output=str(run)).save(run / "config.json")
    assert local_folder(str(run)) == run / "model"
    assert describe_source(str(run)).startswith("local checkpoint (hidden 64")
    model = load_model(str(run), ["a", "b"], 128)
    ref = ASTForAudioClassification.from_pretrained(tiny_ast)
    key = next(k for k in ref.state_dict() if "layers.0.attention.q_proj.weight" in k)
    assert torch.equal(model.state_dict()[key], ref.state_dict()[key])
