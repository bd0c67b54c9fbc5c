"""What the real-browser tests share: Debian's Chromium, its flags, and the launched app (module fixtures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_helpers import free_port
from conftest import build_tiny_ast

CHROMIUM = "/usr/bin/chromium"
DOCS = os.environ.get("ASTAPP_DOCS_SCREENSHOTS") == "1"
DOCS_SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing on CI: install Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


@pytest.fixture(scope="module")
def app(tmp_path_factory, chromium_path):
    """(url, data root) of the launched app."""
    from astapp.jobs.manager import JobManager
    from astapp.ui.app import build_app

    ckpt = build_tiny_ast(tmp_path_factory.mktemp("ckpt") / "tiny-ast", max_length=128)
    old = os.environ.get("ASTAPP_MODEL")
    if DOCS:  # the offline default a first-time user gets
        os.environ.pop("ASTAPP_MODEL", None)
    else:
        os.environ["ASTAPP_MODEL"] = str(ckpt)  # the app's default model: what a self-hoster would set
    root = tmp_path_factory.mktemp("appdata")
    manager = JobManager(root=root)
    try:
        demo = build_app(manager, hub_online=False)
    finally:
        if old is None:
            os.environ.pop("ASTAPP_MODEL", None)
        else:
            os.environ["ASTAPP_MODEL"] = old
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", root
    finally:
        demo.close()
        manager.shutdown(timeout=30)


