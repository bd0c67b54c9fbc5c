"""Glue shared by the tabs: who the caller is, error handling, and small formatting helpers.

Kept free of torch/transformers imports so the app starts fast; engine modules are imported lazily
inside handlers.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from astapp.errors import AstappError

log = logging.getLogger("astapp.ui")

_TOKEN = re.compile(r"^[a-f0-9]{32}$")


@dataclass
class UiContext:
    """Facts fixed when the app is built (shared by every session)."""

    data_dir: Path
    default_model: str
    hub_online: bool
    example_zip: str | None
    model_choices: list[str] = field(default_factory=list)
    manager: Any = None  # astapp.jobs.JobManager


HEAVY_ID = "astapp-heavy"


def heavy() -> dict[str, Any]:
    """Event options for CPU-heavy handlers (decode, extract, preview, predict, zip).

    They share one concurrency group, `ASTAPP_HEAVY_CONCURRENCY` at a time (default 2, one per vCPU
    of a basic Space), so a crowd of uploads or predictions queues up instead of thrashing the CPU
    that training also needs. Light handlers (training status polls, stop, run lists) keep their own
    per-event limits and are never stuck behind heavy ones.
    """
    from astapp.config import env_int

    return {"concurrency_id": HEAVY_ID, "concurrency_limit": max(1, env_int("ASTAPP_HEAVY_CONCURRENCY", 2))}


def new_token() -> str:
    """A fresh unguessable owner id for a browser (kept in its localStorage)."""
    return secrets.token_hex(16)


def user_token(username: str) -> str:
    """The session token of a logged-in user: hashed, so any user name becomes a safe token and never
    shows up in folder names."""
    return "user-" + hashlib.sha256(username.encode("utf-8")).hexdigest()[:32]


def session_token(token: str | None, request: gr.Request | None) -> str:
    """The caller's session token: the logged-in user, else the browser's persistent token, else the
    Gradio session hash.

    With `ASTAPP_AUTH` on, runs and workspaces belong to the user name, so they follow the person
    to another browser or device. Otherwise the browser token lives in localStorage, so a reload or
    a second tab of the same browser is the same owner and re-attaches to its running job; API
    clients (gradio_client) have no token and are isolated per client session.
    """
    user = getattr(request, "username", None) if request is not None else None
    if isinstance(user, str) and user:
        return user_token(user)
    if isinstance(token, str) and _TOKEN.match(token):
        return token
    session = getattr(request, "session_hash", None) if request is not None else None
    if isinstance(session, str) and session:
        return session
    raise gr.Error("This browser session has no id; reload the page.")


def session(ctx: UiContext, token: str | None, request: gr.Request | None) -> Any:
    """`astapp.sessions.Session` (owner id + private workspace) of the caller."""
    from astapp.sessions import Session

    return Session.open(session_token(token, request), ctx.data_dir)


def friendly(exc: BaseException) -> str:
    """A plain-English message for any exception (AstappError messages are already written for users)."""
    if isinstance(exc, AstappError):
        return str(exc)
    if isinstance(exc, gr.Error):
        return str(exc.message)
    if isinstance(exc, MemoryError):
        return "The machine ran out of memory. Try a smaller batch size, a shorter input length or mode 'frozen'."
    name = type(exc).__name__
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return (f"Something unexpected went wrong ({name}{': ' + detail if detail else ''}). "
            "The app is still working; please try again, and report this if it keeps happening.")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler so any failure becomes a readable `gr.Error` toast, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - the point is to catch everything
            if not isinstance(exc, AstappError):
                log.exception("handler %s failed", getattr(fn, "__name__", fn))
            raise gr.Error(friendly(exc), print_exception=False) from None

    return wrapper


def scratch_dir(prefix: str) -> Path:
    """A fresh folder in the system temp dir: Gradio serves files returned from there."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"astapp-{prefix}-"))


def md_list(items: list[str], icon: str = "") -> str:
    return "\n".join(f"- {icon}{_escape(i)}" for i in items)


def _escape(text: str) -> str:
    return str(text).replace("<", "&lt;").replace(">", "&gt;")


def fmt_seconds(sec: float | None) -> str:
    if sec is None or sec != sec or sec < 0:
        return "–"
    sec = int(round(sec))
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def hardware() -> str:
    """'cuda' when an NVIDIA GPU is usable, else 'cpu' (checks torch only if it is already loaded)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return "cuda" if torch.cuda.is_available() else "cpu"
        except Exception:  # noqa: BLE001
            return "cpu"
    return "cuda" if Path("/dev/nvidia0").exists() else "cpu"


def run_choices(ctx: UiContext, owner: str, need_model: bool = False,
                need_metrics: bool = False) -> list[tuple[str, str]]:
    """(label, run id) pairs for a run picker, newest first."""
    from astapp.runs import list_runs

    out = []
    for r in list_runs(ctx.data_dir, owner):
        if need_model and not r.has_model:
            continue
        if need_metrics and not (r.path / "metrics.json").is_file():
            continue
        out.append((r.label(), r.id))
    return out


def picker_update(choices: list[tuple[str, str]], current: str | None) -> Any:
    """Refresh a run dropdown, keeping the current choice when still listed, else the newest."""
    ids = [c[1] for c in choices]
    value = current if current in ids else (ids[0] if ids else None)
    return gr.Dropdown(choices=choices, value=value)


def pcm16(sr: int, wav: Any) -> tuple[int, Any]:
    """(rate, int16 samples) for a gr.Audio player (float input would be converted with a warning)."""
    import numpy as np

    return int(sr), (np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)
