"""Augmentation preview for the UI: one clip before and after, as audio and as the model's features.

The figure is a plain `matplotlib.figure.Figure` on the Agg canvas (never pyplot), so nothing opens a
window and nothing piles up in pyplot's global figure list in a long-running server.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from astapp.core.config import MAX_FRAMES, SAMPLE_RATE, AugmentConfig
from astapp.core.errors import AstappError
from astapp.features.augment import build_augment, spec_augment
from astapp.features.fbank import FRAMES_PER_SECOND, Fbank, choose_max_length, num_frames


@dataclass
class Preview:
    original: np.ndarray  # 16 kHz mono float32
    augmented: np.ndarray  # same length and rate
    sample_rate: int
    original_features: torch.Tensor  # (T, 128) normalised fbank, as the model sees it
    augmented_features: torch.Tensor  # same, with SpecAugment masks when enabled
    figure: Figure
    applied: list[str]  # waveform transforms this draw actually applied


def preview(wav: np.ndarray, cfg: AugmentConfig, seed: int, fbank: Fbank | None = None) -> Preview:
    """Augment one clip with a given seed (same seed, same draw; "re-roll" = a new seed).

    Without `fbank`, the input length covers the whole clip (up to 1024 frames) with AudioSet stats.
    """
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise AstappError("The preview needs a non-empty mono clip; pick another file.")
    augmenter = build_augment(cfg, seed=seed)
    augmented = augmenter(x, SAMPLE_RATE) if augmenter is not None else x.copy()
    if fbank is None:
        fbank = Fbank(choose_max_length([x.size / SAMPLE_RATE], percentile=100, cap=MAX_FRAMES))
    feats = fbank([x, augmented]).cpu()
    original_features, augmented_features = feats[0], feats[1]
    if cfg.freq_mask > 0 or cfg.time_mask > 0:
        gen = torch.Generator().manual_seed(int(seed))
        augmented_features = spec_augment(augmented_features, cfg.freq_mask, cfg.time_mask, gen)
    names = augmenter.last_applied if augmenter is not None else []
    # Only the frames the clip really fills are drawn: the padding up to the input length is constant
    # after normalisation and would show as a bright band that looks like sound.
    real = max(1, min(num_frames(x.size), original_features.shape[0]))
    fig = _figure(x, augmented, original_features[:real], augmented_features[:real], names, cfg)
    return Preview(x, augmented, SAMPLE_RATE, original_features, augmented_features, fig, names)


def _envelope(t: np.ndarray, wave: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max per pixel-sized bin for long clips: looks the same as every sample, draws ~50x faster."""
    if wave.size <= 2 * points:
        return t, wave
    n = wave.size // points * points
    bins = wave[:n].reshape(points, -1)
    times = np.repeat(t[:n].reshape(points, -1)[:, 0], 2)
    values = np.stack([bins.min(1), bins.max(1)], axis=1).ravel()
    return times, values


def _figure(x: np.ndarray, y: np.ndarray, fx: torch.Tensor, fy: torch.Tensor, names: list[str],
            cfg: AugmentConfig) -> Figure:
    fig = Figure(figsize=(11, 6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex="col")
    t = np.arange(x.size) / SAMPLE_RATE
    peak = max(float(np.abs(x).max()), float(np.abs(y).max()), 1e-6)
    extra = []
    if cfg.freq_mask or cfg.time_mask:
        extra.append(f"SpecAugment F={cfg.freq_mask} T={cfg.time_mask}")
    aug_title = "Augmented" + (f" ({'; '.join([cfg.preset, *extra])})" if cfg.active else " (no augmentation)")
    for ax, wave, title in ((axes[0, 0], x, "Original waveform"), (axes[0, 1], y, aug_title + " waveform")):
        ax.plot(*_envelope(t, wave), linewidth=0.5)
        ax.set_ylim(-1.05 * peak, 1.05 * peak)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("amplitude")
    vmin = float(min(fx.min(), fy.min()))
    vmax = float(max(fx.max(), fy.max()))
    seconds = fx.shape[0] / FRAMES_PER_SECOND
    for ax, feats, title in ((axes[1, 0], fx, "Original log-mel (model input)"),
                             (axes[1, 1], fy, "Augmented log-mel (model input)")):
        im = ax.imshow(feats.numpy().T, origin="lower", aspect="auto", extent=(0, seconds, 0, feats.shape[1]),
                       vmin=vmin, vmax=vmax, cmap="magma", interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mel bin")
    fig.colorbar(im, ax=axes[1, :], label="normalised log-mel", shrink=0.9)
    fig.suptitle("Applied this draw: " + (", ".join(names) if names else "no waveform transform"), fontsize=9)
    return fig
