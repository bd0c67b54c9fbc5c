"""Fbank equivalence with ASTFeatureExtractor, global statistics, input length, feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astapp.data.synth import KINDS, make_signal
from astapp.features.cache import FeatureCache
from astapp.features.fbank import (
    Fbank,
    FeatureError,
    choose_max_length,
    compute_stats,
    feature_extractor_config,
    num_frames,
)

pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")
SR = 16_000


def reference(wavs, max_length, mean=-4.2677393, std=4.5689974, normalize=True) -> np.ndarray:
    from transformers import ASTFeatureExtractor

    fe = ASTFeatureExtractor(max_length=max_length, mean=mean, std=std, do_normalize=normalize)
    return np.stack(fe(wavs, sampling_rate=SR)["input_values"]).astype(np.float32)


def varied_clips(seconds: list[float], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    clips = [make_signal(KINDS[i % len(KINDS)], s, rng=rng) for i, s in enumerate(seconds)]
    t = np.arange(int(1.5 * SR)) / SR
    clips += [
        np.sin(2 * np.pi * 7000 * t).astype(np.float32),  # loud pure tone: worst case for float32 FFT
        (3.0 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32),  # beyond full scale (after +gain)
        np.zeros(SR, np.float32),  # digital silence: every cell at the mel floor
        (0.5 + 1e-5 * rng.standard_normal(SR)).astype(np.float32),  # DC offset + tiny noise
        np.zeros(300, np.float32) + 0.1,  # 300 samples: no complete frame at all
    ]
    return clips


@pytest.mark.parametrize("max_length,seconds", [
    (1024, [0.4, 2.0, 10.5, 11.0]),
    (100, [0.03, 0.5, 0.99, 1.0, 1.01, 3.0, 0.2, 0.7, 1.5, 2.5]),
    (16, [0.1, 0.16, 0.25, 0.5]),
])
def test_fbank_matches_ast_feature_extractor(max_length, seconds):
    clips = varied_clips(seconds, seed=max_length)
    ref = reference(clips, max_length)
    ours = Fbank(max_length)(clips).numpy()
    assert ours.shape == ref.shape == (len(clips), max_length, 128)
    err = np.abs(ours - ref)
    assert err.max() <= 1e-3, f"max abs error {err.max():.2e} at {np.unravel_index(err.argmax(), err.shape)}"
    # unnormalised values agree too (so statistics computed from them are the reference's)
    raw = Fbank(max_length)(clips, normalize=False).numpy()
    assert np.abs(raw - reference(clips, max_length, normalize=False)).max() <= 1e-2


def test_fbank_other_stats_and_padding_value():
    clips = varied_clips([0.5, 1.3], seed=3)
    fb = Fbank(160, mean=-6.0, std=2.5)
    ours = fb(clips).numpy()
    assert np.abs(ours - reference(clips, 160, mean=-6.0, std=2.5)).max() <= 1e-3
    # padded frames hold 0 *before* normalisation, like ASTFeatureExtractor
    n = num_frames(len(clips[0]))
    assert n < 160
    np.testing.assert_allclose(ours[0, n:], fb.padding_value(), atol=1e-6)
    assert fb.padding_value() == pytest.approx(6.0 / 5.0)


def test_fbank_accepts_tensor_batch_single_clip_and_float64():
    clips = [make_signal("chirp", 1.0, rng=np.random.default_rng(i)) for i in range(3)]
    fb = Fbank(128)
    from_list = fb(clips)
    from_tensor = fb(torch.from_numpy(np.stack(clips)))
    torch.testing.assert_close(from_list, from_tensor)
    single = fb(clips[1].astype(np.float64))
    assert single.shape == (1, 128, 128)
    torch.testing.assert_close(single[0], from_list[1])


def test_fbank_clip_shorter_than_one_frame_is_all_padding():
    fb = Fbank(32)
    out = fb([np.ones(100, np.float32), np.zeros(0, np.float32)])
    torch.testing.assert_close(out, torch.full((2, 32, 128), fb.padding_value()))


def test_fbank_rejects_bad_input():
    fb = Fbank(32)
    with pytest.raises(FeatureError, match="mono"):
        fb([np.zeros((2, 1600), np.float32)])
    with pytest.raises(FeatureError, match="No audio"):
        fb([])
    with pytest.raises(FeatureError, match="standard deviation"):
        Fbank(32, std=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fbank_on_cuda_matches_cpu():
    clips = varied_clips([1.0, 2.0], seed=5)
    gpu = Fbank(256, device="cuda")(clips)
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - Fbank(256)(clips)).abs().max() <= 1e-3


def test_compute_stats_is_global_over_real_frames():
    rng = np.random.default_rng(7)
    # very different loudness per clip, varied lengths, one clip longer than max_length
    clips = [make_signal(KINDS[i % len(KINDS)], s, rng=rng) * g
             for i, (s, g) in enumerate([(0.3, 1.0), (1.2, 0.01), (0.8, 0.5), (2.5, 0.001), (0.5, 1.0)])]
    max_length = 150
    mean, std = compute_stats(iter(clips), Fbank(max_length), batch_size=2)
    raw = reference(clips, max_length, normalize=False)
    real = np.concatenate([raw[i, : min(num_frames(len(c)), max_length)] for i, c in enumerate(clips)])
    assert mean == pytest.approx(float(real.astype(np.float64).mean()), abs=1e-4)
    assert std == pytest.approx(float(real.astype(np.float64).std(ddof=1)), rel=1e-4)
    # batching does not change the answer, nor reading the clips from a datasets.Dataset
    assert compute_stats(clips, Fbank(max_length), batch_size=64) == pytest.approx((mean, std), rel=1e-9)
    assert compute_stats(_audio_dataset(clips), Fbank(max_length)) == pytest.approx((mean, std), rel=1e-9)
    # and it is not the tutorial's mean of per-clip stds, which misses the spread between clips
    mean_of_stds = float(np.mean([raw[i, : num_frames(len(c))].std() for i, c in enumerate(clips)]))
    assert std > mean_of_stds * 1.2


def test_compute_stats_rejects_empty_or_constant():
    with pytest.raises(FeatureError, match="empty"):
        compute_stats([], Fbank(32))
    with pytest.raises(FeatureError, match="identical"):
        compute_stats([np.zeros(4000, np.float32)] * 2, Fbank(32))


def test_choose_max_length_rule():
    assert choose_max_length([1.0] * 10) == 112  # 100 frames -> next multiple of 16
    assert choose_max_length([5.0]) == 512
    assert choose_max_length([0.05, 0.02]) == 16  # never below one AST patch
    assert choose_max_length([60.0]) == 1024  # capped at the pretrained length
    assert choose_max_length([60.0], cap=400) == 400
    assert choose_max_length([1.0] * 96 + [9.0] * 4) == 112  # the 95th percentile ignores rare outliers
    assert choose_max_length([1.0] * 90 + [4.0] * 10) == 400
    assert choose_max_length([1.0] * 90 + [4.0] * 10, percentile=50) == 112
    # the chosen length holds every frame of a clip at the percentile duration
    for d in (0.37, 1.5, 2.999, 7.77):
        assert choose_max_length([d]) >= num_frames(int(round(d * SR)))
        assert choose_max_length([d]) % 16 == 0
    with pytest.raises(FeatureError, match="no clip durations"):
        choose_max_length([])


def _audio_dataset(clips):
    from datasets import Dataset, Features, Sequence, Value

    return Dataset.from_dict({"audio": clips, "label": list(range(len(clips)))},
                             features=Features({"audio": Sequence(Value("float32")), "label": Value("int64")}))


def test_feature_cache_matches_fbank_and_is_reused(tmp_path):
    clips = varied_clips([0.5, 1.0, 1.7, 0.2, 2.2], seed=11)
    ds = _audio_dataset(clips)
    fb = Fbank(128, mean=-5.0, std=3.0)
    progress = []
    cache = FeatureCache(tmp_path / "cache", fb, ds, batch_size=3, progress=lambda f, m: progress.append(f))
    assert not cache.reused and progress[-1] == 1.0
    assert len(cache) == len(clips)
    expected = fb(clips)
    for i in range(len(clips)):
        item = cache[i]
        assert item.shape == (128, 128) and item.dtype == torch.float32
        torch.testing.assert_close(item, expected[i])
    assert cache.file.stat().st_size == len(clips) * 128 * 128 * 4

    again = FeatureCache(tmp_path / "cache", fb, ds)
    assert again.reused and again.file == cache.file
    # a change to the statistics, the length or the data makes a different cache
    assert FeatureCache(tmp_path / "cache", Fbank(128, mean=-4.0, std=3.0), ds).file != cache.file
    assert FeatureCache(tmp_path / "cache", Fbank(64, mean=-5.0, std=3.0), ds).file != cache.file
    assert FeatureCache(tmp_path / "cache", fb, ds.select([0, 1])).file != cache.file
    with pytest.raises(IndexError):
        cache[len(clips)]
    leftovers = [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_feature_cache_from_plain_arrays_and_missing_column(tmp_path):
    clips = varied_clips([0.6, 0.9], seed=2)[:2]
    cache = FeatureCache(tmp_path, Fbank(64), clips)
    torch.testing.assert_close(cache[1], Fbank(64)(clips)[1])
    with pytest.raises(FeatureError, match="no 'wave' column"):
        FeatureCache(tmp_path, Fbank(64), _audio_dataset(clips), column="wave")


def test_feature_extractor_config_reproduces_our_features(tmp_path):
    from transformers import ASTFeatureExtractor

    fe = feature_extractor_config(96, -5.5, 3.25)
    fe.save_pretrained(tmp_path)
    loaded = ASTFeatureExtractor.from_pretrained(tmp_path)
    assert (loaded.max_length, loaded.mean, loaded.std, loaded.do_normalize) == (96, -5.5, 3.25, True)
    clips = varied_clips([0.4, 1.2], seed=9)
    theirs = np.stack(loaded(clips, sampling_rate=SR)["input_values"])
    assert np.abs(Fbank(96, -5.5, 3.25)(clips).numpy() - theirs).max() <= 1e-3


def test_feature_cache_memory_does_not_grow_with_the_dataset(tmp_path):
    import tracemalloc

    rng = np.random.default_rng(0)
    clips = [make_signal(KINDS[i % len(KINDS)], 1.0, rng=rng) for i in range(60)]
    ds = _audio_dataset(clips)
    fb = Fbank(112)
    FeatureCache(tmp_path / "warm-up", fb, _audio_dataset(clips[:4]))  # first-use imports and caches
    tracemalloc.start()
    try:
        cache = FeatureCache(tmp_path / "cache", fb, ds, batch_size=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = cache.file.stat().st_size
    assert total == 60 * 112 * 128 * 4
    assert peak < total / 3, f"peak {peak} bytes while caching {total} bytes of features"
