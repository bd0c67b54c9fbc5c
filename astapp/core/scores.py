"""Logits to probabilities in numpy: `softmax` (one label per clip) and `sigmoid` (multi-label).

Here in `core`, the lowest layer, because evaluation, cross-validation, prediction and the torch-free
ONNX route (`predict --onnx`, which must not import torch) all turn logits into probabilities, and a
model's output is no audio feature: `features` would be the wrong home. Both work in float64, so
averages over many windows or clips keep their precision.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (the maximum is subtracted first, so large logits do not overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic in float64: each label's own probability (multi-label)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
