"""ONNX export: numpy features equal ASTFeatureExtractor's, the zip holds checked fp32/int8 files in the
Transformers.js layout, `predict --onnx` agrees with PyTorch without importing torch, failures are loud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from astapp.cli import main
from astapp.core.errors import ModelLoadError
from astapp.data.synth import make_signal
from astapp.export import to_onnx
from astapp.features import fbank_numpy
from astapp.model.folder import export_model
from astapp.model.loading import load_model
from astapp.predict.onnx_backend import ort_session
from astapp.predict.predictor import Predictor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tiny_ast, small_dataset, tmp_path_factory) -> Path:
    """A run folder as training leaves it: model/, metrics.json naming validation clips, config.json."""
    run = tmp_path_factory.mktemp("onnx") / "run"
    labels = sorted(p.name for p in small_dataset.iterdir())
    torch.manual_seed(3)
    export_model(load_model(str(tiny_ast), labels, 100), labels, 100, -6.0, 4.0, run / "model")
    preds = [{"path": f"{c}/{f.name}", "true": c, "pred": c, "prob": 1.0}
             for c in labels for f in sorted((small_dataset / c).iterdir())[:3]]
    (run / "metrics.json").write_text(json.dumps({"labels": labels, "predictions": preds}))
    (run / "config.json").write_text(json.dumps({"data": str(small_dataset)}))
    from astapp.data.audio import load_audio
    from astapp.evaluation import unknown

    torch_model = Predictor(run / "model")  # an unknown score, fitted on the clips the check does not use
    fit = [(i, f) for i, c in enumerate(labels) for f in sorted((small_dataset / c).iterdir())[5:]]
    emb, _ = torch_model.backend.embed_logits([load_audio(f)[:torch_model.window_samples] for _, f in fit])
    stats = unknown.fit(emb, np.array([i for i, _ in fit]))
    unknown.save(unknown.set_threshold(stats, unknown.score(stats, embeddings=emb)), run / "model")
    return run


def test_numpy_features_equal_the_feature_extractor():
    from transformers import ASTFeatureExtractor

    from astapp.features.fbank import quiet_mel_warning

    with quiet_mel_warning():
        fe = ASTFeatureExtractor(max_length=100, mean=-5.5, std=3.25)
    for i, (kind, seconds) in enumerate([("chirp", 0.4), ("noise", 1.7), ("clicks", 1.0)]):
        wav = make_signal(kind, seconds, rng=np.random.default_rng(i))
        ref = fe(wav, sampling_rate=16000, return_tensors="np")["input_values"][0]
        ours = fbank_numpy.features(wav, 100, -5.5, 3.25)
        assert ours.shape == ref.shape == (100, 128)
        assert np.abs(ours - ref).max() < 1e-5


@pytest.mark.slow
def test_export_zip_onnx_check_and_torch_free_predict(run, small_dataset, tmp_path, capsys):
    zpath = tmp_path / "m.zip"
    assert main(["export", "--run", str(run), "--output", str(zpath)]) == 0
    names = set(zipfile.ZipFile(zpath).namelist())
    assert {"m/config.json", "m/preprocessor_config.json", "m/model.safetensors", "m/onnx/model.onnx",
            "m/onnx/model_quantized.onnx", "m/onnx/check.json"} <= names
    zipfile.ZipFile(zpath).extractall(tmp_path)
    folder = tmp_path / "m"
    check = json.loads((folder / "onnx" / "check.json").read_text())
    assert check["passed"] and check["source"] == "validation" and check["clips"] == 9
    assert check["fp32"]["top1_agreement"] == 1.0 and check["fp32"]["max_prob_diff"] <= 1e-3
    assert check["outputs"] == ["logits", "pooler_output"] and check["fp32"]["max_embedding_diff"] <= 1e-3
    assert "## Unknown sounds" in (folder / "README.md").read_text() and (folder / "unknown.json").is_file()
    assert 0.0 <= check["int8"]["accuracy"] <= 1.0 and check["int8"]["size_mb"] < check["fp32"]["size_mb"]
    assert "ONNX fp32" in (folder / "README.md").read_text() and "pipeline(" in (folder / "README.md").read_text()
    cached = (run / "onnx" / "model.onnx").stat().st_mtime_ns  # made once per model, reused by the next export
    assert main(["export", "--run", str(run), "--output", str(tmp_path / "again.zip")]) == 0
    assert (run / "onnx" / "model.onnx").stat().st_mtime_ns == cached

    clips = [str(p) for c in sorted(small_dataset.iterdir()) for p in sorted(c.iterdir())[3:5]]
    code = ("import json, sys\nfrom astapp.cli import main\ncode = main(sys.argv[1:])\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'transformers': 'transformers' in sys.modules,"
            " 'code': code}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, "predict", "--onnx", "--model", str(folder), "--top-k", "3",
                          *clips], capture_output=True, text=True, env=env, timeout=120, check=False)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[-1] == {"torch": False, "transformers": False, "code": 0}, out.stderr
    ref = Predictor(folder).predict_many(clips, top_k=3)
    for row, want in zip(lines[:-1], ref, strict=True):
        assert row["label"] == want["label"] and abs(row["prob"] - want["prob"]) < 1e-4
        assert row["unknown"] == pytest.approx(want["unknown"], rel=1e-3, abs=1e-4)  # without torch, the same
        assert row["unknown_threshold"] == want["unknown_threshold"]
    q8 = Predictor(zpath, backend="onnx", quantized=True)  # the zip itself loads too
    int8 = q8.predict_many(clips, top_k=1)
    # int8 scales activations per batch: a clip's answer must not depend on the files predicted with it
    assert [r["prob"] for r in int8] == [q8.predict(c, top_k=1).top[0][1] for c in clips]
    assert Predictor(run, backend="onnx").predict_many(clips[:1])[0]["label"] == ref[0]["label"]  # and the run folder
    assert sum(r["label"] == w["label"] for r, w in zip(int8, ref, strict=True)) >= len(ref) - 1
    capsys.readouterr()


def test_onnx_user_errors(run, tmp_path, monkeypatch, capsys):
    assert main(["predict", "--onnx", "--model", str(tmp_path), "x.wav"]) == 2
    err = capsys.readouterr().err
    assert "holds no ONNX model" in err and "astapp export" in err and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ModelLoadError, match=r"pip install onnxruntime=="):
        ort_session(tmp_path / "model.onnx")
    assert "pip install onnx==" in (to_onnx.missing_packages() or "")


@pytest.mark.browser
def test_demo_page_in_chromium_agrees_with_onnxruntime(run, small_dataset, tmp_path):
    """The `--browser` export served by a plain static server: demo.html classifies every clip of the
    dataset (4 per class) in Chromium (Transformers.js, offline) with onnxruntime's top-1: all with fp32, >= 95 % int8."""
    import functools
    import http.server
    import threading

    from browser_helpers import ARGS, CHROMIUM
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing on CI: install Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is not installed")

    from astapp.data.audio import load_audio

    zpath = tmp_path / "web.zip"
    assert main(["export", "--run", str(run), "--output", str(zpath), "--browser"]) == 0
    zipfile.ZipFile(zpath).extractall(tmp_path)
    site = tmp_path / "web"
    assert {"demo.html", "vendor", "onnx"} <= {p.name for p in site.iterdir()}
    clips = []
    for c in sorted(small_dataset.iterdir()):
        for f in sorted(c.iterdir())[:4]:
            (site / "clips").mkdir(exist_ok=True)
            (site / "clips" / f"{c.name}_{f.name}").write_bytes(f.read_bytes())
            clips.append(site / "clips" / f"{c.name}_{f.name}")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    outside: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                       else (outside.append(route.request.url), route.abort()))
            for dtype, quantized, need in (("fp32", False, 1.0), ("q8", True, 0.95)):
                page.goto(f"{base}/demo.html?dtype={dtype}")
                page.evaluate("() => window.astapp.ready")
                ref = Predictor(site, backend="onnx", quantized=quantized)
                agree = 0
                for clip in clips:
                    got = page.evaluate("(u) => window.astapp.classifyUrl(u)", f"clips/{clip.name}")
                    want = ref.predict(load_audio(clip), top_k=1).top[0]
                    agree += got[0]["label"] == want[0]
                    if not quantized:
                        assert abs(got[0]["score"] - want[1]) < 1e-3
                assert agree / len(clips) >= need, (dtype, agree, len(clips))
                assert dtype in page.locator("#status").text_content()
            browser.close()
    finally:
        server.shutdown()
    assert outside == []  # nothing fetched from the network: it works offline


