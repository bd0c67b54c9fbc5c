"""What the real-browser tests share: Debian's Chromium, its flags, and the launched app (module fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from app_helpers import free_port
from conftest import build_tiny_ast

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
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



@pytest.fixture(scope="module")
def app_process(tmp_path_factory, chromium_path):
    """(url, data root) of the app as it is deployed: `python app.py` in a process of its own. A test that times
    the page must not share a GIL with the server and its training thread (Playwright's calls would then wait on
    them, and the waiting would be counted as the page's)."""
    ckpt = build_tiny_ast(tmp_path_factory.mktemp("ckpt") / "tiny-ast", max_length=128)
    root = tmp_path_factory.mktemp("appdata")
    port = free_port()
    env = {**os.environ, "ASTAPP_MODEL": str(ckpt), "ASTAPP_DATA_DIR": str(root), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (root / "app.log").open("w")
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, server, root / "app.log")
        yield url, root
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 180.0) -> None:
    """Until the app answers at `url` (a busy machine takes a while to import torch and build the app)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"app.py exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"app.py did not answer within {timeout_s:.0f} s: {log.read_text()[-2000:]}")



# --- Listen live and the busy Train tab: a tone dataset, a fake microphone, the app's first page ----------
MIC = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TONES = {"low": 300.0, "high": 3000.0}
SEQUENCE = [("low", 3.0), ("high", 3.0), ("background", 3.0)]  # what the fake microphone loops


def tone_dataset(folder: Path) -> str:
    """A zip of low and high tones and a quiet-noise background class (30 clips each: enough steps per
    epoch for the tiny model to be sure of each sound after 4 epochs)."""
    import shutil

    import numpy as np

    from astapp.data.synth import make_signal, make_tone_classes, write_wav

    make_tone_classes(folder, per_class=30, classes=TONES)
    rng = np.random.default_rng(1)
    for j in range(30):
        write_wav(folder / "background" / f"background_{j:03d}.wav",
                  rng.uniform(0.01, 0.05) * make_signal("noise", 1.0, rng=rng))
    return shutil.make_archive(str(folder.parent / "tones"), "zip", folder)


def tone_microphone(path: Path) -> Path:
    """SEQUENCE as one 16-bit WAV (Chromium's fake capture loops it). The tones carry the training clips'
    faint noise floor, as any real microphone does."""
    import numpy as np

    from astapp.data.synth import make_signal, write_wav

    t = np.arange(int(3.0 * 16_000)) / 16_000
    rng = np.random.default_rng(4)
    parts = []
    for name, seconds in SEQUENCE:
        n = int(seconds * 16_000)
        if name == "background":
            parts.append(0.03 * make_signal("noise", seconds, rng=np.random.default_rng(5)))
        else:
            parts.append(0.6 * np.sin(2 * np.pi * TONES[name] * t[:n]) + 0.01 * rng.standard_normal(n))
    return write_wav(path, np.concatenate(parts).astype(np.float32), subtype="PCM_16")


def launch_with_microphone(p, chromium_path: str, wav: Path):
    """Chromium whose fake microphone loops `wav`, and a context at the journey tests' 1360 × 900."""
    browser = p.chromium.launch(executable_path=chromium_path,
                                args=[*ARGS, *MIC, f"--use-file-for-fake-audio-capture={wav}"])
    return browser, browser.new_context(viewport={"width": 1360, "height": 900})


def ready_page(p, chromium_path: str, url: str, errors: list[str]):
    """(browser, page) of a journey test: Chromium at 1360 × 1000, 60 s per step, page errors into `errors`,
    the app open with its dataset ready to train."""
    browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
    page = browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.locator("#data-summary").get_by_text("Ready to train").wait_for(timeout=120_000)
    return browser, page


def open_app(context, url: str, errors: list[str], timeout_ms: int = 60_000):
    """A new tab of the app whose page errors land in `errors`, once the Data tab has restored its dataset."""
    from playwright.sync_api import expect

    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    expect(page.locator("#data-summary")).not_to_be_empty(timeout=60_000)
    return page


def upload_dataset(page, zip_path: str) -> None:
    """Upload a dataset zip in the Data tab and wait until it is the dataset."""
    from playwright.sync_api import expect

    summary = page.locator("#data-summary")
    expect(summary).to_contain_text("Ready to train", timeout=60_000)
    page.locator("#upload-zip input[type=file]").set_input_files(zip_path)
    expect(summary).to_contain_text(Path(zip_path).name, timeout=60_000)


def fill_and_keep(page, box, value: str, tries: int = 5) -> None:
    """Type `value` into the input `box` and leave it (Tab), again if the page's restore of the saved form
    overwrote it meanwhile: that restore lands a moment after load, and a value typed before it is lost."""
    for _ in range(tries):
        box.fill(value)
        box.press("Tab")
        page.wait_for_timeout(1000)
        if box.input_value() == value:
            return
    assert box.input_value() == value, box.input_value()
