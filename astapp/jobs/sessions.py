"""Per-browser sessions: an opaque token becomes a private workspace and the owner id of its runs.

The UI passes Gradio's `request.session_hash` (or a per-browser token kept in `gr.BrowserState`).
The owner id is a hash of that token, so folder names never reveal the token and two sessions can
never collide or guess each other's folders::

    from astapp.jobs.sessions import Session
    s = Session.open(request.session_hash, root)   # validates, creates and touches the workspace
    upload = s.resolve("upload.zip")               # AccessError for "../x", "/etc/passwd", ...
    manager.submit(s.owner, cfg)                   # runs live under runs/<s.owner>/

`cleanup_idle` deletes workspaces nobody touched for `ASTAPP_SESSION_TTL_HOURS` (default 24) and,
when `ASTAPP_RUN_TTL_DAYS` > 0, finished runs older than that; owners and runs with an active job
are always kept. `JobManager.cleanup_idle` calls it with the active jobs filled in.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from astapp.core.config import env_float
from astapp.core.errors import AccessError
from astapp.core.paths import inside, owner_cache, runs_dir, workspaces_dir
from astapp.core.runfolder import ACTIVE, STATUS, number, read_json

log = logging.getLogger(__name__)

TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
TOUCH_FILE = ".last_seen"


def owner_id(token: object) -> str:
    """Stable, safe owner id for a session token; AccessError for anything but a plain token."""
    if not isinstance(token, str) or not TOKEN.match(token):
        raise AccessError("This browser session has no valid id; reload the page to start a new one.")
    return "u" + hashlib.sha256(token.encode("ascii")).hexdigest()[:20]


@dataclass(frozen=True)
class Session:
    """One browser session: `owner` names its runs, `workspace` holds its uploads."""

    owner: str
    workspace: Path

    @classmethod
    def open(cls, token: str, root: Path) -> Session:
        owner = owner_id(token)
        ws = workspaces_dir(root) / owner
        ws.mkdir(parents=True, exist_ok=True)
        s = cls(owner, ws.resolve())
        s.touch()
        return s

    def touch(self, now: float | None = None) -> None:
        """Mark the session as in use (idle cleanup counts from the latest touch)."""
        marker = self.workspace / TOUCH_FILE
        marker.touch()
        if now is not None:
            os.utime(marker, (now, now))

    def resolve(self, name: str | os.PathLike[str]) -> Path:
        """A path inside this workspace; AccessError if `name` escapes it."""
        return inside(self.workspace, name)


def last_seen(workspace: Path) -> float:
    marker = Path(workspace) / TOUCH_FILE
    try:
        return marker.stat().st_mtime
    except OSError:
        try:
            return Path(workspace).stat().st_mtime
        except OSError:
            return 0.0


def cleanup_idle(root: Path, now: float | None = None, busy_owners: Collection[str] = (),
                 busy_runs: Collection[str] = (), ttl_hours: float | None = None,
                 run_ttl_days: float | None = None) -> list[Path]:
    """Delete idle workspaces (and expired runs when a run TTL is set); returns what was deleted.

    Never touches an owner in `busy_owners`, a run id in `busy_runs`, or a run whose status is
    still queued/running.
    """
    now = time.time() if now is None else now
    ttl_h = env_float("ASTAPP_SESSION_TTL_HOURS", 24.0) if ttl_hours is None else ttl_hours
    run_days = env_float("ASTAPP_RUN_TTL_DAYS", 0.0) if run_ttl_days is None else run_ttl_days
    deleted: list[Path] = []

    ws_root = workspaces_dir(root)
    if ttl_h > 0 and ws_root.is_dir():
        for ws in ws_root.iterdir():
            if not ws.is_dir() or ws.is_symlink() or ws.name in busy_owners:
                continue
            if now - last_seen(ws) > ttl_h * 3600:
                shutil.rmtree(ws, ignore_errors=True)
                deleted.append(ws)
                log.info("Deleted idle workspace %s", ws.name)
                # Training caches decoded audio and features next to the owner's runs: they are as
                # private as the uploads, so they go with the workspace (runs themselves stay).
                cache = owner_cache(root, ws.name)
                if cache.is_dir() and not cache.is_symlink():
                    shutil.rmtree(cache, ignore_errors=True)
                    deleted.append(cache)

    r_root = runs_dir(root)
    if run_days > 0 and r_root.is_dir():
        for owner_dir in r_root.iterdir():
            if not owner_dir.is_dir() or owner_dir.is_symlink():
                continue
            for run in owner_dir.iterdir():
                if not run.is_dir() or run.name in busy_runs or run.name.startswith("."):
                    continue
                status = read_json(run / STATUS)
                if status.get("state") in ACTIVE:
                    continue
                age_from = number(status.get("updated")) or run.stat().st_mtime
                if now - age_from > run_days * 86400:
                    shutil.rmtree(run, ignore_errors=True)
                    deleted.append(run)
                    log.info("Deleted expired run %s/%s", owner_dir.name, run.name)
    return deleted


def every(interval_s: float, fn: Callable[[], object], stop: threading.Event, name: str) -> threading.Thread:
    """Run `fn` every `interval_s` seconds on a daemon thread until `stop` is set (housekeeping: a
    failure is logged, never raised)."""

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                fn()
            except Exception:  # noqa: BLE001 - housekeeping must never stop the app
                log.exception("%s failed", name)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
