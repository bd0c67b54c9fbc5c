"""Label next: a logistic-regression head on the pool's embeddings, the windows to label next, its CV accuracy.

Why logistic regression on frozen embeddings: it fits in well under a second for thousands of labels and
scores 20 000 windows in milliseconds, so a round feels instant (agile modeling, as Perch does it). Proposals
are the most uncertain windows (smallest margin between the two likeliest classes) or, per class, the likeliest
positives not labelled yet; "mix" alternates them. A window labelled "none of these" is a class of its own for
the head (the negatives every real class is fitted against), never proposed as a positive.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from astapp.pool.labels import NONE

STRATEGIES = ("margin", "positives", "mix", "diverse")
DIVERSE_POOL = 4  # "diverse" picks among the n x DIVERSE_POOL most uncertain windows
MIN_PER_CLASS = 2  # labels each class needs before a head is fitted
CHUNK = 65536


@dataclass
class Round:
    """One label-next round: proposals (window indices) with why, and the head's numbers."""

    proposals: list[int]
    reasons: list[str]
    probs: dict[int, dict[str, float]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    cv_accuracy: float | None = None
    cv_folds: int = 0
    labels_used: int = 0
    message: str = ""


def fit_head(x: np.ndarray, y: list[str] | np.ndarray, seed: int = 0):
    """A multinomial logistic regression on unit embeddings (C=10: few labels, well separated clusters).

    One BLAS thread: these matrices are small (labels x hidden), and a threaded BLAS on a busy 2-core machine
    spends its time spinning (8x slower measured under load, bench/bench_pool.py)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        return LogisticRegression(C=10.0, max_iter=300, random_state=seed).fit(np.asarray(x, np.float32), y)


def predict_all(head, emb: np.ndarray) -> np.ndarray:
    """Probabilities of every row of a (memmapped) float16 matrix, in chunks."""
    out = np.empty((len(emb), len(head.classes_)), dtype=np.float32)
    for a in range(0, len(emb), CHUNK):
        out[a:a + CHUNK] = head.predict_proba(np.asarray(emb[a:a + CHUNK], dtype=np.float32))
    return out


def cv_accuracy(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> tuple[float | None, int]:
    """Cross-validated accuracy of the head on the labels so far (folds keep one recording's windows together
    when there are enough recordings), or None with 0 folds when a class has fewer than 2 labels."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    k = int(min(5, counts.min())) if len(counts) >= 2 else 0
    if k < 2:
        return None, 0
    grouped = len(np.unique(groups)) >= 2 * k
    splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed) if grouped else \
        StratifiedKFold(k, shuffle=True, random_state=seed)
    right = total = 0
    for tr, va in splitter.split(x, y, groups if grouped else None):
        if len(np.unique(y[tr])) < 2:
            continue
        right += int((fit_head(x[tr], y[tr], seed).predict(x[va]) == y[va]).sum())
        total += len(va)
    return (right / total if total else None), k


def _margin_order(p: np.ndarray, free: np.ndarray) -> np.ndarray:
    top2 = np.partition(p[free], -2, axis=1)[:, -2:] if p.shape[1] > 1 else np.c_[1 - p[free], p[free]]
    return free[np.argsort(top2[:, 1] - top2[:, 0], kind="stable")]


def diverse(order: np.ndarray, emb: np.ndarray, n: int) -> list[int]:
    """From the n x DIVERSE_POOL most uncertain windows (`order`, most uncertain first), n that are far apart:
    the most uncertain, then each time the candidate least similar (cosine) to those already picked. Why: the top
    of a margin ranking is often one confusing spot of the map, and ten labels there teach about as much as two."""
    cand = np.asarray(order[: n * DIVERSE_POOL])
    if len(cand) <= n:
        return cand.tolist()
    v = np.asarray(emb[cand], np.float32)
    closest = v @ v[0]
    chosen = [0]
    while len(chosen) < n:
        closest[chosen] = np.inf
        nxt = int(np.argmin(closest))
        chosen.append(nxt)
        closest = np.maximum(closest, v @ v[nxt])
    return cand[chosen].tolist()


def propose(p: np.ndarray, classes: list[str], free: np.ndarray, n: int, strategy: str,
            emb: np.ndarray | None = None) -> tuple[list[int], list[str]]:
    """`n` free window indices to label next, and why each: margin, positives per class, both alternating, or
    "diverse" (margin spread out over the embeddings `emb`, rows indexed like `p`)."""
    if strategy == "diverse" and emb is not None:
        picks = diverse(_margin_order(p, free), emb, min(n, len(free)))
        return picks, ["uncertain, spread"] * len(picks)
    picks: list[int] = []
    reasons: list[str] = []
    queues: list[tuple[str, list[int]]] = []
    if strategy in ("margin", "mix"):
        queues.append(("uncertain", _margin_order(p, free)[: n].tolist()))
    if strategy in ("positives", "mix"):
        for c, name in enumerate(classes):
            if name != NONE:
                queues.append((f"likely {name}", free[np.argsort(-p[free, c], kind="stable")][: n].tolist()))
    seen: set[int] = set()
    while len(picks) < min(n, len(free)) and any(q for _, q in queues):
        for why, q in queues:
            while q and q[0] in seen:
                q.pop(0)
            if q and len(picks) < n:
                seen.add(q[0])
                picks.append(q.pop(0))
                reasons.append(why)
    return picks, reasons


def next_round(emb: np.ndarray, labelled: dict[int, str], groups: np.ndarray, n: int = 10, strategy: str = "mix",
               exclude: set[int] | None = None, seed: int = 0, cv: bool = True) -> Round:
    """Fit the head on the labelled windows, propose `n` others; before every class has MIN_PER_CLASS labels
    (or with one class only) the proposals are spread evenly over the pool instead, and the message says so."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}")
    taken = set(labelled) | (exclude or set())
    free = np.setdiff1d(np.arange(len(emb)), np.fromiter(taken, dtype=np.int64, count=len(taken)))
    counts: dict[str, int] = {}
    for label in labelled.values():
        counts[label] = counts.get(label, 0) + 1
    ready = {c for c, k in counts.items() if k >= MIN_PER_CLASS}  # a class with 1 label waits, it blocks nothing
    idx = np.fromiter((i for i, c in labelled.items() if c in ready), dtype=np.int64)
    y = np.asarray([labelled[i] for i in idx.tolist()])
    if len(ready) < 2:
        spread = free[np.linspace(0, len(free) - 1, min(n, len(free))).astype(int)] if len(free) else free
        return Round(spread.tolist(), ["spread"] * len(spread), labels_used=len(labelled),
                     message=f"Label at least {MIN_PER_CLASS} windows of each of 2 classes (search by example "
                             "finds them fastest); until then these windows are spread over the pool.")
    x = np.asarray(emb[np.sort(idx)], dtype=np.float32)
    order = np.argsort(idx)
    head = fit_head(x, y[order], seed)
    p = predict_all(head, emb)
    classes = [str(c) for c in head.classes_]
    picks, reasons = propose(p, classes, free, n, strategy, emb)
    acc, k = cv_accuracy(x, y[order], groups[np.sort(idx)], seed) if cv else (None, 0)
    waiting = sorted(set(counts) - ready)
    return Round(picks, reasons, {i: dict(zip(classes, map(float, p[i]), strict=True)) for i in picks}, classes,
                 acc, k, len(y), f"Not in the head yet (fewer than {MIN_PER_CLASS} labels): {', '.join(waiting)}."
                 if waiting else "")
