"""The unknown score: how unlike the training data a clip is (higher = less like it), and its threshold.

A classifier always answers one of its classes, even for a door slam it never heard. Four candidate scores
come from what every trained model already has, its logits and the pooled embedding its head sees:

- `msp`: 1 - the highest softmax probability (the classic baseline);
- `energy`: -logsumexp(logits) (free energy; uses the logits' scale, which softmax discards);
- `mahalanobis`: the smallest Mahalanobis distance to a class centroid under one shared, shrunk covariance
  fitted on training embeddings;
- `knn`: 1 - the cosine similarity to the k-th nearest of a small bank of training embeddings.

`fit` returns an `UnknownStats` (the method, the few arrays it needs and the threshold); `calibrate` puts the
threshold at the share `keep` of known (validation) clips kept. `save`/`load` keep it beside an exported
model's config.json in two files, so a plain `transformers.pipeline` still loads the folder unchanged:

- `unknown.json`: {"format": 1, "method", "threshold" (null when there were no validation clips), "keep",
  "reason" (why there is no threshold), "k", "known_scores": summary of the validation scores, "arrays",
  "calibration": {"source" ("validation" or "validation+other"), "known": the validation clips' scores,
  "other": scores of the user's "other" sounds, "auroc" and "other_rejected" (null without them)}};
- `unknown_stats.npz`: `centroids` (classes x hidden), `precision` (hidden x hidden, the inverse shared
  covariance) and `bank` (at most BANK_SIZE unit-length training embeddings), those the method needs.

numpy only (no torch): the predictor and the ONNX route read it where torch is absent.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astapp.core.errors import ModelLoadError
from astapp.core.fsutil import atomic_write_bytes, atomic_write_text

METHODS = ("msp", "energy", "mahalanobis", "knn")
EMBEDDING_METHODS = ("mahalanobis", "knn")
DEFAULT_METHOD = "mahalanobis"  # best mean AUROC in bench/bench_unknown.py (see its docstring)
DEFAULT_KEEP = 0.95
BANK_SIZE = 1024  # training embeddings kept for knn (a few MB at hidden 768)
KNN_K = 5
SHRINK = 0.1  # covariance shrinkage towards its mean variance: embeddings often outnumber the clips
STATS_JSON = "unknown.json"
STATS_NPZ = "unknown_stats.npz"
FORMAT = 1


@dataclass
class UnknownStats:
    """What scoring needs: the method, its arrays, and the calibrated threshold (None: not calibrated)."""

    method: str = DEFAULT_METHOD
    threshold: float | None = None
    keep: float = DEFAULT_KEEP
    reason: str = ""  # why there is no threshold
    k: int = KNN_K
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    known: dict[str, float] = field(default_factory=dict)  # summary of the calibration scores
    calibration: dict[str, Any] = field(default_factory=dict)  # the scores it was calibrated on (histogram)
    cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # derived once when scoring

    @property
    def needs_embeddings(self) -> bool:
        return self.method in EMBEDDING_METHODS

    def summary(self) -> dict[str, Any]:
        """The JSON-able facts (no arrays): unknown.json's content and the run's metrics entry."""
        return {"format": FORMAT, "method": self.method, "threshold": self.threshold, "keep": self.keep,
                "reason": self.reason, "k": self.k, "known_scores": self.known, "arrays": sorted(self.arrays),
                "calibration": self.calibration}


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]


def msp_score(logits: np.ndarray) -> np.ndarray:
    """1 - max softmax probability per row."""
    x = np.asarray(logits, dtype=np.float64)
    return 1.0 - np.exp(x.max(axis=1) - _logsumexp(x))


def energy_score(logits: np.ndarray) -> np.ndarray:
    """-logsumexp of the logits per row (low energy = confident = known)."""
    return -_logsumexp(logits)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit(embeddings: np.ndarray, labels: np.ndarray, method: str = DEFAULT_METHOD, bank_size: int = BANK_SIZE,
        k: int = KNN_K, seed: int = 0) -> UnknownStats:
    """The statistics of `method` from training `embeddings` (rows x hidden) and their class `labels`."""
    if method not in METHODS:
        raise ValueError(f"unknown score method {method!r}; use one of {', '.join(METHODS)}")
    emb = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    arrays: dict[str, np.ndarray] = {}
    if method == "mahalanobis" and len(emb):
        classes = np.unique(labels)
        centroids = np.stack([emb[labels == c].mean(axis=0) for c in classes])
        centred = emb - centroids[np.searchsorted(classes, labels)]
        cov = centred.T @ centred / max(1, len(emb) - len(classes))
        target = np.trace(cov) / cov.shape[0] if cov.shape[0] else 1.0
        cov = (1 - SHRINK) * cov + SHRINK * max(target, 1e-6) * np.eye(cov.shape[0])
        arrays = {"centroids": centroids.astype(np.float32), "precision": np.linalg.pinv(cov).astype(np.float32)}
    elif method == "knn" and len(emb):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.permutation(len(emb))[:bank_size])
        arrays = {"bank": _unit(emb[keep]).astype(np.float32)}
    return UnknownStats(method=method, k=k, arrays=arrays)


def score(stats: UnknownStats, logits: np.ndarray | None = None,
          embeddings: np.ndarray | None = None) -> np.ndarray:
    """The unknown score of each row (higher = less like the training data)."""
    if stats.method == "msp":
        return msp_score(_need(logits, "logits"))
    if stats.method == "energy":
        return energy_score(_need(logits, "logits"))
    emb = np.asarray(_need(embeddings, "embeddings"), dtype=np.float64)
    if stats.method == "mahalanobis":
        w, centres = _whitening(stats)
        d = (emb @ w)[:, None, :] - centres[None, :, :]
        return np.sqrt((d * d).sum(axis=2).min(axis=1))
    bank = stats.arrays["bank"].astype(np.float64)
    sims = _unit(emb) @ bank.T
    kth = min(stats.k, bank.shape[0]) - 1
    return 1.0 - -np.partition(-sims, kth, axis=1)[:, kth]


def _whitening(stats: UnknownStats) -> tuple[np.ndarray, np.ndarray]:
    """(W with W Wᵀ = precision, the centroids times W), computed once per statistics: a distance is then
    one (hidden x hidden) product per clip, not one per clip and class (18 -> well under 1 ms at hidden 768)."""
    if not stats.cache:
        prec = stats.arrays["precision"].astype(np.float64)
        vals, vecs = np.linalg.eigh((prec + prec.T) / 2)
        w = vecs * np.sqrt(np.clip(vals, 0.0, None))
        stats.cache = {"w": w, "centres": stats.arrays["centroids"].astype(np.float64) @ w}
    return stats.cache["w"], stats.cache["centres"]


def _need(x: np.ndarray | None, what: str) -> np.ndarray:
    if x is None:
        raise ValueError(f"this unknown score needs the model's {what}")
    return np.asarray(x)


RECOMPUTE_TOLERANCE = 1e-6  # relative: what scoring the same clip again can change (float32 model, other batch)


def calibrate(scores_known: np.ndarray, keep: float = DEFAULT_KEEP) -> float | None:
    """The threshold that keeps the share `keep` of known clips (score <= threshold); None without clips.

    It sits a hair (1e-6, relative) above the last kept clip's score: that clip scored again, alone or in
    another batch, differs in its last bits, and must not flip to "unknown" on the threshold it defined."""
    s = np.asarray(scores_known, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    t = float(np.quantile(s, min(max(float(keep), 0.0), 1.0), method="higher"))
    return t + RECOMPUTE_TOLERANCE * max(1.0, abs(t))


def best_threshold(known: np.ndarray, other: np.ndarray) -> float:
    """The threshold that best separates known clips (kept: score <= t) from other sounds (rejected): the
    highest balanced accuracy (mean of the two shares; of equals, the one keeping the most known clips),
    placed halfway between neighbouring scores so a clip a hair away from a calibration clip lands on the
    same side."""
    k, o = np.sort(np.asarray(known, dtype=np.float64)), np.asarray(other, dtype=np.float64)
    cands = np.unique(np.r_[k, o])
    cuts = np.r_[cands[:-1] + np.diff(cands) / 2, cands[-1]] if cands.size else np.zeros(1)
    kept = np.searchsorted(k, cuts, side="right") / max(k.size, 1)
    rejected = (o[None, :] > cuts[:, None]).mean(axis=1) if o.size else np.zeros(cuts.size)
    balance = kept + rejected
    return float(cuts[np.flatnonzero(balance >= balance.max() - 1e-12)[-1]])  # ties: the one keeping most


def balanced(known: np.ndarray, other: np.ndarray, threshold: float) -> float:
    """Mean of the known share kept and the other share rejected at `threshold` (0.5: no better than chance)."""
    k, o = np.asarray(known, dtype=np.float64), np.asarray(other, dtype=np.float64)
    return float(((k <= threshold).mean() + (o > threshold).mean()) / 2)


def shares(stats: UnknownStats, threshold: float | None = None) -> tuple[float | None, float | None]:
    """(share of the calibration's known clips kept, share of its other sounds rejected) at `threshold`
    (default: the saved one); None where there are no such clips or no threshold."""
    t = stats.threshold if threshold is None else float(threshold)
    known = np.asarray(stats.calibration.get("known") or [], dtype=np.float64)
    other = np.asarray(stats.calibration.get("other") or [], dtype=np.float64)
    if t is None:
        return None, None
    return (float((known <= t).mean()) if known.size else None, float((other > t).mean()) if other.size else None)


def set_threshold(stats: UnknownStats, scores_known: np.ndarray, keep: float = DEFAULT_KEEP,
                  scores_other: np.ndarray | None = None, threshold: float | None = None) -> UnknownStats:
    """Calibrate `stats` in place on known scores (and the scores of sounds that should be rejected),
    recording why when there is nothing to calibrate on: at `threshold` when given, else the `keep` share."""
    s = np.asarray(scores_known, dtype=np.float64)
    o = np.asarray([] if scores_other is None else scores_other, dtype=np.float64)
    stats.threshold = calibrate(s, keep) if threshold is None or s.size == 0 else float(threshold)
    stats.keep = float(keep) if threshold is None or s.size == 0 else float((s <= threshold).mean())
    stats.reason = "" if stats.threshold is not None else \
        "No validation clips to calibrate on (every clip trained the model), so no threshold was set."
    stats.known = {"count": int(s.size), **({"mean": float(s.mean()), "min": float(s.min()),
                                             "max": float(s.max())} if s.size else {})}
    both = bool(s.size and o.size)
    stats.calibration = {"source": "validation+other" if o.size else "validation",
                         "known": [round(float(x), 6) for x in s], "other": [round(float(x), 6) for x in o],
                         "auroc": auroc(s, o) if both else None, "other_rejected": None}
    stats.calibration["other_rejected"] = shares(stats)[1]
    return stats


def save_threshold(folder: str | Path, threshold: float) -> UnknownStats:
    """Set the threshold of the statistics saved in `folder` (an edit in the Evaluate tab); `keep` becomes
    the share of calibration clips it keeps, so what the model card and the tab say stays true."""
    stats = load(folder)
    if stats is None:
        raise ModelLoadError(f"The model in {folder} has no unknown score to set a threshold for; calibrate it "
                             "first (`python3 -m astapp calibrate --run RUN`).")
    t = float(threshold)
    if not np.isfinite(t):
        raise ModelLoadError(f"The unknown threshold must be a finite number, not {threshold!r}.")
    stats.threshold, stats.reason = t, ""
    kept, rejected = shares(stats, t)
    stats.keep = stats.keep if kept is None else kept
    if stats.calibration:
        stats.calibration["other_rejected"] = rejected
    save(stats, folder)
    return stats


def auroc(known: np.ndarray, other: np.ndarray) -> float:
    """Probability that an `other` clip scores above a known one (ties count half)."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(known)), np.ones(len(other))]
    return float(roc_auc_score(y, np.r_[known, other]))


def save(stats: UnknownStats, folder: str | Path) -> Path:
    """Write unknown.json (+ unknown_stats.npz when the method has arrays) into an exported model folder."""
    folder = Path(folder)
    meta = stats.summary()
    if stats.arrays:
        buf = io.BytesIO()
        np.savez(buf, **stats.arrays)
        atomic_write_bytes(folder / STATS_NPZ, buf.getvalue())
    atomic_write_text(folder / STATS_JSON, json.dumps(meta, indent=2))
    return folder / STATS_JSON


def load(folder: str | Path) -> UnknownStats | None:
    """The saved statistics of the model in `folder`; None for a model exported before unknown scores."""
    folder = Path(folder)
    path = folder / STATS_JSON
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        arrays: dict[str, np.ndarray] = {}
        if meta.get("arrays"):
            with np.load(folder / STATS_NPZ) as z:
                arrays = {name: z[name] for name in meta["arrays"]}
        threshold = meta.get("threshold")
        return UnknownStats(method=str(meta["method"]), threshold=None if threshold is None else float(threshold),
                            keep=float(meta.get("keep", DEFAULT_KEEP)), reason=str(meta.get("reason") or ""),
                            k=int(meta.get("k", KNN_K)), arrays=arrays, known=dict(meta.get("known_scores") or {}),
                            calibration=dict(meta.get("calibration") or {}))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"The unknown-score statistics in {folder} are unreadable ({e}); delete "
                             f"{STATS_JSON} and {STATS_NPZ} to predict without them, or train again.") from e
