"""Run registry: what each run folder says about itself (state, metrics, model, checkpoints).

A run folder (`<root>/runs/<owner>/<run_id>/`) holds `config.json`, `status.json`
({state, error, pid, updated}), `meta.json` ({id, name, owner, created}), `history.jsonl`,
`metrics.json`, `model/` (complete export only), `checkpoints/checkpoint-N/` and `log.txt`.
Everything here is read from disk, so it is right after a restart too::

    from astapp.runs import list_runs, get_run
    for r in list_runs(root, session.owner):      # newest first; shared runs too if ASTAPP_SHARE_RUNS=1
        print(r.id, r.state, r.accuracy, r.has_model)
    run = get_run(root, session.owner, run_id)    # AccessError if unknown, not visible, or "../x"

`recover` turns runs left queued/running by a dead process into `interrupted` (resumable from the
last checkpoint).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from astapp.config import env_flag
from astapp.errors import AccessError
from astapp.fsutil import atomic_write_text, restore_dir
from astapp.paths import check_id, inside, runs_dir

log = logging.getLogger(__name__)

STATES = ("queued", "running", "finished", "stopped", "failed", "interrupted")
ACTIVE = ("queued", "running")
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def share_runs() -> bool:
    """`ASTAPP_SHARE_RUNS=1`: every session sees every run (read-only for non-owners)."""
    return env_flag("ASTAPP_SHARE_RUNS")


# --- small file helpers -------------------------------------------------------------------------

def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when missing, unreadable or half-written."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def to_epoch(value: object) -> float | None:
    """Seconds since the epoch from a number or an ISO-8601 string (train may write either)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def write_status(run_dir: Path, state: str, error: str | None = None, pid: int | None = None,
                 **extra: Any) -> None:
    """Atomically replace status.json (the runner and train both write it)."""
    status = {"state": state, "error": error, "pid": os.getpid() if pid is None else pid,
              "updated": time.time(), **extra}
    atomic_write_text(Path(run_dir) / "status.json", json.dumps(status, indent=2))


def write_meta(run_dir: Path, name: str, owner: str) -> None:
    """meta.json: the run's display name, owner and creation time (written once, by the runner)."""
    meta = {"id": Path(run_dir).name, "name": name, "owner": owner, "created": time.time()}
    atomic_write_text(Path(run_dir) / "meta.json", json.dumps(meta, indent=2, ensure_ascii=False))


def append_log(run_dir: Path, line: str) -> None:
    """Append one timestamped line to the run's log.txt."""
    stamp = time.strftime("%H:%M:%S")
    with open(Path(run_dir) / "log.txt", "a", encoding="utf-8") as f:
        for part in str(line).splitlines() or [""]:
            f.write(f"{stamp} {part}\n")


