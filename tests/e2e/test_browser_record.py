"""Record in a real browser: Debian Chromium's fake microphone plays generated audio into the Data tab.

Two classes are recorded from two different fake microphones (two browser launches that share the
page's storage, i.e. the same user coming back: the recordings must still be there), a background
class gets uploaded files, then the recordings become the dataset, a noise clip is recorded in the
Augment tab, and a tiny model trains and predicts.
Skipped without /usr/bin/chromium, except under CI. With ASTAPP_DOCS_SCREENSHOTS=1 it also writes
docs/screenshots/record.png.
"""

from __future__ import annotations

import re

import pytest
from browser_helpers import ARGS, DOCS, DOCS_SHOTS, MIC

from astapp.data.synth import make_signal, write_wav

pytestmark = pytest.mark.browser


def _launch(p, chromium: str, fake_wav, url: str, storage=None):
    browser = p.chromium.launch(executable_path=chromium, args=[*ARGS, *MIC,
                                                                 f"--use-file-for-fake-audio-capture={fake_wav}"])
    context = browser.new_context(viewport={"width": 1360, "height": 900}, storage_state=storage)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.locator("#data-summary").get_by_text("Ready to train").wait_for(timeout=60_000)
    page.locator("#record-box").get_by_text("record your own sounds").click()
    return browser, context, page, errors


def _add_class(page, name: str) -> None:
    from playwright.sync_api import expect

    page.get_by_label("New class name").fill(name)
    page.locator("#rec-add-class").click()
    expect(page.locator("#rec-status")).to_contain_text(f"Added the class '{name}'")
    expect(page.locator("#rec-class input")).to_have_value(name)


def _record(page, name: str, ms: int) -> None:
    from playwright.sync_api import expect

    page.locator("#rec-mic .record-button").click()
    page.wait_for_timeout(ms)
    page.locator("#rec-mic .stop-button").click()
    expect(page.locator("#rec-status")).to_contain_text(re.compile(rf"Added [2-9] clip\(s\) to '{name}'"))


def test_record_two_classes_and_background_train_and_predict(app, chromium_path, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    url, _root = app
    hum = write_wav(tmp_path / "mic_hum.wav", 0.5 * make_signal("harmonic", 2.0), subtype="PCM_16")
    chirp = write_wav(tmp_path / "mic_chirp.wav", 0.5 * make_signal("chirp", 2.0), subtype="PCM_16")
    room = [write_wav(tmp_path / f"room{i}.wav", 0.02 * make_signal("noise", 1.0)) for i in range(3)]
    with sync_playwright() as p:
        browser, context, page, errors = _launch(p, chromium_path, hum, url)
        _add_class(page, "hum")
        _record(page, "hum", 2900)
        _add_class(page, "background")
        page.locator("#rec-files input[type=file]").set_input_files([str(f) for f in room])
        expect(page.locator("#rec-status")).to_contain_text("Added 3 file(s) to 'background'")
        storage = context.storage_state()
        assert not errors, errors
        browser.close()

        # The same user later, with another microphone: the recordings are still there.
        browser, context, page, errors = _launch(p, chromium_path, chirp, url, storage)
        table = page.locator("#rec-table")
        expect(table).to_contain_text("background")
        expect(table).to_contain_text("hum")
        _add_class(page, "chirp")
        _record(page, "chirp", 2900)
        if DOCS:  # the README's picture of the panel
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            page.wait_for_timeout(400)
            page.locator("#record-box").screenshot(path=str(DOCS_SHOTS / "record.png"))
        page.locator("#rec-use").click()
        summary = page.locator("#data-summary")
        expect(summary).to_contain_text("Your recordings", timeout=60_000)
        expect(summary).to_contain_text("Ready to train")
        expect(page.locator("#class-table")).to_contain_text("chirp")

        # Augment: record a noise clip for Add background noise from the same microphone.
        page.get_by_role("tab", name=re.compile("Augment")).click()
        page.get_by_role("button", name=re.compile("Background noise clips")).click()
        page.locator("#noise-mic .record-button").click()
        page.wait_for_timeout(1000)
        page.locator("#noise-mic .stop-button").click()
        expect(page.locator("#noise-info")).to_contain_text(re.compile(r"Your noise clips: 1 clip\(s\), [01]\.\d s"))

        page.get_by_role("tab", name=re.compile("Train")).click()
        epochs = page.get_by_label("Epochs")
        epochs.fill("1")
        epochs.press("Tab")
        page.get_by_label("Learning rate").fill("0.001")
        page.get_by_label("Learning rate").press("Tab")
        page.locator("#start-btn").click()
        expect(page.locator("#train-status")).to_contain_text("Finished", timeout=120_000)

        page.get_by_role("tab", name=re.compile("Predict")).click()
        page.locator("#predict-audio input[type=file]").set_input_files(str(chirp))
        page.locator("#predict-btn").click()
        expect(page.locator("#predict-label")).to_contain_text(re.compile("chirp|hum|background"), timeout=30_000)

        page.reload()  # a reload keeps the recordings and the dataset made of them
        expect(page.locator("#data-summary")).to_contain_text("Your recordings", timeout=60_000)
        page.locator("#record-box").get_by_text("record your own sounds").click()
        for name in ("background", "chirp", "hum"):
            expect(page.locator("#rec-table")).to_contain_text(name)
        assert not errors, errors
        browser.close()
