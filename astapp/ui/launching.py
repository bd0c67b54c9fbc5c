"""A patient "is localhost reachable?" check for `launch()` on a busy machine.

Gradio's `launch()` asks `networking.url_ok` whether the page answers on localhost, and gives up on the
first HEAD that takes over 3 s (its retry loop sits inside the `try`, so a timeout ends it): on a 2-vCPU
Space or laptop busy with a training run, the first render of this six-tab page can take longer, and the
app then refused to start with "When localhost is not accessible, a shareable link must be created"
(seen as a failed start in the browser tests at load average 21). This check keeps asking until a
deadline (`ASTAPP_LAUNCH_WAIT_S`, default 60 s), so only a localhost that never answers is an error.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator

import httpx

from astapp.core.config import env_float

ANSWERS = (200, 401, 301, 302, 303, 307, 308)  # what gradio counts as "up" (auth and redirects included)


def patient_url_ok(url: str, wait_s: float | None = None, timeout: float = 5.0) -> bool:
    """True once `url` answers a HEAD; timeouts and refused connections are retried until `wait_s` passes."""
    deadline = time.monotonic() + (env_float("ASTAPP_LAUNCH_WAIT_S", 60.0) if wait_s is None else wait_s)
    while True:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore")
                if httpx.head(url, timeout=timeout, verify=False).status_code in ANSWERS:
                    return True
        except httpx.TransportError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


@contextlib.contextmanager
def patient_launch() -> Iterator[None]:
    """Use `patient_url_ok` for the localhost check of the `launch()` inside this block."""
    from gradio import networking

    original = networking.url_ok
    networking.url_ok = patient_url_ok
    try:
        yield
    finally:
        networking.url_ok = original
