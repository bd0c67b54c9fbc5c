"""Review by ear in a real browser: train a tiny model, open a recording's detected events in the Detect tab,
reject one with the keyboard ("r"), reload (the decision is still there), "Add to dataset and retrain": the
new dataset version holds that clip as background and a run trains on it.
Skipped without /usr/bin/chromium, except under CI."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import soundfile as sf
from browser_helpers import ready_page

from astapp.data.synth import make_signal

pytestmark = pytest.mark.browser


def _recording(path):
    sr = 16_000
    rng = np.random.default_rng(4)
    wav = rng.standard_normal(sr * 10).astype(np.float32) * 0.01
    wav[2 * sr:3 * sr] += make_signal("clicks", 1.0, sr, rng)
    wav[6 * sr:7 * sr] += make_signal("tone", 1.0, sr, rng)
    sf.write(str(path), wav, sr)
    return path


def test_reject_a_detected_event_by_keyboard_and_retrain(app, chromium_path, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    url, root = app
    rec = _recording(tmp_path / "garden.wav")
    events = tmp_path / "garden.csv"  # a detection output (the CLI's CSV) for this recording
    events.write_text("file,label,start,end,score\ngarden.wav,knocks,2.0,3.0,0.93\ngarden.wav,beeps,6.0,7.0,0.71\n")
    with sync_playwright() as p:
        errors: list[str] = []
        browser, page = ready_page(p, chromium_path, url, errors)

        page.get_by_role("tab", name=re.compile("Train")).click()
        epochs = page.get_by_label("Epochs")
        epochs.fill("1")
        epochs.press("Tab")
        page.locator("#start-btn").click()
        expect(page.locator("#train-status")).to_contain_text("Finished", timeout=300_000)

        page.get_by_role("tab", name=re.compile("Detect")).click()
        page.locator("#detect-refresh").click()
        expect(page.locator("#detect-run input")).not_to_have_value("", timeout=30_000)
        page.locator("#detect-recording input[type=file]").set_input_files(str(rec))
        page.locator("#detect-events-file input[type=file]").set_input_files(str(events))
        page.locator("#detect-load").click()
        table = page.locator("#review-events")
        expect(table).to_contain_text("knocks", timeout=60_000)
        expect(page.locator("#review-current")).to_contain_text("Event 0")

        page.locator("#review-strip").click(position={"x": 5, "y": 5})  # focus off any text field
        page.keyboard.press("n")  # open the next event, then back to the first: heard, boxed on the strip
        expect(page.locator("#review-current")).to_contain_text("Event 1 · beeps")
        page.keyboard.press("p")
        expect(page.locator("#review-current")).to_contain_text("Event 0 · knocks")
        page.keyboard.press("r")
        expect(table).to_contain_text("rejected", timeout=30_000)
        expect(page.locator("#review-current")).to_contain_text("Event 1")  # on to the next undecided
        expect(page.locator("#review-pending")).to_contain_text("1 clip(s) wait")

        page.reload()  # server-side state: the list and the decision come back
        page.get_by_role("tab", name=re.compile("Detect")).click()
        expect(page.locator("#review-events")).to_contain_text("rejected", timeout=60_000)

        page.locator("#review-retrain").click()
        expect(page.locator("#review-result")).to_contain_text("v2 = v1 + 1 false alarms → background 1",
                                                               timeout=120_000)
        page.get_by_role("tab", name=re.compile("Data")).click()
        expect(page.locator("#data-summary")).to_contain_text("v2", timeout=60_000)
        assert not errors, errors
        browser.close()

    manifests = list(root.glob("workspaces/*/versions/v2/manifest.csv"))
    assert len(manifests) == 1
    rows = list(csv.DictReader(manifests[0].open()))
    added = [r for r in rows if r["file"].startswith("added/")]
    assert [(r["label"], r["fold"]) for r in added] == [("background", "train")]
    assert "garden-2.00s-3.00s" in added[0]["file"]
