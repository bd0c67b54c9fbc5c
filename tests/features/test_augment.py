"""Augmentation presets and overrides, determinism, SpecAugment, mixup, and the preview."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from astapp.core.config import AugmentConfig
from astapp.core.errors import AstappError
from astapp.data.synth import make_signal
from astapp.features.augment import build_augment, mixup, spec_augment
from astapp.features.augment_settings import CATALOGUE, CLASSIC, PRESETS, AugmentError, resolve
from astapp.features.fbank import Fbank

pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")


def clip(seconds: float = 1.0, kind: str = "harmonic", seed: int = 0) -> np.ndarray:
    return make_signal(kind, seconds, rng=np.random.default_rng(seed))


def test_classic_is_the_reference_recipe():
    aug = build_augment(AugmentConfig(preset="classic"), seed=0)
    c = aug.compose
    assert (c.p, c.shuffle) == (0.8, True)
    t = {type(x).__name__: x for x in c.transforms}
    assert list(t) == CLASSIC
    assert (t["AddGaussianSNR"].min_snr_db, t["AddGaussianSNR"].max_snr_db) == (10, 20)
    assert (t["Gain"].min_gain_db, t["Gain"].max_gain_db) == (-6, 6)
    g = t["GainTransition"]
    assert (g.min_gain_db, g.max_gain_db, g.min_duration, g.max_duration, g.duration_unit) == (-6, 6, 0.01, 0.3,
                                                                                             "fraction")
    cd = t["ClippingDistortion"]
    assert (cd.min_percentile_threshold, cd.max_percentile_threshold, cd.p) == (0, 30, 0.5)
    ts = t["TimeStretch"]
    assert (ts.min_rate, ts.max_rate, ts.leave_length_unchanged) == (0.8, 1.2, True)
    assert (t["PitchShift"].min_semitones, t["PitchShift"].max_semitones) == (-4, 4)
    assert all(x.p == 0.5 for x in c.transforms)  # the library default the recipe relies on


def test_none_builds_nothing_and_presets_describe_parameters():
    assert build_augment(AugmentConfig(preset="none")) is None
    assert PRESETS["none"] == []
    for preset in ("light", "classic"):
        for entry in PRESETS[preset]:
            spec = CATALOGUE[entry["name"]]["params"]
            assert set(entry["params"]) == set(spec)
            for key, value in entry["params"].items():
                assert spec[key]["min"] <= value <= spec[key]["max"], (preset, entry["name"], key)
    light = {e["name"]: e["params"] for e in PRESETS["light"]}
    assert light["AddGaussianSNR"]["min_snr_db"] > 20 and all(p["p"] < 0.8 for p in light.values())


def test_overrides_disable_change_and_add_transforms():
    cfg = AugmentConfig(preset="classic", transforms={"PitchShift": {"enabled": False},
                                                      "Gain": {"p": 0.3, "min_gain_db": -3}})
    aug = build_augment(cfg, seed=0)
    names = [type(x).__name__ for x in aug.compose.transforms]
    assert "PitchShift" not in names and len(names) == 5
    gain = aug.compose.transforms[names.index("Gain")]
    assert (gain.p, gain.min_gain_db, gain.max_gain_db) == (0.3, -3, 6)
    # a classic transform on top of the light preset
    light = build_augment(AugmentConfig(preset="light", transforms={"ClippingDistortion": {"enabled": True}}))
    assert "ClippingDistortion" in light.names and light.compose.p == 0.6
    # a transform on its own, with no preset
    only = build_augment(AugmentConfig(preset="none", transforms={"Gain": {"enabled": True, "p": 1.0}}), seed=1)
    assert only.names == ["Gain"] and only.compose.p == 1.0
    x = clip()
    ratio = np.abs(only(x)).max() / np.abs(x).max()
    assert 10 ** (-6 / 20) - 1e-4 <= ratio <= 10 ** (6 / 20) + 1e-4 and ratio != pytest.approx(1.0)
    # resolve lists every transform so the UI can render all toggles
    states = {e["name"]: e["enabled"] for e in resolve(AugmentConfig(preset="light"))}
    assert set(states) == set(CATALOGUE) and states["Gain"] and not states["ClippingDistortion"]


@pytest.mark.parametrize("transforms,match", [
    ({"Reverb": {}}, "Unknown augmentation transform 'Reverb'"),
    ({"Gain": {"loudness": 3}}, "Gain has no parameter 'loudness'"),
    ({"Gain": {"p": 1.5}}, "between 0 and 1"),
    ({"Gain": {"p": "high"}}, "must be a number"),
    ({"Gain": {"min_gain_db": 10, "max_gain_db": 5}}, "must not be greater than max_gain_db"),
    ({"Gain": 3}, "must be a mapping"),
    ({"Gain": {"enabled": "no"}}, "must be true or false"),
    ({"GainTransition": {"min_duration": 0.0}}, "between 0.01 and 1"),
])
def test_bad_overrides_get_clear_errors(transforms, match):
    with pytest.raises(AugmentError, match=match) as info:
        build_augment(AugmentConfig(preset="classic", transforms=transforms))
    assert isinstance(info.value, AstappError)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(AugmentError, match="Unknown augmentation preset 'heavy'"):
        build_augment(AugmentConfig(preset="heavy"))


def test_augment_is_deterministic_per_seed_keeps_length_and_leaves_global_rng_alone():
    cfg = AugmentConfig(preset="classic")
    x = clip(1.3, "chirp")
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    a = [build_augment(cfg, seed=7)(x) for _ in range(1)]
    first = build_augment(cfg, seed=7)
    second = build_augment(cfg, seed=7)
    runs_a = [first(x) for _ in range(4)]
    runs_b = [second(x) for _ in range(4)]
    assert (random.random(), np.random.rand()) == before  # global RNGs untouched
    for u, v in zip(runs_a, runs_b, strict=True):
        np.testing.assert_array_equal(u, v)
        assert u.shape == x.shape and u.dtype == np.float32 and np.isfinite(u).all()
    np.testing.assert_array_equal(a[0], runs_a[0])
    # successive calls draw differently, and another seed gives another draw
    assert not all(np.array_equal(runs_a[0], r) for r in runs_a[1:])
    assert not np.array_equal(build_augment(cfg, seed=8)(x), runs_a[0])


def test_time_stretch_and_pitch_shift_keep_length_on_short_clips():
    cfg = AugmentConfig(preset="none", transforms={"TimeStretch": {"enabled": True, "p": 1.0},
                                                   "PitchShift": {"enabled": True, "p": 1.0}})
    aug = build_augment(cfg, seed=3)
    for n in (4000, 16000 + 7):
        x = clip(n / 16000, "tone")[:n]
        y = aug(x)
        assert y.shape == (n,) and not np.array_equal(y, x)
    assert set(aug.last_applied) == {"TimeStretch", "PitchShift"}
    with pytest.raises(AugmentError, match="mono"):
        aug(np.zeros((2, 100), np.float32))


def test_spec_augment_masks_one_band_and_one_span_per_item():
    feats = torch.randn(6, 200, 128) + 5.0  # no natural zeros
    out = spec_augment(feats, freq_mask=48, time_mask=40, generator=torch.Generator().manual_seed(0))
    assert out.shape == feats.shape and not torch.equal(out, feats)
    assert torch.equal(feats, feats.clone())  # input untouched
    widths = []
    for item, orig in zip(out, feats, strict=True):
        zero = item == 0
        cols = zero.all(dim=0)  # masked mel bins: zero at every frame
        rows = zero.all(dim=1)  # masked frames: zero in every bin
        assert cols.sum() <= 48 and rows.sum() <= 40
        for m in (cols, rows):  # each mask is one contiguous block
            idx = m.nonzero().flatten()
            if len(idx):
                assert idx.max() - idx.min() + 1 == len(idx)
        keep = ~(cols[None, :] | rows[:, None])
        assert torch.equal(item[keep], orig[keep])
        widths.append((int(cols.sum()), int(rows.sum())))
    assert len(set(widths)) > 1  # drawn per item
    again = spec_augment(feats, 48, 40, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    single = spec_augment(feats[0], 10, 10, torch.Generator().manual_seed(1))
    assert single.shape == feats[0].shape
    assert torch.equal(spec_augment(feats, 0, 0), feats)


def test_mixup_probability_determinism_and_errors():
    b = 64
    feats = torch.randn(b, 4, 3)
    labels = torch.nn.functional.one_hot(torch.arange(b) % 4, 4)  # integer one-hot is accepted
    x, y = mixup(feats, labels, p=0.5, generator=torch.Generator().manual_seed(0))
    unchanged = torch.tensor([torch.equal(x[i], feats[i]) for i in range(b)])
    assert 10 < int(unchanged.sum()) < 54  # about half the items are mixed
    assert torch.equal(y[unchanged], labels[unchanged].float())
    assert y.dtype == torch.float32 and torch.allclose(y.sum(1), torch.ones(b))
    x2, y2 = mixup(feats, labels, p=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x0, y0 = mixup(feats, labels, p=0.0)
    assert torch.equal(x0, feats) and torch.equal(y0, labels.float())
    with pytest.raises(AugmentError, match="between 0 and 1"):
        mixup(feats, labels, p=2.0)


def test_mixup_weights_agree_between_features_and_labels():
    g = torch.Generator().manual_seed(3)
    b = 16
    feats = torch.randn(b, 5, 2)
    labels = torch.eye(b)  # label j marks item j, so y[i] shows exactly which items went into x[i]
    x, y = mixup(feats, labels, p=1.0, generator=g)
    lams = []
    for i in range(b):
        nz = y[i].nonzero().flatten().tolist()
        assert i in nz and len(nz) == 2
        j = next(k for k in nz if k != i)
        torch.testing.assert_close(x[i], y[i, i] * feats[i] + y[i, j] * feats[j])
        lams.append(float(y[i, i]))
    assert min(lams) > 0.2 and max(lams) < 0.8 and abs(np.mean(lams) - 0.5) < 0.1  # Beta(10, 10)


def test_preview_seeded_figure_and_features():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from astapp.features.preview import preview

    x = clip(1.0, "chirp", seed=4)
    cfg = AugmentConfig(preset="classic", transforms={"Gain": {"p": 1.0}}, freq_mask=20, time_mask=20)
    fb = Fbank(112)
    a = preview(x, cfg, seed=5, fbank=fb)
    b = preview(x, cfg, seed=5, fbank=fb)
    c = preview(x, cfg, seed=6, fbank=fb)
    assert a.sample_rate == 16000 and a.original.shape == a.augmented.shape == x.shape
    np.testing.assert_array_equal(a.original, x)
    np.testing.assert_array_equal(a.augmented, b.augmented)
    torch.testing.assert_close(a.augmented_features, b.augmented_features)
    assert not np.array_equal(a.augmented, c.augmented)
    assert "Gain" in a.applied
    # features are exactly what the model sees: normalised fbank, masks only on the augmented side
    torch.testing.assert_close(a.original_features, fb([x])[0])
    unmasked = fb([a.augmented])[0]
    masked = a.augmented_features != unmasked
    assert masked.any() and (a.augmented_features[masked] == 0).all()
    assert isinstance(a.figure, Figure) and len(a.figure.axes) >= 4
    titles = [ax.get_title() for ax in a.figure.axes]
    assert any("Original" in t for t in titles) and any("Augmented" in t for t in titles)
    images = [ax.images[0] for ax in a.figure.axes if ax.images]
    assert len(images) == 2 and images[0].get_clim() == images[1].get_clim()
    assert plt.get_fignums() == []  # never registered with pyplot, so nothing leaks in a server

    plain = preview(x, AugmentConfig(), seed=1)
    np.testing.assert_array_equal(plain.augmented, x)
    torch.testing.assert_close(plain.original_features, plain.augmented_features)
    assert plain.original_features.shape == (112, 128)  # default length covers the clip
    with pytest.raises(AstappError):
        preview(np.zeros(0, np.float32), cfg, seed=1)


class _Clips(torch.utils.data.Dataset):
    def __init__(self, aug):
        self.aug, self.x = aug, clip(0.5, "tone", seed=2)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i):
        return torch.from_numpy(self.aug(self.x))


def test_dataloader_workers_draw_differently_and_reproducibly():
    cfg = AugmentConfig(preset="none", transforms={"Gain": {"enabled": True, "p": 1.0}})

    def run():
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(_Clips(build_augment(cfg, seed=1)), batch_size=1, num_workers=2)
        return [b[0] for b in loader]

    first, second = run(), run()
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b)
    # items 0 and 1 come from different workers' first calls: they must not be the same draw
    assert not torch.equal(first[0], first[1])


def test_seeded_draws_hold_while_another_thread_reseeds_the_global_rngs():
    """A preview while training starts (transformers' set_seed) must still give the seed's draw,
    and must not undo that thread's seeding."""
    import threading

    x = make_signal("tone", 1.0)
    want = [build_augment(AugmentConfig(preset="classic"), seed=s)(x) for s in range(12)]
    stop = threading.Event()

    def reseed_forever() -> None:
        while not stop.is_set():
            random.seed(7)
            np.random.seed(7)

    other = threading.Thread(target=reseed_forever)
    other.start()
    try:
        got = [build_augment(AugmentConfig(preset="classic"), seed=s)(x) for s in range(12)]
    finally:
        stop.set()
        other.join()
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
    random.seed(7)
    np.random.seed(7)
    build_augment(AugmentConfig(preset="classic"), seed=1)(x)
    assert random.random() == random.Random(7).random()
    assert np.random.random() == np.random.RandomState(7).random()


def test_preview_draws_only_the_frames_the_clip_fills():
    """Issue 11.12: padding up to the input length is constant after normalisation and looked like a
    bright band of sound; the figure shows the clip's own frames only (the features stay model-exact)."""
    from astapp.features.fbank import num_frames
    from astapp.features.preview import preview

    x = clip(0.5, "chirp", seed=2)
    pv = preview(x, AugmentConfig(), seed=0, fbank=Fbank(112))
    assert pv.original_features.shape[0] == 112
    drawn = [im.get_array().shape[1] for ax in pv.figure.axes for im in ax.get_images()]
    assert drawn == [num_frames(x.size)] * 2 and num_frames(x.size) < 112