def read_tail(path: Path, n: int = 50, max_bytes: int = 256_000) -> list[str]:
    """The last `n` lines of a text file (reads at most `max_bytes` from the end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-n:] if n > 0 else []


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """Events recorded in history.jsonl (a torn last line from a crash is skipped)."""
    out: list[dict[str, Any]] = []
    try:
        text = (Path(run_dir) / "history.jsonl").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


def last_checkpoint(run_dir: Path) -> Path | None:
    """The highest complete `checkpoints/checkpoint-N` (has trainer_state.json and weights)."""
    ck_root = Path(run_dir) / "checkpoints"
    best: tuple[int, Path] | None = None
    if not ck_root.is_dir():
        return None
    for d in ck_root.iterdir():
        m = CHECKPOINT.match(d.name)
        if not m or not d.is_dir() or not (d / "trainer_state.json").is_file():
            continue
        if not any((d / w).is_file() for w in WEIGHT_FILES):
            continue
        step = int(m.group(1))
        if best is None or step > best[0]:
            best = (step, d)
    return best[1] if best else None


def has_model(run_dir: Path) -> bool:
    """True only for a complete `model/` export (config plus weights)."""
    model = Path(run_dir) / "model"
    return (model / "config.json").is_file() and any((model / w).is_file() for w in WEIGHT_FILES)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


# --- registry ------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """One run as the run picker shows it."""

    id: str
    name: str
    owner: str
    state: str
    created: float
    updated: float
    metrics: dict[str, float] = field(default_factory=dict)  # accuracy, f1_macro when known
    has_model: bool = False
    error: str | None = None
    last_checkpoint: str | None = None
    resumable: bool = False
    path: Path = Path()
    readonly: bool = False  # another session's run, visible because sharing is on

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def f1_macro(self) -> float | None:
        return self.metrics.get("f1_macro")

    def label(self) -> str:
        """Short text for a dropdown: name · state · accuracy."""
        parts = [self.name or self.id, self.state]
        if self.accuracy is not None:
            parts.append(f"acc {self.accuracy:.3f}")
        if self.readonly:
            parts.append("shared")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d

    @classmethod
    def from_dir(cls, run_dir: Path, owner: str, readonly: bool = False) -> RunInfo:
        run_dir = Path(run_dir)
        status = read_json(run_dir / "status.json")
        meta = read_json(run_dir / "meta.json")
        try:
            mtime = run_dir.stat().st_mtime
        except OSError:
            mtime = 0.0
        created = to_epoch(meta.get("created")) or mtime
        updated = to_epoch(status.get("updated")) or created
        state = status.get("state") if status.get("state") in STATES else "unknown"
        ck = last_checkpoint(run_dir)
        resumable = ((run_dir / "config.json").is_file() and not readonly
                     and (state == "interrupted" or (state == "stopped" and ck is not None)))
        err = status.get("error")
        return cls(id=run_dir.name, name=str(meta.get("name") or run_dir.name), owner=owner, state=state,
                   created=created, updated=updated, metrics=_metrics_summary(run_dir / "metrics.json"),
                   has_model=has_model(run_dir), error=str(err) if err else None,
                   last_checkpoint=str(ck) if ck else None, resumable=resumable, path=run_dir,
                   readonly=readonly)


def _metrics_summary(path: Path) -> dict[str, float]:
    """accuracy and f1_macro from metrics.json, whether top-level, `eval_`-prefixed or nested."""
    m = read_json(path)
    out: dict[str, float] = {}
    candidates = [m] + [m[k] for k in ("best", "final", "validation", "eval") if isinstance(m.get(k), dict)]
    for key in ("accuracy", "f1_macro"):
        for c in candidates:
            v = c.get(key, c.get(f"eval_{key}"))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[key] = float(v)
                break
    return out


def _owner_dirs(root: Path) -> list[Path]:
    base = runs_dir(root)
    if not base.is_dir():
        return []
    return [d for d in base.iterdir() if d.is_dir() and not d.is_symlink()]


def list_runs(root: Path, owner: str, shared: bool | None = None) -> list[RunInfo]:
    """Runs visible to `owner`, newest first (own runs; everyone's when sharing is on)."""
    check_id(owner, "session")
    shared = share_runs() if shared is None else shared
    owners = _owner_dirs(root) if shared else [runs_dir(root) / owner]
    out: list[RunInfo] = []
    for od in owners:
        if not od.is_dir():
            continue
        for rd in od.iterdir():
            if rd.is_dir() and not rd.is_symlink() and not rd.name.startswith(".") and \
                    (rd / "status.json").exists():
                out.append(RunInfo.from_dir(rd, od.name, readonly=od.name != owner))
    out.sort(key=lambda r: (r.created, r.id), reverse=True)
    return out


def run_dir(root: Path, owner: str, run_id: str, write: bool = False, shared: bool | None = None) -> Path:
    """The folder of a run `owner` may see (`write=True`: only their own); AccessError otherwise."""
    check_id(owner, "session")
    check_id(run_id, "run id")
    own = inside(runs_dir(root) / owner, run_id)
    if own.is_dir() and (own / "status.json").exists():
        return own
    if not write and (share_runs() if shared is None else shared):
        for od in _owner_dirs(root):
            cand = inside(od, run_id)
            if cand.is_dir() and (cand / "status.json").exists():
                return cand
    raise AccessError(f"There is no run {run_id!r} among your runs; pick one from the run list.")


def get_run(root: Path, owner: str, run_id: str, shared: bool | None = None) -> RunInfo:
    """One visible run; AccessError if it is unknown, another session's (unshared), or a bad id."""
    d = run_dir(root, owner, run_id, shared=shared)
    return RunInfo.from_dir(d, d.parent.name, readonly=d.parent.name != owner)


def model_dir(root: Path, owner: str, run_id: str, shared: bool | None = None) -> Path:
    """The complete exported model of a visible run (for predict and download)."""
    d = run_dir(root, owner, run_id, shared=shared)
    if not has_model(d):
        raise AccessError(f"Run {run_id!r} has no finished model yet; wait for it to finish or pick "
                          "another run.")
    return d / "model"


def run_file(root: Path, owner: str, run_id: str, name: str, shared: bool | None = None) -> Path:
    """A file inside a visible run folder (e.g. "metrics.json"); AccessError for "../" tricks."""
    p = inside(run_dir(root, owner, run_id, shared=shared), name)
    if not p.exists():
        raise AccessError(f"Run {run_id!r} has no file {name!r}.")
    return p


# --- restart recovery ---------------------------------------------------------------------------

def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _process_start(pid: int) -> float | None:
    """Start time (epoch seconds) of `pid` from /proc, or None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    boot = _boot_time()
    return None if boot is None else boot + ticks / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: object, since: float | None = None) -> bool:
    """Whether `pid` is a live process that could have written a status at time `since`.

    A pid that was reused after a restart (the process started after `since`) counts as dead.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False  # zombie: exited, not yet reaped
    except (OSError, IndexError):
        pass
    start = _process_start(pid)
    return not (since is not None and start is not None and start > since + 2)


def recover(root: Path, live_runs: Collection[str] = ()) -> list[RunInfo]:
    """Mark queued/running runs whose process is gone as `interrupted`; returns those runs.

    Runs in `live_runs` (jobs of this process) and runs of a live other process are left alone;
    finished runs are never touched.
    """
    changed: list[RunInfo] = []
    for od in _owner_dirs(root):
        for rd in od.iterdir():
            if not rd.is_dir() or rd.name.startswith(".") or rd.name in live_runs:
                continue
            status = read_json(rd / "status.json")
            if status.get("state") not in ACTIVE:
                continue
            pid = status.get("pid")
            if pid != os.getpid() and pid_alive(pid, to_epoch(status.get("updated"))):
                continue
            if restore_dir(rd / "model"):
                log.warning("Run %s/%s: restored the previous model after a crash mid-export", od.name, rd.name)
            ck = last_checkpoint(rd)
            was = status.get("state")
            msg = ("The app stopped while this run was " + ("training" if was == "running" else "waiting")
                   + (f"; resume it from {ck.name}." if ck else "; resume it to start again."))
            write_status(rd, "interrupted", error=msg, pid=status.get("pid") if isinstance(pid, int) else 0,
                         last_checkpoint=str(ck) if ck else None, resumable=True)
            append_log(rd, f"Interrupted: {msg}")
            changed.append(RunInfo.from_dir(rd, od.name))
            log.warning("Run %s/%s marked interrupted", od.name, rd.name)
    return changed
