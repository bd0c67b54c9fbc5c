"""Export folders load in plain transformers and agree with astapp's Predictor; windows; batch CSV."""

from __future__ import annotations

import csv
import json
import zipfile

import numpy as np
import pytest
import torch
from transformers import ASTForAudioClassification, pipeline

from astapp.core.errors import AudioDecodeError, ModelLoadError
from astapp.data.synth import make_signal, write_wav
from astapp.model.folder import export_model, zip_dir
from astapp.model.loading import load_model
from astapp.predict.predictor import Predictor

LABELS = ["hund", "kätzchen", "鳥"]


@pytest.fixture(scope="module")
def exported(tiny_ast, tmp_path_factory):
    """The tiny checkpoint adapted from 128 to 100 frames, with dataset statistics, exported."""
    torch.manual_seed(0)
    model = load_model(str(tiny_ast), LABELS, 100)
    out = tmp_path_factory.mktemp("export") / "model"
    export_model(model, LABELS, 100, -5.5, 3.25, out, extra={"metrics": {"accuracy": 0.75}})
    return out


def _clip(seconds: float, seed: int, kind: str = "chirp") -> np.ndarray:
    return make_signal(kind, seconds, rng=np.random.default_rng(seed))


def _assert_agrees(folder, clips):
    clf = pipeline("audio-classification", model=str(folder), device="cpu")
    predictor = Predictor(folder)
    for wav in clips:
        ours = predictor.predict(wav, top_k=len(predictor.labels))
        theirs = clf(wav.copy(), top_k=None)
        assert theirs[0]["label"] == ours.top[0][0]
        ref = {d["label"]: d["score"] for d in theirs}
        assert set(ref) == set(predictor.labels)
        for label, p in zip(predictor.labels, ours.probs, strict=True):
            assert abs(ref[label] - float(p)) < 1e-4


def test_export_folder_contents(exported):
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "astapp.json", "README.md"} <= names
    meta = json.loads((exported / "astapp.json").read_text(encoding="utf-8"))
    assert meta["labels"] == LABELS and meta["max_length"] == 100
    assert (meta["mean"], meta["std"], meta["metrics"]) == (-5.5, 3.25, {"accuracy": 0.75})
    pre = json.loads((exported / "preprocessor_config.json").read_text())
    assert (pre["max_length"], pre["mean"], pre["std"], pre["do_normalize"], pre["sampling_rate"]) == (
        100, -5.5, 3.25, True, 16000)
    assert 'pipeline("audio-classification"' in (exported / "README.md").read_text(encoding="utf-8")
    model = ASTForAudioClassification.from_pretrained(exported)
    assert [model.config.id2label[i] for i in range(3)] == LABELS and model.config.max_length == 100
    assert not list(exported.parent.glob(".*partial"))


def test_pipeline_agrees_with_predictor_adapted_checkpoint(exported):
    # 100 frames take 1.015 s; the pipeline truncates longer clips, so compare up to that length
    _assert_agrees(exported, [_clip(0.3, 1), _clip(0.7, 2, "noise"), _clip(1.0, 3, "am")])


def test_pipeline_agrees_with_predictor_scratch_model(tmp_path):
    torch.manual_seed(1)
    model = load_model("scratch:tiny", ["a", "b", "c", "d"], 64)
    export_model(model, ["a", "b", "c", "d"], 64, -4.0, 4.0, tmp_path / "m")
    _assert_agrees(tmp_path / "m", [_clip(0.2, 4, "tone"), _clip(0.64, 5, "clicks")])


