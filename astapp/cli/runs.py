"""`runs`: every run folder in a folder side by side (scores, settings, time, size), and what changed between some."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from astapp.core.errors import UploadError
from astapp.core.events import fmt_score
from astapp.service import compare_runs, runs_in_folder, split_numbers

COLUMNS = ("id", "name", "state", "dataset", "model", "mode", "epochs", "lr", "acc", "f1", "map", "unknown", "split",
           "time", "MB")


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    r = sub.add_parser("runs", help="list the runs in a folder side by side (scores, settings, time, size)")
    r.add_argument("--runs-dir", default="runs", help="the folder your train --output run folders are in "
                   "(default: runs)")
    r.add_argument("--json", action="store_true", help="one JSON object per run (with all its settings)")
    r.add_argument("--sort", default="created", help="created, name, accuracy, f1_macro, map, train_seconds, "
                   "size_mb, state or mode (default: created, newest first)")
    r.add_argument("--compare", nargs="+", metavar="RUN_ID", help="only the settings that differ between these runs")
    return {"runs": runs}


def runs(ns: argparse.Namespace) -> int:
    rows = runs_in_folder(ns.runs_dir, ns.sort)
    if ns.compare:
        return _compare(ns, rows)
    splits = split_numbers(rows)
    if ns.json:
        for row in rows:
            print(json.dumps({**row.to_dict(), "split": splits[row.id]}, ensure_ascii=False, default=str), flush=True)
        return 0
    if not rows:
        print(f"No runs in {ns.runs_dir}.")
        return 0
    table = [COLUMNS] + [_cells(row, splits[row.id]) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    if len(set(splits.values())) > 1:
        print("Runs with different split numbers validated on different clips: compare scores within one split.")
    return 0


def _cells(row: Any, split: int) -> tuple[str, ...]:
    s = row.settings
    acc = fmt_score(row.accuracy) + (f"±{row.accuracy_std:.3f}" if row.accuracy_std is not None else "")
    f1 = fmt_score(row.f1_macro) + (f"±{row.f1_std:.3f}" if row.f1_std is not None else "")
    # the AUROC known vs other sounds where `calibrate --other` measured one, else the score's method
    unknown = fmt_score(row.unknown_auroc) if row.unknown_auroc is not None else \
        (row.unknown_method or "–").split(",")[0]
    return (row.id, row.name[:24], row.state, row.dataset[:20], row.model.rsplit("/", 1)[-1][:24], row.mode,
            f"{s['epochs']:g}" if isinstance(s.get("epochs"), (int, float)) else "–",
            f"{s['lr']:g}" if isinstance(s.get("lr"), (int, float)) else "–", acc, f1, fmt_score(row.map), unknown,
            str(split),
            f"{row.train_seconds:.0f}s" if row.train_seconds is not None else "–", f"{row.size_mb:.1f}")


def _compare(ns: argparse.Namespace, rows: list[Any]) -> int:
    known = {r.id for r in rows}
    unknown = [rid for rid in ns.compare if rid not in known]
    if unknown:
        raise UploadError(f"No run {unknown[0]!r} in {ns.runs_dir}; `python -m astapp runs --runs-dir "
                          f"{ns.runs_dir}` lists the run ids.")
    cmp = compare_runs([r for r in rows if r.id in ns.compare])
    if ns.json:
        print(json.dumps({"differing": cmp.differing, "comparable": cmp.comparable}, ensure_ascii=False,
                         default=str))
        return 0
    for setting, values in cmp.differing.items():
        print(f"{setting}: " + ", ".join(f"{rid}={v!r}" for rid, v in values.items()))
    note = cmp.note()
    if note:
        print(note)
    return 0
