"""Training in slices of bounded time: ZeroGPU's `@spaces.GPU` calls, or hosts with job time limits.

A slice trains until its budget minus a safety margin (time to save a checkpoint), then stops the way a
user's Stop does; the job manager queues the next slice, which resumes exactly from that checkpoint
(resume is exact, so a run trained in slices ends with the same weights and metrics as one trained in
one go). `ASTAPP_SLICE_SECONDS=N` slices anywhere; on a ZeroGPU Space (`SPACES_ZERO_GPU` set, the
`spaces` package installed) slices default to 120 s and each runs inside `spaces.GPU(duration=...)`.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from typing import Any

from astapp.core.config import env_flag, env_float

ZERO_GPU_SLICE_S = 120.0
QUOTA_WORDS = ("quota",)


def on_zero_gpu() -> bool:
    """A ZeroGPU Space: the Hub sets SPACES_ZERO_GPU there, and the `spaces` package is what asks for GPU time."""
    return env_flag("SPACES_ZERO_GPU") and importlib.util.find_spec("spaces") is not None


def slice_seconds() -> float:
    """The slice budget in seconds, 0 when training runs in one go."""
    return env_float("ASTAPP_SLICE_SECONDS", ZERO_GPU_SLICE_S if on_zero_gpu() else 0.0)


def margin(budget: float) -> float:
    """What a slice leaves for finishing its step and saving the checkpoint (15 %, at most 30 s)."""
    return min(30.0, 0.15 * budget)


def gpu_slices(train_fn: Callable[..., Any], budget: float) -> Callable[..., Any]:
    """On ZeroGPU, each call of `train_fn` (one slice) runs inside a GPU allocation of `budget` seconds."""
    if not on_zero_gpu():
        return train_fn
    import spaces

    return spaces.GPU(duration=int(budget))(train_fn)


def is_quota_error(exc: BaseException) -> bool:
    """ZeroGPU refused more GPU time (the user's quota is used up)."""
    text = str(exc).lower()
    return any(w in text for w in QUOTA_WORDS) and ("gpu" in text or "zerogpu" in text)


class SliceClock:
    """The stop the engine sees during one slice: the user's Stop at once, the end of the slice once
    training has begun (so every slice trains at least one step, however long preparing took)."""

    def __init__(self, user_stop: threading.Event, budget: float):
        self.user_stop, self.budget = user_stop, float(budget)
        self.engine_stop = threading.Event()
        self.started = time.time()
        self.training = threading.Event()
        self.ended = False  # the slice's time ran out (not the user's Stop)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="astapp-slice-clock", daemon=True)
        self._thread.start()

    @property
    def deadline(self) -> float:
        return self.started + self.budget - margin(self.budget)

    def left(self) -> float:
        """Seconds left in this slice."""
        return max(0.0, self.deadline - time.time())

    def _watch(self) -> None:
        while not self._closed.wait(0.05):
            if self.user_stop.is_set():
                self.engine_stop.set()
                return
            if self.training.is_set() and time.time() >= self.deadline:
                self.ended = True
                self.engine_stop.set()
                return

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
