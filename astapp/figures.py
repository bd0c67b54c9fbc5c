"""Small matplotlib figures: duration histogram, confusion matrix, window timeline (the app's tabs and
the model card share them).

The object API only (no pyplot state), so handlers running in parallel threads never draw into each
other's figures, and nothing piles up in pyplot's figure list in a long-running server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ACCENT = "#f97316"
INK = "#334155"


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    return fig


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=INK, labelsize=9)
    ax.title.set_color(INK)


def duration_histogram(durations: Sequence[float]) -> Any:
    """Histogram of clip durations in seconds (why: spot outliers that get cropped or padded)."""
    fig = _figure(6, 2.8)
    ax = fig.add_subplot()
    if durations:
        bins = min(30, max(5, len(durations) // 3))
        ax.hist(list(durations), bins=bins, color=ACCENT, edgecolor="white")
    else:
        ax.text(0.5, 0.5, "no clips", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("clip duration (s)")
    ax.set_ylabel("clips")
    ax.set_title("Clip durations", fontsize=11)
    _style(ax)
    return fig


def confusion_matrix(matrix: Sequence[Sequence[float]], labels: Sequence[str]) -> Any:
    """Confusion matrix heat map: rows are true classes, columns predictions."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    n = max(len(labels), 1)
    size = min(9.0, 2.5 + 0.55 * n)
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot()
    ax.imshow(m, cmap="Oranges")
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (validation)", fontsize=11)
    top = m.max() if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1] if m.ndim == 2 else 0):
            val = m[i, j]
            ax.text(j, i, f"{val:g}", ha="center", va="center", fontsize=9,
                    color="white" if top and val > top / 2 else INK)
    _style(ax)
    return fig


def window_timeline(windows: Sequence[dict[str, Any]], labels: Sequence[str]) -> Any:
    """Per-window top-1 class over time for a long clip (a coloured bar per window)."""
    fig = _figure(7, 1.2 + 0.3 * max(1, len(labels)))
    ax = fig.add_subplot()
    classes = sorted({w["top"][0][0] for w in windows if w.get("top")} | set(labels))
    row = {c: i for i, c in enumerate(classes)}
    cmap = __import__("matplotlib").colormaps["tab10"]
    for w in windows:
        if not w.get("top"):
            continue
        label, prob = w["top"][0][0], float(w["top"][0][1])
        ax.barh(row[label], float(w["end"]) - float(w["start"]), left=float(w["start"]), height=0.6,
                color=cmap(row[label] % 10), alpha=0.35 + 0.65 * prob, edgecolor="white")
    ax.set_yticks(range(len(classes)), labels=classes)
    ax.set_xlabel("time (s)")
    ax.set_title("Top class per window (darker = more confident)", fontsize=11)
    _style(ax)
    return fig


def pr_curves(curves: dict[str, dict[str, Sequence[float]]]) -> Any:
    """Multi-label: one precision/recall curve per label on validation (why: see where a threshold trades
    missed labels for wrong ones)."""
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    for label, curve in curves.items():
        if curve.get("recall"):
            ax.plot(list(curve["recall"]), list(curve["precision"]), label=str(label), linewidth=1.6)
    if ax.lines:
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no positives to draw", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision / recall per label (validation)", fontsize=11)
    _style(ax)
    return fig
