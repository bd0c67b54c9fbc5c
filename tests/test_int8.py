"""int8 one-off pass (issue 18): the quantised copy leaves the trained model alone, stays close to fp32,
applies only where bf16 is not used, and a real frozen run with it keeps its results within tolerance."""

from __future__ import annotations

import numpy as np
import torch
from test_train import cfg_for, one_thread, val_probs_from_export  # noqa: F401  (fixture reused)
from transformers import ASTConfig, ASTForAudioClassification

from astapp.fastmodes import frozen_part, pass_functions, quantize_int8
from astapp.runner import train

CPU = torch.device("cpu")


def tiny_model() -> ASTForAudioClassification:
    torch.manual_seed(0)
    return ASTForAudioClassification(ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                               intermediate_size=128, max_length=64, num_labels=3)).eval()


def test_int8_copy_is_separate_close_to_fp32_and_only_where_bf16_is_not_used():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_int8(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the trained model is untouched"
    assert any(type(m).__name__ == "Linear" and "quantized" in type(m).__module__ for m in q.modules())
    assert not any("quantized" in type(m).__module__ for m in model.modules())
    x = torch.randn(6, 64, 128)
    for n in (0, 1):  # frozen (pooled embedding) and last-1 (hidden states entering the top layer)
        with torch.inference_mode():
            ref, got = frozen_part(model, n)(x), frozen_part(q, n)(x)
        assert got.shape == ref.shape and got.dtype == torch.float32
        rel = float((got - ref).norm() / ref.norm())
        assert 0 < rel < 0.1, rel  # int8 really ran (not bit-equal) and stays within 10 % (measured 4.8 % / 0.2 %)
    train_fn, val_fn = pass_functions(model, 0, True, CPU, cpu_bf16=False)
    assert train_fn is not val_fn
    with torch.inference_mode():
        torch.testing.assert_close(val_fn(x), frozen_part(model, 0)(x))  # validation stays fp32, exactly
    for args in ((False, CPU, False), (True, CPU, True), (True, torch.device("cuda"), False)):
        a, b = pass_functions(model, 0, *args)
        assert a is b, args  # off / bf16 already faster / not a CPU: one fp32 (or bf16) function


def test_frozen_run_with_int8_pass_stays_within_tolerance_of_fp32(tmp_path, tiny_ast, small_dataset):
    runs = {}
    for int8 in (False, True):
        run = tmp_path / f"int8_{int8}"
        runs[int8] = (run, train(cfg_for(run, tiny_ast, small_dataset, mode="frozen", lr=5e-3, int8_pass=int8)).metrics)
    (run8, m8), (run32, m32) = runs[True], runs[False]
    assert m8["cached"] is True and m8["mode"] == "frozen"
    # validation ran on fp32 activations: the exported fp32 model reproduces the logged predictions
    labels, probs = val_probs_from_export(run8 / "model", small_dataset, m8["predictions"])
    assert labels == [p["pred"] for p in m8["predictions"]]
    np.testing.assert_allclose(probs, [p["prob"] for p in m8["predictions"]], atol=1e-5)
    # stated tolerance: the heads trained on int8 and fp32 activations differ by < 10 % (measured 4.3 %) and
    # at most one of the 6 validation predictions differs (measured: none); every other weight is identical
    s8 = ASTForAudioClassification.from_pretrained(run8 / "model").state_dict()
    s32 = ASTForAudioClassification.from_pretrained(run32 / "model").state_dict()
    assert all(torch.equal(s8[k], s32[k]) for k in s32 if not k.startswith("classifier."))
    w8, w32 = s8["classifier.dense.weight"], s32["classifier.dense.weight"]
    rel = float((w8 - w32).norm() / w32.norm())
    assert 0 < rel < 0.1, rel
    differ = sum(a["pred"] != b["pred"] for a, b in zip(m8["predictions"], m32["predictions"], strict=True))
    assert differ <= 1 and abs(m8["accuracy"] - m32["accuracy"]) <= 1 / 6 + 1e-9
