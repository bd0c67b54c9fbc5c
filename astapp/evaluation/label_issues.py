"""Label issues: cleanlab's confident learning on out-of-fold probabilities, plus near-duplicate clips
that carry different labels (by embedding cosine similarity)."""

from __future__ import annotations

from typing import Any

import numpy as np

DUPLICATE_COSINE = 0.995  # two clips this similar are the same sound; different labels are suspect


def find_issues(probs: np.ndarray, labels: np.ndarray, names: list[str], embeddings: np.ndarray | None,
                paths: list[str], max_duplicates: int = 200) -> list[dict[str, Any]]:
    """Ranked most suspect first: [{"path", "given", "suggested", "score", "kind"}]. Suspects are the clips
    cleanlab's confident learning flags (kind "label"), those whose out-of-fold prediction disagrees with
    their label, and near-duplicates labelled differently; score in [0, 1] is 1 - the out-of-fold
    probability of the given label (cleanlab's self-confidence), half the similarity for duplicates."""
    from cleanlab.filter import find_label_issues

    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / np.clip(probs.sum(1, keepdims=True), 1e-12, None)
    labels = np.asarray(labels, dtype=np.int64)
    out: list[dict[str, Any]] = []
    present = np.unique(labels)
    if len(present) >= 2 and len(labels) > len(present):
        # cleanlab needs every class present in `labels`; restrict the columns to those classes
        cols = present
        sub = probs[:, cols]
        sub = sub / np.clip(sub.sum(1, keepdims=True), 1e-12, None)
        remap = {int(c): i for i, c in enumerate(cols)}
        ranked = find_label_issues(np.asarray([remap[int(v)] for v in labels]), sub,
                                   return_indices_ranked_by="self_confidence")
        for i in ranked:
            i = int(i)
            out.append({"path": paths[i], "given": names[labels[i]], "suggested": names[int(probs[i].argmax())],
                        "score": round(float(1.0 - probs[i, labels[i]]), 6), "kind": "label"})
    seen = {d["path"] for d in out}
    for i in np.flatnonzero(probs.argmax(1) != labels):  # the out-of-fold prediction disagrees: suspect too
        if paths[int(i)] not in seen:
            i = int(i)
            out.append({"path": paths[i], "given": names[labels[i]], "suggested": names[int(probs[i].argmax())],
                        "score": round(float(1.0 - probs[i, labels[i]]), 6), "kind": "prediction disagrees"})
            seen.add(paths[i])
    for d in near_duplicates(embeddings, labels, names, paths, max_duplicates):
        if d["path"] not in seen:
            out.append(d)
            seen.add(d["path"])
    out.sort(key=lambda d: -d["score"])
    return out


def near_duplicates(embeddings: np.ndarray | None, labels: np.ndarray, names: list[str], paths: list[str],
                    limit: int) -> list[dict[str, Any]]:
    """Pairs of clips with cosine similarity ≥ DUPLICATE_COSINE and different labels (one entry per pair,
    on the second clip, suggesting the first one's label), computed in blocks (memory stays flat)."""
    if embeddings is None or len(embeddings) < 2:
        return []
    e = np.asarray(embeddings, dtype=np.float32)
    e = e - e.mean(0, keepdims=True)  # similarity of what differs between clips, not the shared offset
    e /= np.clip(np.linalg.norm(e, axis=1, keepdims=True), 1e-12, None)
    out = []
    for start in range(0, len(e), 512):
        sims = e[start:start + 512] @ e.T
        for r, j in zip(*np.nonzero(sims >= DUPLICATE_COSINE), strict=True):
            i = start + int(r)
            if int(j) < i and labels[i] != labels[j]:
                out.append({"path": paths[i], "given": names[labels[i]], "suggested": names[labels[j]],
                            "score": round(float(sims[r, j]) * 0.5, 6), "kind": f"near-duplicate of {paths[j]}"})
                if len(out) >= limit:
                    return out
    return out
