"""One trial in a cached mode: train the trainable part (frozen: the head; last-N: the top N layers, the final
layer norm and the head) on the activations the one pass cached, scoring the validation clips every epoch.

No backbone pass happens here: a trial costs a few head epochs on arrays in memory (seconds). Each trial starts
from the same initial weights (a deep copy), so trials differ only by their parameters and their seed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from astapp.crossval.clips import per_clip


@dataclass
class Cached:
    """The one pass's output and what the trials need around it."""

    x: np.ndarray  # (rows, hidden) pooled embeddings, or (rows, seq, hidden) hidden states for last-N
    y: np.ndarray  # class id per row
    clip_of_row: np.ndarray
    clip_labels: np.ndarray  # class id per clip
    label_names: list[str]
    train_rows: np.ndarray
    val_rows: np.ndarray
    val_clips: np.ndarray
    test_rows: np.ndarray
    test_clips: np.ndarray


class Trainable(nn.Module):
    """The part that trains on cached inputs, with dropout before the head's Linear layer."""

    def __init__(self, model: Any, n: int, dropout: float):
        super().__init__()
        base = model.audio_spectrogram_transformer
        self.layers = nn.ModuleList(list(base.layers)[len(base.layers) - n:]) if n else nn.ModuleList()
        self.layernorm = base.layernorm if n else None
        self.head_norm, self.dense = model.classifier.layernorm, model.classifier.dense
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layernorm is not None:
            for layer in self.layers:
                x = layer(x, None)
            seq = self.layernorm(x)
            x = (seq[:, 0] + seq[:, 1]) / 2  # as ASTModel pools: the cls and distillation tokens
        return self.dense(self.drop(self.head_norm(x)))


def clip_scores(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 over the classes the clips have, as `crossval.clips.fold_scores` gives them (a
    class absent from `y` is not a 0), in numpy: it runs after every epoch of every trial, where
    scikit-learn's checks cost more than the epoch itself."""
    y = np.asarray(y)
    pred = probs.argmax(-1) if len(probs) else np.zeros(0, dtype=np.int64)
    f1 = []
    for c in np.unique(y):
        tp = int(np.sum((pred == c) & (y == c)))
        wrong = int(np.sum((pred == c) & (y != c))) + int(np.sum((pred != c) & (y == c)))
        f1.append(2 * tp / (2 * tp + wrong) if 2 * tp + wrong else 0.0)
    return {"accuracy": float(np.mean(pred == y)) if len(y) else 0.0, "f1_macro": float(np.mean(f1)) if f1 else 0.0}


def _scores(net: Trainable, c: Cached, rows: np.ndarray, clips: np.ndarray, batch: int = 256) -> dict[str, float]:
    net.eval()
    outs = []
    with torch.inference_mode():
        for s in range(0, len(rows), batch):
            xb = torch.from_numpy(np.ascontiguousarray(c.x[rows[s:s + batch]], dtype=np.float32))
            outs.append(net(xb).softmax(-1).numpy())
    probs = np.concatenate(outs) if outs else np.zeros((0, len(c.label_names)))
    p = per_clip(probs, c.clip_of_row[rows], len(c.clip_labels))[clips]
    return clip_scores(c.clip_labels[clips], p)


@contextlib.contextmanager
def one_thread(on: bool) -> Iterator[None]:
    """One torch thread for a head fit: its products are too small to share, and on a busy CPU every op of a
    multi-threaded step waits for a descheduled thread (measured 23x slower at 2 threads; BENCHMARKS §21)."""
    before = torch.get_num_threads()
    if on:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if on:
            torch.set_num_threads(before)


def fit(model: Any, n: int, c: Cached, params: dict[str, Any], seed: int,
        report: Callable[[int, float], None] | None = None, metric: str = "f1_macro",
        stop: Callable[[], bool] | None = None) -> tuple[float, list[float], Trainable]:
    """Train a fresh copy of the trainable part with `params`; (best validation score, score per epoch, the
    network at its best epoch). `report(epoch, score)` after each epoch may raise to prune the trial."""
    with one_thread(n == 0):
        return _fit(model, n, c, params, seed, report, metric, stop)


def _fit(model: Any, n: int, c: Cached, params: dict[str, Any], seed: int,
         report: Callable[[int, float], None] | None, metric: str,
         stop: Callable[[], bool] | None) -> tuple[float, list[float], Trainable]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(Trainable(model, n, float(params.get("head_dropout", 0.0)))).float()  # copies only that part
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=float(params["lr"]),
                            weight_decay=float(params.get("weight_decay", 0.0)), foreach=True)
    y = torch.from_numpy(c.y.astype(np.int64))
    n_classes, mixup = len(c.label_names), float(params.get("augment.mixup", 0.0))
    curve: list[float] = []
    best, best_state = -1.0, copy.deepcopy(net.state_dict())
    bs = int(params["batch_size"])
    for epoch in range(1, int(params["epochs"]) + 1):
        net.train()
        order = rng.permutation(c.train_rows)
        for s in range(0, len(order), bs):
            idx = np.sort(order[s:s + bs])
            xb = torch.from_numpy(np.ascontiguousarray(c.x[idx], dtype=np.float32))
            target = nn.functional.one_hot(y[idx], n_classes).float()
            if mixup > 0 and len(idx) > 1 and rng.random() < mixup:
                lam, perm = float(rng.beta(0.4, 0.4)), torch.from_numpy(rng.permutation(len(idx)))
                xb, target = lam * xb + (1 - lam) * xb[perm], lam * target + (1 - lam) * target[perm]
            loss = nn.functional.cross_entropy(net(xb), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        score = _scores(net, c, c.val_rows, c.val_clips)[metric]
        curve.append(score)
        if score > best:
            best, best_state = score, copy.deepcopy(net.state_dict())
        if report is not None:
            report(epoch, score)
        if stop is not None and stop():
            break
    net.load_state_dict(best_state)
    return best, curve, net


def test_scores(net: Trainable, c: Cached) -> dict[str, float]:
    """Accuracy and macro F1 on the held-back test clips (called once per reported result, never in a trial)."""
    return _scores(net, c, c.test_rows, c.test_clips)


def into_model(model: Any, n: int, net: Trainable) -> Any:
    """A copy of the full model with `net`'s trained weights in place: what a trial trained, exportable as is
    (the dropout has no weights; in eval it is the identity, as in the exported head)."""
    full = copy.deepcopy(model)
    Trainable(full, n, 0.0).load_state_dict(net.state_dict())
    return full.eval()
