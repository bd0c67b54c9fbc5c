"""AST input features: a batched torch log-mel filterbank, dataset statistics, input length.

`Fbank` reproduces `transformers.ASTFeatureExtractor` (its numpy path, which is what runs without
torchaudio) to ~1e-4 after normalisation, but whole batches at once in torch, so it is several
times faster and also runs on a GPU. It computes in float32 and redoes in float64 the few frames
where float32 FFT round-off could show (quiet mel bands beside loud ones). The exported model keeps using `ASTFeatureExtractor`
(`feature_extractor_config`), so `transformers.pipeline` sees exactly the features we trained on.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from astapp.core.config import AUDIOSET_MEAN, AUDIOSET_STD, MAX_FRAMES, NUM_MEL_BINS, SAMPLE_RATE
from astapp.core.errors import AstappError

# Kaldi-style framing used by AST: 25 ms frames, 10 ms hop at 16 kHz, FFT of 512.
FRAME_LENGTH = 400
HOP_LENGTH = 160
FFT_LENGTH = 512
PREEMPHASIS = 0.97
MEL_FLOOR = 1.192092955078125e-07  # float32 epsilon, as in ASTFeatureExtractor
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100
PATCH = 16  # AST patch size: an input shorter than this cannot make one patch
# Bound on a float32 frame's normalised error above which the frame is recomputed in float64 (see
# Fbank._risky). Measured errors stay ~10x below it (<= ~2e-4) while 5-15% of frames of synthetic audio
# with a quiet noise floor are refined (fewer for noisy recordings, most for loud pure tones).
REFINE_BOUND = 2e-3
MEL_GROUPS = 8  # bands of mel filters applied as separate small matmuls (see Fbank._apply_mel)
CHUNK_FRAMES = 2048  # frames processed at once on the CPU (see Fbank.raw)


class FeatureError(AstappError):
    """Features could not be computed from the given input."""


def num_frames(num_samples: int) -> int:
    """Frames ASTFeatureExtractor makes from a clip (no centring): 1 + (n - 400) // 160, at least 0."""
    return max(0, 1 + (int(num_samples) - FRAME_LENGTH) // HOP_LENGTH)


MEL_WARNING = "At least one mel filter has all zero values"


@contextlib.contextmanager
def quiet_mel_warning() -> Iterator[None]:
    """Silence transformers' warning that AST's own 128-bin filterbank leaves its lowest filters empty: it
    comes with every AST feature extractor (the published checkpoints' too) and says nothing about the
    user's data, so astapp hides it wherever it builds one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=MEL_WARNING)
        yield


def _mel_filters(num_mel_bins: int) -> np.ndarray:
    """The exact filter matrix ASTFeatureExtractor builds without torchaudio, shape (257, bins)."""
    from transformers.audio_utils import mel_filter_bank

    with quiet_mel_warning():
        return mel_filter_bank(num_frequency_bins=FFT_LENGTH // 2 + 1, num_mel_filters=num_mel_bins,
                               min_frequency=20, max_frequency=SAMPLE_RATE // 2, sampling_rate=SAMPLE_RATE,
                               norm=None, mel_scale="kaldi", triangularize_in_mel_space=True)


def _band_groups(mel: torch.Tensor, groups: int) -> list[tuple[int, int, int, int, torch.Tensor]]:
    """Split the filter columns into contiguous bands with the FFT-bin range each band touches."""
    out = []
    for cols in np.array_split(np.arange(mel.shape[1]), min(groups, mel.shape[1])):
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        rows = torch.nonzero(mel[:, c0:c1].abs().sum(1) > 0).flatten()
        lo, hi = (int(rows.min()), int(rows.max()) + 1) if rows.numel() else (0, 1)
        out.append((c0, c1, lo, hi, mel[lo:hi, c0:c1].contiguous()))
    return out


class Fbank:
    """Batched AST log-mel filterbank, numerically matching `ASTFeatureExtractor`.

    Per frame: remove the DC offset, pre-emphasis 0.97 (first sample scaled by 0.03), symmetric
    Hann window of 400 samples (what the numpy path uses), |rfft(512)|², 128 kaldi-scale mel filters,
    floor at float32 epsilon, natural log. Frames beyond max_length are cut; missing frames are filled
    with 0 *before* normalisation (as ASTFeatureExtractor does), then `(x - mean) / (2 * std)`.
    """

    def __init__(self, max_length: int = MAX_FRAMES, mean: float = AUDIOSET_MEAN, std: float = AUDIOSET_STD,
                 num_mel_bins: int = NUM_MEL_BINS, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, refine: bool = True):
        if int(max_length) < 1:
            raise FeatureError(f"Input length must be at least 1 frame, not {max_length}.")
        if not std > 0:
            raise FeatureError(f"The feature standard deviation must be positive, not {std}; "
                               "recompute the dataset statistics.")
        self.max_length = int(max_length)
        self.mean = float(mean)
        self.std = float(std)
        self.num_mel_bins = int(num_mel_bins)
        self.device = torch.device(device)
        self.dtype = dtype
        self._mel = torch.as_tensor(_mel_filters(self.num_mel_bins), dtype=dtype, device=self.device)
        self._mel_groups = _band_groups(self._mel, MEL_GROUPS)
        self._window = torch.as_tensor(np.hanning(FRAME_LENGTH), dtype=dtype, device=self.device)
        self._window512 = torch.nn.functional.pad(self._window, (0, FFT_LENGTH - FRAME_LENGTH))
        self._window_fft_ri = torch.view_as_real(torch.fft.rfft(self._window512)).contiguous()  # (257, 2)
        self.refine = refine
        self.refined_frames = 0  # frames recomputed in float64 so far (for benchmarks)
        if dtype != torch.float64 and refine:
            mel64 = _mel_filters(self.num_mel_bins)
            self._mel64 = torch.as_tensor(mel64, dtype=torch.float64, device=self.device)
            self._mel_width = torch.as_tensor(mel64.sum(0), dtype=dtype, device=self.device)
            self._window64 = torch.as_tensor(np.hanning(FRAME_LENGTH), dtype=torch.float64, device=self.device)

    def _apply_mel(self, power: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """power (..., 257) @ mel filters into out (..., bins), one small matmul per band of filters.

        Each filter only covers a few neighbouring FFT bins, so 8 bands of 16 filters skip ~87% of
        the dense product's zeros; ~4x faster than one dense matmul on the CPU.
        """
        for c0, c1, lo, hi, weights in self._mel_groups:
            out[..., c0:c1] = power[..., lo:hi] @ weights
        return out

    def _power(self, frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """|rfft(512)|² of DC-removed, pre-emphasised, Hann-windowed frames (..., 400) -> (..., 257).

        The straightforward per-frame form, used for the float64 refinement of a few frames.
        """
        frames = frames.to(dtype)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        frames = torch.cat([frames[..., :1] * (1 - PREEMPHASIS),
                            frames[..., 1:] - PREEMPHASIS * frames[..., :-1]], dim=-1)
        window = self._window64 if dtype == torch.float64 and self.dtype != torch.float64 else self._window
        spec = torch.fft.rfft(frames * window, n=FFT_LENGTH)
        return spec.real.square() + spec.imag.square()

    def _power_fast(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The same as `_power(frames)` for the first t frames of x (B, N), with fewer passes over memory.

        Per frame, DC removal then pre-emphasis gives e[n] - 0.03*mean for n >= 1, where
        e = x[n] - 0.97*x[n-1] is computed once on the whole signal; sample 0 is special but the
        symmetric Hann window is 0 there, so it never counts. The mean term is linear, so it is
        subtracted after the FFT: rfft(e*w) - 0.03*mean*rfft(w).
        """
        b, n = x.shape
        # e is padded with zeros so each frame can be read as 512 samples: window512 is 0 after 400,
        # so rfft needs no internal zero-padding copy.
        e = torch.empty(b, max(n, (t - 1) * HOP_LENGTH + FRAME_LENGTH) + FFT_LENGTH - FRAME_LENGTH,
                        dtype=x.dtype, device=x.device)
        e[:, n:] = 0
        e[:, 0] = x[:, 0]
        torch.sub(x[:, 1:], x[:, :-1], alpha=PREEMPHASIS, out=e[:, 1:n])
        frames = e.unfold(1, FFT_LENGTH, HOP_LENGTH)[:, :t]
        means = torch.nn.functional.avg_pool1d(x[:, None], FRAME_LENGTH, HOP_LENGTH)[:, 0, :t]
        spec = torch.fft.rfft(frames * self._window512)
        # in place on the real view: one fused multiply-add, no complex temporary
        torch.view_as_real(spec).addcmul_(((PREEMPHASIS - 1) * means)[..., None, None], self._window_fft_ri)
        power = spec.real.square()
        return power.addcmul_(spec.imag, spec.imag)

    def _risky(self, power: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Frames (B, T) where float32 FFT round-off could move a normalised value by > REFINE_BOUND.

        The float32 FFT's absolute error per bin is at most ~eps*sqrt(frame energy) (measured <= 1.05x
        over tones, noise, clicks and chirps; we allow 2x): d. By Cauchy-Schwarz a mel cell of filter width w and energy m then errs by at most
        2*d*sqrt(w*m) + d^2*w, i.e. relatively by more than r only if m < 4*d^2*w/r^2 (up to the
        negligible d^2 term). Quiet cells beside loud ones (pure tones, low bins after pre-emphasis)
        fail this, and those frames are recomputed in float64; the rest keep the fast float32 result.
        """
        r = REFINE_BOUND * 2 * self.std  # allowed relative error of a mel energy (log error / (2 std))
        d2 = (2 * torch.finfo(torch.float32).eps) ** 2 * power.sum(-1, keepdim=True)
        return (mel < (4 / r**2) * d2 * self._mel_width).any(-1)

    @property
    def max_samples(self) -> int:
        """Samples that fill exactly max_length frames; anything after them is never looked at."""
        return (self.max_length - 1) * HOP_LENGTH + FRAME_LENGTH

    def padding_value(self) -> float:
        """Value that padded frames have after normalisation (0 normalised)."""
        return (0.0 - self.mean) / (2 * self.std)

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / (2 * self.std)

    def _batch(self, wavs: Sequence[np.ndarray] | torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """Stack clips (cropped to max_samples) into one zero-padded (B, N) tensor and their lengths."""
        limit = self.max_samples
        if isinstance(wavs, torch.Tensor):
            x = wavs.unsqueeze(0) if wavs.dim() == 1 else wavs
            if x.dim() != 2:
                raise FeatureError(f"Expected mono audio shaped (batch, samples), got shape {tuple(wavs.shape)}.")
            x = x[:, :limit].to(self.device, self.dtype)
            return x, [x.shape[1]] * x.shape[0]
        if isinstance(wavs, np.ndarray) and wavs.ndim == 1:
            wavs = [wavs]
        arrays = []
        for i, w in enumerate(wavs):
            a = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
            if a.ndim != 1:
                raise FeatureError(f"Clip {i} is not mono audio (shape {a.shape}); mix it down to one channel first.")
            arrays.append(a[:limit])
        if not arrays:
            raise FeatureError("No audio clips were given to compute features from.")
        lengths = [len(a) for a in arrays]
        width = max(max(lengths), FRAME_LENGTH)
        buf = np.zeros((len(arrays), width), dtype=np.float32)
        for i, a in enumerate(arrays):
            buf[i, : len(a)] = a
        return torch.from_numpy(buf).to(self.device, self.dtype), lengths

    def raw(self, wavs: Sequence[np.ndarray] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unnormalised log-mel (B, max_length, bins) with 0 in padded frames, and real frame counts (B,)."""
        x, lengths = self._batch(wavs)
        b = x.shape[0]
        n_real = torch.tensor([min(num_frames(n), self.max_length) for n in lengths], device=self.device)
        t = num_frames(x.shape[1])
        if t == 0:
            return torch.zeros(b, self.max_length, self.num_mel_bins, dtype=self.dtype, device=self.device), n_real
        t = min(t, self.max_length)
        mel = torch.empty(b, t, self.num_mel_bins, dtype=self.dtype, device=self.device)
        # A few clips at a time: the per-frame temporaries then stay a few MB, which the allocator reuses
        # and the CPU caches hold; whole-batch temporaries (~65 MB for 32 x 10 s) made it ~3x slower.
        step = max(1, (CHUNK_FRAMES if self.device.type == "cpu" else 64 * CHUNK_FRAMES) // t)
        for i in range(0, b, step):
            xs = x[i : i + step]
            power = self._power_fast(xs, t)
            m = self._apply_mel(power, mel[i : i + step])
            if self.dtype != torch.float64 and self.refine:
                valid = torch.arange(t, device=self.device)[None, :] < n_real[i : i + step, None]
                redo = self._risky(power, m) & valid
                if bool(redo.any()):
                    idx = redo.nonzero(as_tuple=True)
                    frames = xs.unfold(1, FRAME_LENGTH, HOP_LENGTH)[:, :t]
                    m[idx] = (self._power(frames[idx], torch.float64) @ self._mel64).to(self.dtype)
                    self.refined_frames += int(idx[0].numel())
        valid = torch.arange(t, device=self.device)[None, :] < n_real[:, None]
        logmel = mel.clamp_min_(MEL_FLOOR).log_().masked_fill_(~valid[..., None], 0.0)
        if t < self.max_length:
            logmel = torch.nn.functional.pad(logmel, (0, 0, 0, self.max_length - t))
        return logmel, n_real

    def __call__(self, wavs: Sequence[np.ndarray] | torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Features (B, max_length, bins) exactly as the model sees them (normalised by default)."""
        feats, _ = self.raw(wavs)
        return self.normalize(feats) if normalize else feats


def batched(items: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(np.asarray(item, dtype=np.float32))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_audio(dataset: Any, column: str, batch_size: int) -> Iterator[list[np.ndarray]]:
    """Batches of waveforms from a `datasets.Dataset` (reading only one column) or a sequence of arrays."""
    if hasattr(dataset, "with_format") and hasattr(dataset, "column_names"):
        if column not in dataset.column_names:
            raise FeatureError(f"The dataset has no {column!r} column (columns: {', '.join(dataset.column_names)}).")
        ds = dataset.select_columns([column]).with_format("numpy")
        for start in range(0, len(ds), batch_size):
            rows = ds[start : start + batch_size][column]
            yield [np.asarray(r, dtype=np.float32) for r in rows]
    else:
        yield from batched(dataset, batch_size)


def compute_stats(wavs: Iterable[np.ndarray] | Any, fbank: Fbank, batch_size: int = 32,
                  column: str = "audio") -> tuple[float, float]:
    """Global mean and std of the unnormalised log-mel over every real frame x mel bin.

    Real frames are those the model sees (up to max_length) that come from audio, not padding.
    Accumulates sum and sum of squares in float64 batch by batch, so memory stays flat; this is the
    dataset statistic, not the mean of per-clip stds (which underestimates the spread). Run it on the
    training split without augmentation. `wavs` may also be a `datasets.Dataset` (its `column` is read
    in batches).
    """
    total = 0.0
    total_sq = 0.0
    count = 0
    for batch in iter_audio(wavs, column, batch_size):
        feats, n_real = fbank.raw(batch)
        mask = torch.arange(fbank.max_length, device=feats.device)[None, :] < n_real[:, None]
        real = feats[mask].double()
        total += float(real.sum())
        total_sq += float(real.square().sum())
        count += int(real.numel())
    if count < 2:
        raise FeatureError("Cannot compute feature statistics: the clips are empty or shorter than 25 ms.")
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0) * count / (count - 1)
    std = math.sqrt(var)
    if std <= 0:
        raise FeatureError("Cannot compute feature statistics: every clip is identical (e.g. all silent).")
    return mean, std


def choose_max_length(durations: Sequence[float], percentile: float = 95, cap: int = MAX_FRAMES) -> int:
    """Input length in frames from clip durations.

    Rule: take the `percentile`-th duration in seconds, convert at 100 frames per second (10 ms hop)
    rounding up, round that up to a multiple of 16 (AST's patch size), keep it at least 16 frames
    and at most `cap` (1024 = the pretrained 10.24 s). So 1 s clips give 112 frames, 5 s give 512.
    """
    if cap < PATCH:
        raise FeatureError(f"The input length cap must be at least {PATCH} frames, not {cap}.")
    d = np.asarray([float(x) for x in durations], dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise FeatureError("Cannot choose an input length: no clip durations were given.")
    seconds = float(np.percentile(d, percentile))
    frames = math.ceil(round(seconds * FRAMES_PER_SECOND, 6))
    frames = PATCH * math.ceil(max(frames, 1) / PATCH)
    return int(min(max(frames, PATCH), cap))


def feature_extractor_config(max_length: int, mean: float, std: float):
    """An `ASTFeatureExtractor` with our length and statistics, saved with the exported model."""
    from transformers import ASTFeatureExtractor

    with quiet_mel_warning():
        return ASTFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, num_mel_bins=NUM_MEL_BINS,
                                   max_length=int(max_length), padding_value=0.0, do_normalize=True,
                                   mean=float(mean), std=float(std), return_attention_mask=False)
