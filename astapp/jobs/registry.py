"""Run registry: what each run folder says about itself (state, metrics, model, checkpoints).

A run folder is `<root>/runs/<owner>/<run_id>/`; its files and their writers are listed in
`astapp.core.runfolder`. Everything here is read from disk, so it is right after a restart too::

    from astapp.jobs.registry import list_runs, get_run
    for r in list_runs(root, session.owner):      # newest first; shared runs too if ASTAPP_SHARE_RUNS=1
        print(r.id, r.state, r.accuracy, r.has_model)
    run = get_run(root, session.owner, run_id)    # AccessError if unknown, not visible, or "../x"

`recover` turns runs left queued/running by a dead process into `interrupted` (resumable from the
last checkpoint).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from astapp.core.config import env_flag
from astapp.core.errors import AccessError
from astapp.core.events import fmt_score
from astapp.core.fsutil import restore_dir
from astapp.core.paths import check_id, inside, runs_dir
from astapp.core.runfolder import (
    ACTIVE,
    CONFIG,
    META,
    MODEL,
    STATES,
    STATUS,
    TRIALS,
    has_model,
    is_run,
    last_checkpoint,
    metrics_summary,
    number,
    read_json,
)
from astapp.jobs.record import RunRecord

log = logging.getLogger(__name__)


def share_runs() -> bool:
    """`ASTAPP_SHARE_RUNS=1`: every session sees every run (read-only for non-owners)."""
    return env_flag("ASTAPP_SHARE_RUNS")


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
    setup: str = ""  # how it trained, from its config: "full, 3 epochs"

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def f1_macro(self) -> float | None:
        return self.metrics.get("f1_macro")

    def label(self) -> str:
        """Text for a dropdown that tells runs apart: name · how it trained · when · state · accuracy
        (two runs on one dataset and model read the same without the middle two)."""
        when = time.strftime("%b %d %H:%M", time.localtime(self.created)) if self.created else ""
        parts = [p for p in (self.name or self.id, self.setup, when, self.state) if p]
        if self.accuracy is not None:
            parts.append(f"{'CV acc' if self.metrics.get('cv') else 'acc'} {fmt_score(self.accuracy)}")
        if self.readonly:
            parts.append("shared")
        return " · ".join(parts)

    def snapshot(self) -> dict[str, Any]:
        """What a progress panel shows of a run no job holds in memory (finished, or before a restart)."""
        return {"job_id": self.id, "run_id": self.id, "name": self.name, "state": self.state, "position": None,
                "progress": 1.0 if self.state == "finished" else 0.0, "elapsed": max(0.0, self.updated - self.created),
                "eta": None, "message": self.error or f"Run {self.state}.", "error": self.error}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d

    @classmethod
    def from_dir(cls, run_dir: Path, owner: str, readonly: bool = False) -> RunInfo:
        run_dir = Path(run_dir)
        status = read_json(run_dir / STATUS)
        meta = read_json(run_dir / META)
        try:
            mtime = run_dir.stat().st_mtime
        except OSError:
            mtime = 0.0
        created = number(meta.get("created")) or mtime
        updated = number(status.get("updated")) or created
        state = status.get("state") if status.get("state") in STATES else "unknown"
        ck = last_checkpoint(run_dir)
        searched = (run_dir / TRIALS).is_dir()  # a stopped settings search continues from its trials
        resumable = ((run_dir / CONFIG).is_file() and not readonly
                     and (state == "interrupted" or (state == "stopped" and (ck is not None or searched))))
        err = status.get("error")
        cfg = read_json(run_dir / CONFIG)
        epochs = number(cfg.get("epochs"))
        setup = ", ".join(p for p in (str(cfg.get("mode") or ""), f"{epochs:g} epoch{'' if epochs == 1 else 's'}" if epochs else "") if p)
        return cls(id=run_dir.name, name=str(meta.get("name") or run_dir.name), owner=owner, state=state,
                   created=created, updated=updated, metrics=metrics_summary(run_dir),
                   has_model=has_model(run_dir), error=str(err) if err else None,
                   last_checkpoint=str(ck) if ck else None, resumable=resumable, path=run_dir,
                   readonly=readonly, setup=setup)


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
            if is_run(rd):
                out.append(RunInfo.from_dir(rd, od.name, readonly=od.name != owner))
    out.sort(key=lambda r: (r.created, r.id), reverse=True)
    return out


def run_dir(root: Path, owner: str, run_id: str, write: bool = False, shared: bool | None = None) -> Path:
    """The folder of a run `owner` may see (`write=True`: only their own); AccessError otherwise."""
    check_id(owner, "session")
    check_id(run_id, "run id")
    own = inside(runs_dir(root) / owner, run_id)
    if is_run(own):
        return own
    if not write and (share_runs() if shared is None else shared):
        for od in _owner_dirs(root):
            cand = inside(od, run_id)
            if is_run(cand):
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
    return d / MODEL


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
            status = read_json(rd / STATUS)
            if status.get("state") not in ACTIVE:
                continue
            pid = status.get("pid")
            if pid != os.getpid() and pid_alive(pid, number(status.get("updated"))):
                continue
            if restore_dir(rd / MODEL):
                log.warning("Run %s/%s: restored the previous model after a crash mid-export", od.name, rd.name)
            ck = last_checkpoint(rd)
            was = status.get("state")
            msg = ("The app stopped while this run was " + ("training" if was == "running" else "waiting")
                   + (f"; resume it from {ck.name}." if ck else "; resume it to start again."))
            RunRecord(rd, enabled=True).interrupted(msg, pid if isinstance(pid, int) else 0, ck)
            changed.append(RunInfo.from_dir(rd, od.name))
            log.warning("Run %s/%s marked interrupted", od.name, rd.name)
    return changed
