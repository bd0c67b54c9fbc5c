"""Single- or multi-label: a manifest cell holding several labels (`dog,rain`, `dog;rain`, `dog|rain`, a
JSON list) or several 0/1 label columns makes the dataset multi-label (AudioSet/FSD50K style). What
looks odd (mixed rows, a label seen once, integer ids, an unknown separator) becomes a warning, never
an error, so nothing the user uploaded is lost.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from itertools import combinations

SEPARATORS = (",", ";", "|")
UNKNOWN_SEPARATORS = ("/", "&", "+")
TRUE = {"1", "1.0", "true", "yes", "y", "x"}
FALSE = {"0", "0.0", "false", "no", "n", ""}
MULTI_PREFIX = "multi-hot:"


def _json_list(cell: str) -> list[str] | None:
    if not (cell.startswith("[") and cell.endswith("]")):
        return None
    try:
        value = json.loads(cell)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        return None
    return [str(v).strip() for v in value if str(v).strip()]


def pick_separator(cells: list[str]) -> str | None:
    """The separator most cells use (none when no cell holds one), JSON lists aside."""
    counts = Counter(sep for c in cells if _json_list(c) is None for sep in SEPARATORS if sep in c)
    return counts.most_common(1)[0][0] if counts else None


def split_cell(cell: str, sep: str | None) -> list[str]:
    """The labels of one cell: a JSON list, else split on `sep`; stripped, unique, in order."""
    parts = _json_list(cell.strip())
    if parts is None:
        parts = [p.strip() for p in cell.split(sep)] if sep else [cell.strip()]
    return list(dict.fromkeys(p for p in parts if p))


def multi_hot_columns(rows: list[dict[str, str]], columns: list[str]) -> list[str]:
    """Columns holding only 0/1 (true/false, yes/no) values, when there are at least two: one per label."""
    hot = []
    for c in columns:
        values = {r.get(c, "").strip().lower() for r in rows}
        if values <= TRUE | FALSE and values & TRUE:
            hot.append(c)
    return hot if len(hot) >= 2 else []


def hot_cell(row: dict[str, str], hot: list[str]) -> str:
    """A multi-hot row as the JSON list cell the rest of ingestion reads."""
    return json.dumps([c for c in hot if row.get(c, "").strip().lower() in TRUE], ensure_ascii=False)


def apply(items: list, warnings: list[str], forced: bool = False) -> str:
    """Give each item its `labels` and return the mode ("single" or "multi"); warnings appended.

    `forced` (the user's `--multi-label`) makes a dataset of single labels multi-label anyway.
    """
    cells = [it.label for it in items]
    sep = pick_separator(cells)
    has_json = any(_json_list(c.strip()) is not None for c in cells)
    if sep is None and not has_json and not forced:
        return "single"
    per_item = [split_cell(c, sep) for c in cells]
    for it, labels in zip(items, per_item, strict=True):
        it.labels = tuple(labels)
        it.label = "|".join(sorted(labels))  # a stable name for the combination (stratified splits)
    sizes = Counter(min(len(p), 2) for p in per_item)
    if sizes[1] and sizes[2]:
        warnings.append(f"{sizes[1]} clip(s) have one label and {sizes[2]} several; the dataset is treated as "
                        "multi-label (each clip may have any number of labels).")
    if sizes[0]:
        warnings.append(f"{sizes[0]} clip(s) have no labels (an empty list); they are kept as examples of none of "
                        "the labels.")
    counts = Counter(lab for p in per_item for lab in p)
    once = sorted(lab for lab, n in counts.items() if n == 1)
    if once:
        warnings.append(f"{len(once)} label(s) appear on only one clip ({', '.join(map(repr, once[:5]))}"
                        f"{' ...' if len(once) > 5 else ''}); they cannot be both trained and validated: add clips.")
    if counts and all(re.fullmatch(r"-?\d+", lab) for lab in counts):
        warnings.append("The labels are integers without names; they are used as the label names. Use names "
                        "(e.g. 'dog,rain') to see them in the results.")
    for lab in counts:
        for odd in UNKNOWN_SEPARATORS:
            parts = [p.strip() for p in lab.split(odd)]
            if len(parts) > 1 and all(p in counts for p in parts):
                warnings.append(f"The label {lab!r} looks like several labels joined by {odd!r}; separate labels "
                                "with ',', ';' or '|' (it was kept as one label).")
    return "multi"


def summary(items: list) -> dict:
    """Label counts, the most frequent pairs, and clips without labels, for the report."""
    counts = Counter(lab for it in items for lab in it.labels)
    pairs = Counter(p for it in items for p in combinations(sorted(it.labels), 2))
    return {"labels": dict(sorted(counts.items())),
            "co_occurrence": [[a, b, n] for (a, b), n in pairs.most_common(10)],
            "without_labels": sum(1 for it in items if not it.labels),
            "mean_labels": round(sum(len(it.labels) for it in items) / max(len(items), 1), 3)}


def multi_hot(rows: list[list[int]], num_labels: int):
    """Label ids per row -> a (rows, labels) float32 0/1 matrix."""
    import numpy as np

    hot = np.zeros((len(rows), num_labels), dtype=np.float32)
    for r, ids in enumerate(rows):
        hot[r, list(ids)] = 1.0
    return hot


def check_split(errors: list[str], warnings: list[str], train: list[tuple[str, ...]], val: list[tuple[str, ...]],
                how: str) -> None:
    """Multi-label split checks: every label needs training clips; labels missing from validation warn."""
    if not val or not train:
        errors.append("The validation split is empty; add more clips or choose a larger validation split." if not val
                      else "The training split is empty; the folds put every clip in validation.")
        return
    every = {lab for s in train + val for lab in s}
    missing = sorted(every - {lab for s in train for lab in s})
    if missing:
        errors.append(f"No training clips carry the label(s) {', '.join(map(repr, missing))} (split: {how}); add "
                      "clips with them or change the folds.")
    unseen = sorted(every - {lab for s in val for lab in s})
    if unseen:
        warnings.append(f"The validation split ({how}) has no clips with {', '.join(map(repr, unseen))}; their "
                        "precision cannot be measured.")