def test_long_clip_is_windowed_and_averaged(exported):
    predictor = Predictor(exported)
    win = predictor.window_samples
    assert win == 99 * 160 + 400  # exactly 100 frames
    wav = _clip(2.5, 7, "bursts")
    pred = predictor.predict(wav, top_k=2)
    starts = [0, win // 2, 2 * (win // 2), len(wav) - win]
    assert [round(w["start"] * 16000) for w in pred.windows] == starts
    assert pred.windows[-1]["end"] == pytest.approx(2.5)
    window_probs = [predictor.predict(wav[s:s + win], top_k=3).probs for s in starts]
    np.testing.assert_allclose(pred.probs, np.mean(window_probs, axis=0), atol=1e-6)
    for w, probs in zip(pred.windows, window_probs, strict=True):
        assert w["top"][0][0] == LABELS[int(np.argmax(probs))]
        assert len(w["top"]) == 2
    assert pred.top[0] == (LABELS[int(np.argmax(pred.probs))], pytest.approx(float(pred.probs.max())))
    assert pred.probs.sum() == pytest.approx(1.0, abs=1e-5)

    short = predictor.predict(_clip(0.5, 8), top_k=10)
    assert len(short.windows) == 1 and short.windows[0]["start"] == 0 and short.windows[0]["end"] == 0.5
    assert len(short.top) == 3


def test_batch_prediction_to_csv_with_bad_files(exported, tmp_path):
    data = tmp_path / "clips"
    write_wav(data / "good1.wav", _clip(0.8, 9))
    write_wav(data / "sub" / "good2.wav", _clip(2.0, 10, "fm"))
    (data / "broken.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    (data / "empty.flac").write_bytes(b"")
    (data / "notes.txt").write_text("not audio")
    predictor = Predictor(exported)
    rows = predictor.predict_many(data, top_k=2)
    by_file = {r["file"]: r for r in rows}
    assert set(by_file) == {"good1.wav", "sub/good2.wav", "broken.wav", "empty.flac"}
    for name in ("good1.wav", "sub/good2.wav"):
        r = by_file[name]
        assert r["error"] is None and r["label"] in LABELS and len(r["top"]) == 2
        single = predictor.predict(data / name, top_k=2)
        assert r["label"] == single.top[0][0] and r["prob"] == pytest.approx(single.top[0][1], abs=1e-6)
    for name in ("broken.wav", "empty.flac"):
        assert by_file[name]["label"] is None and by_file[name]["error"]

    listed = predictor.predict_many([data / "good1.wav", tmp_path / "missing.wav"])
    assert listed[0]["error"] is None and listed[1]["error"] == "file not found"

    out = predictor.to_csv(rows, tmp_path / "out" / "predictions.csv")
    with out.open(encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["file", "label", "prob", "top", "error", "unknown"]
    assert all(t["unknown"] == "" for t in table)  # a model without an unknown score: the column stays empty
    assert {t["file"] for t in table} == set(by_file)
    good = next(t for t in table if t["file"] == "good1.wav")
    assert good["label"] == by_file["good1.wav"]["label"] and good["top"].startswith(good["label"] + ":")
    assert next(t for t in table if t["file"] == "broken.wav")["error"]


def test_zip_export_and_zip_of_clips(exported, tmp_path):
    archive = zip_dir(exported, tmp_path / "model.zip")
    with zipfile.ZipFile(archive) as zf:
        assert {"config.json", "model.safetensors", "astapp.json"} <= set(zf.namelist())
    wav = _clip(0.9, 11, "harmonic")
    from_zip = Predictor(archive).predict(wav)
    np.testing.assert_allclose(from_zip.probs, Predictor(exported).predict(wav).probs, atol=1e-7)

    clips = tmp_path / "clips.zip"
    with zipfile.ZipFile(clips, "w") as zf:
        write_wav(tmp_path / "a.wav", wav)
        zf.write(tmp_path / "a.wav", "set/a.wav")
        zf.writestr("set/bad.ogg", b"OggS not really")
    rows = Predictor(exported).predict_many(clips)
    assert [r["file"] for r in rows] == ["clips.zip/set/a.wav", "clips.zip/set/bad.ogg"]
    assert rows[0]["error"] is None and rows[1]["error"]


def test_predictor_rejects_bad_model_and_bad_audio(exported, tmp_path):
    with pytest.raises(ModelLoadError, match="not an AST checkpoint"):
        Predictor(tmp_path)
    predictor = Predictor(exported)
    assert predictor.labels == LABELS and predictor.max_length == 100
    with pytest.raises(AudioDecodeError):
        predictor.predict(np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioDecodeError):
        predictor.predict(np.full(1000, np.nan, dtype=np.float32))


def test_predictor_reads_a_plain_transformers_checkpoint(tiny_ast):
    """No astapp.json: settings come from preprocessor_config.json, labels from config.json."""
    predictor = Predictor(tiny_ast)
    assert predictor.max_length == 128 and predictor.labels == ["LABEL_0", "LABEL_1"]
    _assert_agrees(tiny_ast, [_clip(1.2, 12, "square")])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_clear_error(exported):
    with pytest.raises(ModelLoadError, match="use 'cpu'"):
        Predictor(exported, device="cuda")


def test_astapp_builds_feature_extractors_without_transformers_mel_warning(tmp_path):
    """AST's standard filterbank makes transformers warn on every extractor it builds; astapp's own
    paths (the fbank, the export's preprocessor config) must not pass that noise on to logs."""
    import warnings

    from astapp.features.fbank import MEL_WARNING, Fbank, feature_extractor_config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Fbank(64)([_clip(0.5, 1)])
        feature_extractor_config(64, -4.0, 4.0).save_pretrained(tmp_path)
    assert not [w for w in caught if MEL_WARNING in str(w.message)]


@pytest.mark.slow
def test_the_model_cards_snippet_runs_with_only_transformers_torch_and_soundfile(exported, tmp_path):
    """Issue 11.7: the README inside the model folder gives code that works without ffmpeg (and without
    torchaudio): a 44.1 kHz stereo file is decoded and resampled by the snippet itself."""
    import re
    import shutil
    import subprocess
    import sys

    import soundfile as sf

    folder = tmp_path / "astapp-model"
    shutil.copytree(exported, folder)
    code = re.search(r"```python\n(.*?)```", (folder / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    code = code.replace("PATH/TO/THIS/FOLDER", str(folder))
    stereo = np.stack([_clip(1.5, 3), _clip(1.5, 4, "noise")], axis=1)
    sf.write(tmp_path / "my_clip.wav", soxr_44k(stereo), 44100)
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mel filter" not in done.stderr  # the user's first run prints no warning about AST's filterbank
    top = eval(done.stdout.strip().splitlines()[-1])  # the snippet prints the pipeline's list of dicts
    assert len(top) == 3 and {t["label"] for t in top} <= set(LABELS)
    # the same answer as astapp's own predictor on that file (resampled with soxr there)
    ours = Predictor(exported).predict(tmp_path / "my_clip.wav", top_k=1).top[0][0]
    assert top[0]["label"] == ours


def soxr_44k(x: np.ndarray) -> np.ndarray:
    import soxr

    return soxr.resample(x, 16000, 44100).astype(np.float32)
