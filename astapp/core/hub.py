"""Is the Hugging Face Hub reachable? Kept free of torch so the app can ask at start-up cheaply."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from astapp.core.config import env_flag


def offline() -> bool:
    """Offline mode switched on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)."""
    return env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")


def hub_reachable(timeout: float = 2.0) -> bool:
    """True when the Hugging Face Hub answers a TCP connect within `timeout` and offline mode is off."""
    if offline():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
