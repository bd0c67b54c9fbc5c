"""Glue shared by the tabs: who the caller is, error handling, and small formatting helpers.

The tabs talk to the engine only through `astapp.service.Service`; nothing here imports torch.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from astapp.core.config import env_int
from astapp.core.errors import AstappError, explain
from astapp.service import Service

log = logging.getLogger("astapp.ui")

TOKEN = re.compile(r"^[a-f0-9]{32}$")
HEAVY_ID = "astapp-heavy"


def heavy() -> dict[str, Any]:
    """Event options for CPU-heavy handlers (decode, extract, preview, predict, zip).

    They share one concurrency group, `ASTAPP_HEAVY_CONCURRENCY` at a time (default 2, one per vCPU
    of a basic Space), so a crowd of uploads or predictions queues up instead of thrashing the CPU
    that training also needs. Light handlers (training status polls, stop, run lists) keep their own
    per-event limits and are never stuck behind heavy ones.
    """
    return {"concurrency_id": HEAVY_ID, "concurrency_limit": max(1, env_int("ASTAPP_HEAVY_CONCURRENCY", 2))}


# An event's last input is a hidden `stamp_box`; this fills it, when the page takes the event's values,
# with the page's clock (ms). The page's events can finish out of order (a preview asked for before a
# change can end after it); the stamp lets the server keep the newer value (`astapp.service.state`).
STAMP_JS = "(...args) => [...args.slice(0, -1), performance.timeOrigin + performance.now()]"


# How the page sends a save of its controls (the Augment settings, the Train form): one request per change
# ("multiple": the server orders them by their stamps, so none is held back or dropped on the page) and
# queue-free (a plain request, like the training poll: it never waits behind CPU-heavy events, nor needs the
# page's event stream, which a browser with many tabs may not get a connection for).
SAVE_EVENTS: dict[str, Any] = {"trigger_mode": "multiple", "queue": False, "api_visibility": "private",
                               "show_progress": "hidden"}


def stamp_box() -> Any:
    """The hidden input `STAMP_JS` fills (API callers leave its 0: their calls are not stamped)."""
    return gr.Number(0, label="stamp", visible="hidden", interactive=False)


def page_stamp(value: Any, request: gr.Request | None) -> tuple[str, float] | None:
    """(page, ms) of a stamped event for the service's `stamp=` arguments; None when not stamped."""
    page = getattr(request, "session_hash", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 and page:
        return str(page), float(value)
    return None


def new_token() -> str:
    """A fresh unguessable owner id for a browser (kept in its localStorage)."""
    return secrets.token_hex(16)


def user_token(username: str) -> str:
    """The session token of a logged-in user: hashed, so any user name becomes a safe token and never
    shows up in folder names."""
    return "user-" + hashlib.sha256(username.encode("utf-8")).hexdigest()[:32]


def hf_username(request: gr.Request | None) -> str | None:
    """The Hugging Face user signed in with "Sign in with Hugging Face" (Gradio keeps the OAuth answer in
    the request's session), or None: not signed in, signed in too long ago, or no OAuth on this app."""
    # Read the session the way Gradio does for its OAuth arguments: from the Starlette scope (touching
    # `.session` without SessionMiddleware, i.e. without OAuth, would raise), else a plain `.session`.
    underlying = getattr(request, "request", None) or request
    scope = getattr(underlying, "scope", None)
    session = scope.get("session") if isinstance(scope, dict) else getattr(underlying, "session", None)
    info = session.get("oauth_info") if isinstance(session, dict) else None
    if not isinstance(info, dict):
        return None
    expires = info.get("expires_at")
    if isinstance(expires, (int, float)) and expires < time.time():
        return None
    user = (info.get("userinfo") or {}).get("preferred_username")
    return user if isinstance(user, str) and user else None


def session_token(token: str | None, request: gr.Request | None) -> str:
    """The caller's session token: the signed-in Hugging Face user, else the logged-in user, else the
    browser's persistent token, else the Gradio session hash.

    Signed in with Hugging Face (on a Space), or logged in with `ASTAPP_AUTH`, runs and workspaces
    belong to that user, so they follow the person to another browser or device (the two kinds of
    users never share a name: "hf:alice" is not "alice"). Otherwise the browser token lives in
    localStorage, so a reload or a second tab of the same browser is the same owner and sees the same
    state; API clients (gradio_client) have no token and are isolated per client session.
    """
    hf_user = hf_username(request)
    if hf_user:
        return user_token("hf:" + hf_user)
    user = getattr(request, "username", None) if request is not None else None
    if isinstance(user, str) and user:
        return user_token(user)
    if isinstance(token, str) and TOKEN.match(token):
        return token
    session = getattr(request, "session_hash", None) if request is not None else None
    if isinstance(session, str) and session:
        return session
    raise gr.Error("This browser session has no id; reload the page.")


def session(svc: Service, token: str | None, request: gr.Request | None) -> Any:
    """The caller's `astapp.jobs.sessions.Session` (owner id + private workspace)."""
    return svc.open(session_token(token, request))


def friendly(exc: BaseException) -> str:
    """A plain-English message for any exception (the engine's one error vocabulary)."""
    if isinstance(exc, gr.Error):
        return str(exc.message)
    return explain(exc)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler so any failure becomes a readable `gr.Error` toast, never a traceback."""
    return Guard()(fn)


class Guard:
    """A tab's handler wrapper. A failure becomes a readable toast, never a traceback; with `keep`, the
    tab's notice card then goes on saying why after the toast is gone, and every output keeps showing
    what it showed before (instead of red "Error" pills)."""

    def __init__(self, size: int = 1024):
        self._last: OrderedDict[str, str] = OrderedDict()  # page session -> the last failure's sentence
        self._lock = threading.Lock()
        self.size = size

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the point is to catch everything
                if not isinstance(exc, AstappError | gr.Error):
                    log.exception("handler %s failed", getattr(fn, "__name__", fn))
                message = friendly(exc)
                request = next((a for a in [*args, *kwargs.values()] if isinstance(a, gr.Request)), None)
                if request is not None and request.session_hash:
                    with self._lock:
                        self._last[request.session_hash] = message
                        while len(self._last) > self.size:
                            self._last.popitem(last=False)
                raise gr.Error(message, print_exception=False) from None

        return wrapper

    def _pop(self, request: gr.Request | None) -> str:
        with self._lock:
            return self._last.pop(getattr(request, "session_hash", None) or "", "")

    def keep(self, event: Any, outputs: list[Any], card: Any, say: Callable[..., str] | None = None,
             inputs: list[Any] | None = None) -> None:
        """After `event` fails, its outputs keep their values and `card` shows `say(message, *inputs,
        request)` (the message itself by default); after it succeeds, the card is hidden again."""

        def on_failure(request: gr.Request, *values: Any) -> tuple[Any, ...]:
            message = self._pop(request)
            try:
                text = say(message, *values, request) if say else message
            except Exception:  # noqa: BLE001 - the notice must never fail in turn
                text = message
            return (*[gr.update()] * len(outputs), gr.update(value=notice_md(text), visible=True))

        event.failure(on_failure, inputs or [], [*outputs, card], api_visibility="private", show_progress="hidden")
        event.success(lambda: gr.update(value="", visible=False), None, card, api_visibility="private",
                      show_progress="hidden")


def notice_md(text: str) -> str:
    return f"**{escape(text)}**" if text else ""


def notice_card(elem_id: str) -> Any:
    """The card a tab shows when its last action failed (hidden until then)."""
    return gr.Markdown(visible=False, elem_id=elem_id, elem_classes=["astapp-notice", "astapp-failed"])


def md_list(items: list[str], icon: str = "") -> str:
    return "\n".join(f"- {icon}{escape(i)}" for i in items)


def escape(text: str) -> str:
    return str(text).replace("<", "&lt;").replace(">", "&gt;")


def fmt_seconds(sec: float | None) -> str:
    if sec is None or sec != sec or sec < 0:
        return "–"
    sec = int(round(sec))
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def picker_update(choices: list[tuple[str, str]], current: str | None) -> Any:
    """Refresh a run dropdown, keeping the current choice when still listed, else the newest."""
    ids = [c[1] for c in choices]
    value = current if current in ids else (ids[0] if ids else None)
    return gr.Dropdown(choices=choices, value=value)


def pcm16(audio: tuple[int, Any] | None) -> tuple[int, Any] | None:
    """(rate, int16 samples) for a gr.Audio player (float input would be converted with a warning)."""
    if audio is None:
        return None
    sr, wav = audio
    return int(sr), (np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)


def run_choices(runs: list[Any]) -> list[tuple[str, str]]:
    """(label, run id) pairs for a run picker, newest first."""
    return [(r.label(), r.id) for r in runs]


def plural(n: int, one: str, many: str | None = None) -> str:
    """"1 class", "3 classes", "1 clip", "80 clips"."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