@pytest.mark.slow
def test_failed_check_keeps_the_transformers_model_and_says_so(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(to_onnx, "TOLERANCE", -1.0)  # no ONNX file can pass: the failure path
    (run / "model" / "config.json").touch()  # a "new" model: the cached check does not apply
    zpath = tmp_path / "bad.zip"
    assert main(["export", "--run", str(run), "--output", str(zpath)]) == 0
    z = zipfile.ZipFile(zpath)
    names = set(z.namelist())
    assert "bad/model.safetensors" in names and "bad/onnx/check.json" in names
    assert not any(n.endswith(".onnx") for n in names)
    check = json.loads(z.read("bad/onnx/check.json"))
    assert check["passed"] is False and "disagrees with PyTorch" in check["error"]
    assert "No ONNX model in this export" in z.read("bad/README.md").decode()
    capsys.readouterr()


@pytest.mark.slow  # 10 s: a second training run
def test_a_zip_trained_run_is_checked_on_its_own_validation_clips(run, small_dataset, tmp_path, capsys):
    """A run trained from a zip (`astapp train --data X.zip`) checks ONNX on that zip's validation clips,
    extracted the way training extracted them, not on generated signals."""
    import shutil

    from astapp.export.bundle import ensure_onnx

    zipped = Path(shutil.make_archive(str(tmp_path / "sounds"), "zip", small_dataset))
    zrun = tmp_path / "zip-run"
    shutil.copytree(run / "model", zrun / "model")
    shutil.copy(run / "metrics.json", zrun / "metrics.json")
    (zrun / "config.json").write_text(json.dumps({"data": str(zipped), "output": str(zrun)}))
    check = ensure_onnx(zrun / "model", zrun / "onnx")
    assert check["passed"] and check["source"] == "validation" and check["clips"] == 9
    assert check["int8"]["recommended"] is False  # 9 clips cannot vouch for int8
    assert "only 9 validation clips" in check["int8"]["why_not"]
    assert json.loads((zrun / "onnx" / "check.json").read_text())["int8"]["recommended"] is False
    clip = next(small_dataset.rglob("*.wav"))
    assert main(["predict", "--onnx", "--int8", "--model", str(zrun), str(clip)]) == 0
    assert "int8 is not recommended for this model: only 9 validation clips" in capsys.readouterr().err


def test_int8_is_recommended_only_on_enough_real_clips_that_agree():
    good = {"top1_agreement": 0.99}
    assert to_onnx.int8_advice(good, 40, "validation") == {"recommended": True}
    assert "generated clips" in to_onnx.int8_advice(good, 40, "generated")["why_not"]
    assert "only 12 validation clips" in to_onnx.int8_advice(good, 12, "validation")["why_not"]
    low = to_onnx.int8_advice({"top1_agreement": 22 / 32}, 32, "validation")
    assert low["recommended"] is False and "68.8%" in low["why_not"] and "fp32" in low["why_not"]
