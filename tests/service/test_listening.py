"""Listen live: a generated recording with a known class sequence, streamed in odd-sized 48 kHz int16
chunks as the browser sends them, gives that sequence on the timeline; hops, smoothing, thresholds,
background and the rolling window; the Service's listener over a real exported model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from astapp.core.errors import UploadError
from astapp.data.synth import make_signal
from astapp.model.folder import export_model
from astapp.model.loading import load_model
from astapp.service.listening import NOTHING, Listener, ListenSettings, thresholds_from_validation

LABELS = ["background", "tone", "noise"]
WINDOW = 16_000  # a 1 s model window
SEQUENCE = [("silence", 3.0), ("tone", 3.0), ("noise", 3.0), ("silence", 3.0)]  # (kind, seconds)


def recording(rate: int = 48_000) -> np.ndarray:
    """The known sequence as one int16 recording at `rate` (a microphone's rate, not the model's)."""
    parts = []
    for i, (kind, seconds) in enumerate(SEQUENCE):
        if kind == "silence":
            parts.append(np.random.default_rng(i).normal(0, 1e-4, int(seconds * rate)))
        else:
            parts.append(0.5 * make_signal(kind, seconds, sr=rate, rng=np.random.default_rng(i)))
    return (np.concatenate(parts) * 32767).astype(np.int16)


def spectral_model(wav: np.ndarray) -> np.ndarray:
    """A transparent stand-in classifier of one 16 kHz window (the Listener's logic is under test, not a
    network): quiet -> background; else energy in a few FFT bins -> tone, spread out -> noise."""
    if len(wav) != WINDOW:
        raise AssertionError(f"the model got {len(wav)} samples, not one window")
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    power = np.abs(np.fft.rfft(wav)) ** 2 + 1e-20
    peaked = float(np.sort(power)[-8:].sum() / power.sum())  # a sine puts its energy in a few bins
    loud = min(1.0, rms / 0.01)
    tone, noise = peaked * loud, (1 - peaked) * loud
    p = np.array([1 - loud, tone, noise]) + 1e-3
    return p / p.sum()


def stream(listener: Listener, audio: np.ndarray, rate: int, chunk_s: float = 0.37) -> None:
    step = int(chunk_s * rate)
    for start in range(0, len(audio), step):
        listener.feed((rate, audio[start:start + step]))


def test_timeline_shows_the_known_sequence():
    listener = Listener(spectral_model, LABELS, WINDOW, ListenSettings(hop=0.5, smoothing=0.5, threshold=0.5))
    stream(listener, recording(), 48_000)
    view = listener.view()
    assert [s["label"] for s in view["segments"]] == [NOTHING, "tone", "noise", NOTHING]
    times = [t for t, _, _ in listener.timeline]
    assert np.allclose(np.diff(times), 0.5) and abs(view["seconds"] - 12.0) < 0.02  # one prediction per hop
    starts = {s["label"]: s["start"] for s in view["segments"][1:3]}
    # each change shows within a window plus the smoothing's lag (1 s + ~2 hops) of where it is in the file
    assert 3.0 <= starts["tone"] <= 4.5 and 6.0 <= starts["noise"] <= 7.5
    assert view["heard"] == NOTHING and view["compute_seconds"] is not None


def test_history_is_rolling_and_thresholds_and_smoothing_apply():
    rolling = Listener(spectral_model, LABELS, WINDOW, ListenSettings(hop=0.5, history=4.0))
    stream(rolling, recording(16_000), 16_000, chunk_s=1.3)
    assert rolling.timeline[0][0] >= rolling.timeline[-1][0] - 4.0 and len(rolling.timeline) == 9

    strict = Listener(spectral_model, LABELS, WINDOW, ListenSettings(thresholds={"tone": 0.999, "noise": 0.999}))
    stream(strict, recording(), 48_000)
    assert {s["label"] for s in strict.view()["segments"]} == {NOTHING}  # nothing is sure enough

    raw = Listener(spectral_model, LABELS, WINDOW, ListenSettings(smoothing=0.0))
    smooth = Listener(spectral_model, LABELS, WINDOW, ListenSettings(smoothing=0.9))
    for listener in (raw, smooth):
        stream(listener, recording(), 48_000)
    first = {name: next(t for t, label, _ in li.timeline if label == "tone") for name, li in
             (("raw", raw), ("smooth", smooth))}
    assert first["smooth"] > first["raw"]  # heavier smoothing reacts later

    with pytest.raises(UploadError, match="between 0.1 and 5"):
        Listener(spectral_model, LABELS, WINDOW, ListenSettings(hop=0.0))


def test_thresholds_from_validation():
    preds = [{"true": "tone", "pred": "tone", "prob": 0.8}, {"true": "tone", "pred": "tone", "prob": 0.6},
             {"true": "tone", "pred": "noise", "prob": 0.9}, {"true": "noise", "pred": "noise", "prob": 0.2}]
    assert thresholds_from_validation(preds, LABELS) == {"background": 0.5, "tone": 0.6, "noise": 0.333}
    # a confident model's 0.99 on clean validation clips is not what it gives live: capped at 0.6
    sure = [{"true": "tone", "pred": "tone", "prob": 0.99}]
    assert thresholds_from_validation(sure, LABELS)["tone"] == 0.6


def test_service_listener_over_an_exported_model(tiny_ast, tmp_path):
    """The Service's listener runs the run's real model every hop on exactly one window."""
    from astapp.service.predicting import Predicting, PredictorCache

    torch.manual_seed(0)
    run = tmp_path / "run"
    export_model(load_model(str(tiny_ast), LABELS, 100), LABELS, 100, -5.0, 4.0, run / "model")
    (run / "metrics.json").write_text(json.dumps({"predictions": [
        {"true": "tone", "pred": "tone", "prob": 0.55}]}))

    class OneModel(Predicting):
        def model_folder(self, session, run_id):
            return run / "model"

    listener = OneModel(tmp_path, PredictorCache()).listener(None, "r", ListenSettings(hop=0.25))
    assert listener.background == "background" and listener.settings.thresholds["tone"] == 0.55
    stream(listener, recording(), 48_000, chunk_s=0.5)
    view = listener.view()
    assert abs(view["seconds"] - 12.0) < 0.02 and len(listener.timeline) == int(view["seconds"] / 0.25)
    assert set(view["probs"]) == set(LABELS)
    assert abs(sum(view["probs"].values()) - 1.0) < 1e-5 and listener.window == 99 * 160 + 400


def test_timeline_html_draws_the_last_30_seconds():
    from astapp.service.listening import timeline_html

    listener = Listener(spectral_model, LABELS, WINDOW, ListenSettings(history=30.0))
    stream(listener, recording(), 48_000)
    html = timeline_html(listener.view(), LABELS)
    assert [part.split('"')[0] for part in html.split('data-label="')[1:]] == [NOTHING, "tone", "noise", NOTHING]
    late = {"seconds": 100.0, "segments": [{"label": "tone", "start": 10.0, "end": 60.0},
                                           {"label": "<b>", "start": 60.0, "end": 100.0}]}
    html = timeline_html(late, LABELS)  # only what is inside the last 30 s; labels are escaped
    assert "tone" not in html and "&lt;b&gt;" in html and "left:0.00%;width:100.00%" in html


def test_windows_unlike_every_class_show_as_unknown_in_their_own_colour():
    """A model with an unknown score: the noise stretch (here 'unlike the training data') is "unknown", not
    forced into its class; silence stays "nothing"; without a threshold the classes are as before."""
    from astapp.service.listening import UNKNOWN, UNKNOWN_COLOR, timeline_html

    def with_score(wav: np.ndarray) -> tuple[np.ndarray, float]:
        p = spectral_model(wav)
        return p, float(p[2])  # the noisier the window, the less like the training clips

    listener = Listener(with_score, LABELS, WINDOW, ListenSettings(hop=0.5, unknown_threshold=0.5))
    stream(listener, recording(), 48_000)
    view = listener.view()
    assert [s["label"] for s in view["segments"]] == [NOTHING, "tone", UNKNOWN, NOTHING]
    assert view["unknown_threshold"] == 0.5 and 0.0 <= view["unknown"] <= 1.0
    html = timeline_html(view, LABELS)
    block = html.split(f'data-label="{UNKNOWN}"')[1].split(">")[0]
    assert f"background:{UNKNOWN_COLOR}" in block and "color:#fff" in block
    plain = Listener(with_score, LABELS, WINDOW, ListenSettings(hop=0.5))  # no threshold: never unknown
    stream(plain, recording(), 48_000)
    assert [s["label"] for s in plain.view()["segments"]] == [NOTHING, "tone", "noise", NOTHING]
