"""The labels given to a pool's windows: a log of acts with their time, replayed; undo; the latest wins.

Why a log and not a table: undo needs the order of acts, and a window labelled twice must show what changed.
The log is rewritten atomically on each act (a few thousand lines at most), so a crash loses no earlier label.
Keys are `Window.key` (file and start), so labels survive a rebuild of the pool with the same windows.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astapp.core.fsutil import atomic_write_text
from astapp.pool.windows import PoolError

LABELS_FILE = "labels.jsonl"
NONE = "(none of these)"  # a window that is none of the classes: a negative for every class, no class folder
SKIP = "(skipped)"  # not labelled, but not proposed again
MAX_LABEL = 64


@dataclass(frozen=True)
class Change:
    key: str
    old: str | None
    new: str


def check_label(label: str) -> str:
    label = str(label).strip()
    if label in (NONE, SKIP):
        return label
    bad = not label or len(label) > MAX_LABEL or any(c in label for c in '/\\:*?"<>|') or label.startswith(".")
    if bad:
        raise PoolError(f"{label!r} cannot be a class name: use 1-{MAX_LABEL} characters without / \\ : * ? \" < > | "
                        "and not starting with a dot, e.g. 'dog' or 'car horn'.")
    return label


class LabelStore:
    """The labels of one pool folder (`labels.jsonl`)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LABELS_FILE
        self._lock = threading.Lock()

    def log(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(x) for x in lines if x.strip()]

    def _write(self, log: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in log))

    def current(self) -> dict[str, str]:
        """Window key -> its latest label (skips included as SKIP)."""
        out: dict[str, str] = {}
        for e in self.log():
            out[e["key"]] = e["label"]
        return out

    def labelled(self) -> dict[str, str]:
        """Window key -> label, without skipped windows."""
        return {k: v for k, v in self.current().items() if v != SKIP}

    def add(self, keys: list[str], label: str, round_no: int | None = None) -> list[Change]:
        """Give `label` to every window in `keys` (one act: one undo takes it back); returns what changed from
        an earlier, different label, so the caller can show it."""
        label = check_label(label)
        if not keys:
            return []
        with self._lock:
            log = self.log()
            before = {e["key"]: e["label"] for e in log}
            act = max((e.get("act", 0) for e in log), default=0) + 1
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log += [{"key": k, "label": label, "time": now, "act": act, **({"round": round_no} if round_no else {})}
                    for k in dict.fromkeys(keys)]
            self._write(log)
        return [Change(k, before[k], label) for k in dict.fromkeys(keys)
                if before.get(k) not in (None, label, SKIP) and label != SKIP]

    def undo(self) -> int:
        """Take back the last act (all the windows it labelled); returns how many labels were removed."""
        with self._lock:
            log = self.log()
            if not log:
                return 0
            last = log[-1].get("act")
            keep = [e for e in log if e.get("act") != last]
            self._write(keep)
        return len(log) - len(keep)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for label in self.labelled().values():
            out[label] = out.get(label, 0) + 1
        return dict(sorted(out.items()))
