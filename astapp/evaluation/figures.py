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


MAP_PAD = 0.04  # the map's axes span [-pad, 1 + pad] on both axes and fill the whole image
PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563",
           "#65a30d")


def embedding_map(xy: Sequence[Sequence[float]], labels: Sequence[str], marks: Sequence[str],
                  selected: int | None = None, size: int = 640) -> Any:
    """The clips' 2-D map as an RGB array (size x size): one colour per label, mistakes ringed black,
    label suspects as crosses, the selected clip circled. The axes fill the image, so a click at pixel
    (px, py) is the map point (`map_point`)."""
    import numpy as np

    fig = map_figure(xy, labels, marks, selected, size)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def map_figure(xy: Sequence[Sequence[float]], labels: Sequence[str], marks: Sequence[str],
               selected: int | None = None, size: int = 640) -> Any:
    """The figure `embedding_map` renders (its legend where it covers the fewest dots)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-MAP_PAD, 1 + MAP_PAD)
    ax.set_ylim(-MAP_PAD, 1 + MAP_PAD)
    ax.set_axis_off()
    pts = np.asarray(xy, dtype=float).reshape(-1, 2)
    names = sorted(set(labels))
    colour = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    for n in names:
        idx = [i for i, lab in enumerate(labels) if lab == n]
        ax.scatter(pts[idx, 0], pts[idx, 1], s=22, c=colour[n], label=n, alpha=0.8, linewidths=0)
    wrong = [i for i, m in enumerate(marks) if m == "mistake"]
    suspect = [i for i, m in enumerate(marks) if m == "suspect"]
    if wrong:
        ax.scatter(pts[wrong, 0], pts[wrong, 1], s=60, facecolors="none", edgecolors="black", linewidths=1)
    if suspect:
        ax.scatter(pts[suspect, 0], pts[suspect, 1], s=70, c="black", marker="x", linewidths=1.5)
    if selected is not None and 0 <= selected < len(pts):
        ax.scatter([pts[selected, 0]], [pts[selected, 1]], s=260, facecolors="none", edgecolors=ACCENT, linewidths=3)
    if len(names) <= 12:  # where it covers the fewest dots (a fixed corner hid clips one could click)
        ax.legend(loc="best", fontsize=8, framealpha=0.6, markerscale=1.2)
    return fig


def map_point(px: float, py: float, width: int, height: int) -> tuple[float, float]:
    """The map coordinates of pixel (px, py) of an `embedding_map` image of that size."""
    span = 1 + 2 * MAP_PAD
    return -MAP_PAD + span * px / max(width, 1), 1 + MAP_PAD - span * py / max(height, 1)


def fold_scores(folds: Sequence[dict[str, Any]]) -> Any:
    """Accuracy and macro F1 per fold as grouped bars, with the mean as a dashed line."""
    import numpy as np

    fig = _figure(5.0, 2.6)
    ax = fig.add_subplot()
    x = np.arange(len(folds))
    acc = [float(f["accuracy"]) for f in folds]
    f1 = [float(f["f1_macro"]) for f in folds]
    ax.bar(x - 0.2, acc, 0.4, label="accuracy", color=ACCENT)
    ax.bar(x + 0.2, f1, 0.4, label="macro F1", color="#64748b")
    if acc:
        ax.axhline(float(np.mean(acc)), color=ACCENT, linestyle="--", linewidth=1)
    ax.set_xticks(x, [str(f["fold"]) for f in folds])
    ax.set_xlabel("fold", color=INK)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower right")
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


def unknown_histogram(known: Sequence[float], other: Sequence[float], threshold: float | None) -> Any:
    """The unknown score of the validation clips (known) and of the user's "other" sounds, with the threshold:
    everything right of the line is called "unknown" (why: see what a threshold keeps and rejects)."""
    import numpy as np

    fig = _figure(6.5, 2.8)
    ax = fig.add_subplot()
    values = np.asarray([*known, *other], dtype=float)
    if values.size:
        edges = np.histogram_bin_edges(values, bins=min(30, max(8, values.size // 3)))
        ax.hist(list(known), bins=edges, color="#3b82f6", alpha=0.7, label=f"known (validation, {len(known)})")
        if len(other):
            ax.hist(list(other), bins=edges, color=ACCENT, alpha=0.7, label=f"other sounds ({len(other)})")
    else:
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
    if threshold is not None:
        ax.axvline(threshold, color=INK, linestyle="--", linewidth=1.5, label=f"threshold {threshold:.3g}")
    ax.set_xlabel("unknown score (higher = less like the training classes)")
    ax.set_ylabel("clips")
    ax.set_title("Known vs unknown", fontsize=11)
    if values.size or threshold is not None:
        ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return fig


def event_strip(wav: Any, offset: float, events: Sequence[dict[str, Any]], selected: int | None = None,
                sr: int = 16_000) -> Any:
    """A recording's spectrogram from `offset` s with a box per event over it (label on top; the selected one
    thick, rejected ones dashed grey), for reviewing detections by eye before by ear."""
    import numpy as np

    x = np.asarray(wav, dtype=np.float32).reshape(-1)
    seconds = max(len(x) / sr, 1e-3)
    fig = _figure(9, 2.6)
    ax = fig.add_subplot()
    if len(x) >= 512:
        ax.specgram(x, NFFT=512, Fs=sr, noverlap=256, xextent=(offset, offset + seconds), cmap="magma",
                    scale="dB", vmin=-120)
    ax.set_xlim(offset, offset + seconds)
    ax.set_ylim(0, sr / 2)
    cmap = __import__("matplotlib").colormaps["tab10"]
    labels = sorted({str(e.get("label")) for e in events})
    for e in events:
        a, b = max(offset, float(e["start"])), min(offset + seconds, float(e["end"]))
        if b <= a:
            continue
        rejected = e.get("decision") == "rejected"
        color = "#9ca3af" if rejected else cmap(labels.index(str(e.get("label"))) % 10)
        thick = e.get("index") == selected
        ax.add_patch(__import__("matplotlib").patches.Rectangle(
            (a, sr * 0.02), b - a, sr * 0.46, fill=False, edgecolor=color, linewidth=3 if thick else 1.5,
            linestyle="--" if rejected else "-"))
        ax.text(a, sr * 0.49, f"{e.get('index', '')} {e.get('label')}", color=color, fontsize=8, va="top",
                fontweight="bold" if thick else "normal")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Hz")
    _style(ax)
    return fig


def series_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
                title: str, marker: str = "") -> Any:
    """Several lines on one axis: runs' validation curves overlaid (x: epoch), or a search's score per trial
    (x: trial); why: which run or trial learned faster or better reads off one picture."""
    fig = _figure(6, 3.2)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        if len(xs):
            ax.plot(list(xs), list(ys), label=str(name), linewidth=1.6, marker=marker or None, markersize=4)
    if ax.lines:
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "nothing evaluated yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    _style(ax)
    return fig
