"""Find good settings and compare runs in a real browser (headless Debian Chromium): a search of a few trials on
the tiny local model from the Train tab, its live trials table and score plot, the best shown; "Train the best";
then the Evaluate tab's Runs table sorted by macro F1 and the two runs compared (only the settings that differ,
their curves overlaid). Skipped without /usr/bin/chromium, except under CI."""

from __future__ import annotations

import json
import re

import pytest
from browser_helpers import fill_and_keep, ready_page

pytestmark = pytest.mark.browser


def _f1(root, pattern: str, read) -> float:
    """The macro F1 the Runs table shows for the one run folder matching `pattern` (read from its files)."""
    found = [f for f in sorted(root.glob(pattern)) if f.name == "tune.json" or not (f.parent / "tune.json").exists()]
    assert len(found) == 1, found
    return float(read(json.loads(found[0].read_text())))


def _wait_finished(root, pattern: str, timeout_s: float) -> None:
    """Until the run of the best settings (the run folder without tune.json) says finished."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [json.loads(f.read_text()).get("state") for f in root.glob(pattern)
                  if not (f.parent / "tune.json").exists()]
        if states and all(st == "finished" for st in states):
            return
        assert not any(st == "failed" for st in states), states
        time.sleep(1)
    raise AssertionError(f"the run of the best settings did not finish in {timeout_s} s")


def test_find_settings_then_sort_and_compare_runs(app, chromium_path):
    from playwright.sync_api import expect, sync_playwright

    url, root = app
    with sync_playwright() as p:
        errors: list[str] = []
        browser, page = ready_page(p, chromium_path, url, errors)

        # Train tab: mode frozen (each trial a head fit on one cached pass), a search of 4 trials
        page.get_by_role("tab", name=re.compile("Train")).click()
        page.locator("#mode-choice").get_by_label("frozen").check()
        box = page.locator("#tune-box")
        box.get_by_text("Find good settings (search").click()  # open the accordion
        fill_and_keep(page, box.get_by_label("Trials"), "4")
        page.locator("#tune-start").click()
        status = page.locator("#tune-status")
        expect(status).to_contain_text(re.compile(r"trial \d/4"), timeout=60_000)  # live: trials counted
        expect(status).to_contain_text("finished", timeout=300_000)
        expect(status).to_contain_text(re.compile(r"best so far: trial \d, macro F1 \d\.\d{3}"))
        expect(status).to_contain_text("Held-back test")
        table = page.locator("#tune-trials")
        expect(table).to_contain_text("lr=", timeout=60_000)
        expect(table).to_contain_text(re.compile("complete|pruned"))
        assert table.text_content().count("lr=") >= 4  # one settings cell per trial
        expect(page.locator("#tune-plot img")).to_be_visible(timeout=30_000)

        page.locator("#tune-train-best").click()
        expect(status).to_contain_text("Training the best settings as run", timeout=30_000)
        _wait_finished(root, "runs/*/*/status.json", 300)  # that run, queued like any other

        # Evaluate tab: the Runs table lists the search and the run of its best settings
        page.get_by_role("tab", name=re.compile("Evaluate")).click()
        runs = page.locator("#runs-view")
        runs.get_by_text("Runs: compare, rename").click()
        page.locator("#runs-view").get_by_role("button", name="Refresh").click()
        expect(page.locator("#runs-table")).to_contain_text("best found settings", timeout=60_000)
        sort = runs.get_by_label("Sort by")
        sort.click()  # the list opens below the fold: pick by typing, as a keyboard user does
        sort.fill("macro F1")
        sort.press("ArrowDown")
        sort.press("Enter")
        expect(sort).to_have_value("macro F1")
        page.wait_for_timeout(3000)  # the sorted table replaces the old one
        tune_f1 = _f1(root, "runs/*/*/tune.json", lambda d: d["best"]["value"])
        best_f1 = _f1(root, "runs/*/*/metrics.json", lambda d: d["f1_macro"])
        text = page.locator("#runs-table").text_content()
        first_tune = text.index("find settings (frozen") < text.index("best found settings")
        if tune_f1 != best_f1:  # the higher macro F1 first
            assert first_tune == (tune_f1 > best_f1), (tune_f1, best_f1, text)

        boxes = page.locator("#runs-chosen").get_by_role("checkbox")
        expect(boxes).to_have_count(2, timeout=30_000)
        boxes.nth(0).check()
        boxes.nth(1).check()
        # a search validates on its own share of the clips, so the table says the two scores do not rank them
        expect(page.locator("#runs-note")).to_contain_text("Not comparable", timeout=60_000)
        diff = page.locator("#runs-diff")
        expect(diff).to_contain_text("task", timeout=30_000)  # a search vs a training
        expect(diff).not_to_contain_text("output")  # where a run lives is no setting
        expect(page.locator("#runs-view img")).to_be_visible(timeout=30_000)  # their curves overlaid
        assert not errors, errors
        browser.close()
