"""`versions`: a dataset's versions (v1, v2 ...) and what each added, as the Data tab lists them.

A version folder is an ordinary dataset (`train --data .../versions/v2` works), so on a headless host the
question is which folder is which and what changed between them: this prints that without the app.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from astapp.service import dataset_versions


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    v = sub.add_parser("versions", help="list a dataset's versions and what each one added")
    v.add_argument(
        "--data",
        required=True,
        help="a version's folder (.../versions/v2), the versions folder or the app workspace that holds it",
    )
    v.add_argument("--json", action="store_true", help="one JSON object per version (oldest first)")
    return {"versions": versions}


def versions(ns: argparse.Namespace) -> int:
    found = dataset_versions(ns.data)
    rows = found["versions"]
    if ns.json:
        for row in rows:
            print(json.dumps({**row, "this": row["name"] == found["this"]}, ensure_ascii=False), flush=True)
        return 0
    if not rows:
        print(f"No dataset versions in {found['store']} yet.")
        return 0
    for row in rows:
        print(_line(row, row["name"] == found["this"]))
    return 0


def _line(row: dict[str, Any], this: bool) -> str:
    """'* v2  2026-12-05 09:30  v2 = v1 + 3 false alarms → background 3 (from night.wav): 9 clips  /path'."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created"])) if row.get("created") else "–"
    gone = "" if row["exists"] else "  (folder gone)"
    return f"{'*' if this else ' '} {row['name']:<4} {when}  {row['summary']}  {row['root']}{gone}"
