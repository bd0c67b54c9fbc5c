"""From unlabeled recordings to a trained model in a real browser: upload a pool of tone recordings, build it,
search by a clip, hear a window from the pool's embedding map, label 10 proposals with the keyboard, a label-next
round with the head's cross-validated accuracy, "Use these labels", train one epoch.
Skipped without /usr/bin/chromium, except under CI."""

from __future__ import annotations

import json
import re

import pytest
from browser_helpers import ready_page
from pool_helpers import CLASSES, tone

from astapp.data.synth import write_wav

pytestmark = [pytest.mark.browser, pytest.mark.slow]
KEYS = {name: str(i + 1) for i, name in enumerate(CLASSES)}  # keys 1-3 = low, high, top


def _answer_proposals(page, expect, count: int, whole_round: bool) -> None:
    """Answer `count` proposals with the class key of the file each one comes from (the oracle is the name)."""
    stats, keys = page.locator("#pool-round-stats"), page.locator("#pool-keys textarea")
    for i in range(count):
        expect(stats).to_contain_text(f"Proposal {i + 1} of", timeout=30_000)
        name = re.search(r"Proposal \d+ of \d+: (\S+)", stats.inner_text()).group(1)
        keys.press(KEYS[next(c for c in CLASSES if name.startswith(c))])
        expect(page.locator("#pool-answer-note")).to_contain_text("Labelled 1 window(s)", timeout=30_000)
        expect(keys).to_have_value("")
    if whole_round:
        expect(stats).to_contain_text("round done", timeout=30_000)


def test_pool_search_label_next_use_and_train(app, chromium_path, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # a busy 2-core machine: every step may take seconds
    url, root = app
    files = [
        write_wav(tmp_path / f"{name}_{i}.wav", tone(freq, 1.5, 10 * i + k))
        for k, (name, freq) in enumerate(CLASSES.items())
        for i in range(4)
    ]
    query = write_wav(tmp_path / "query.wav", tone(CLASSES["high"], 1.2, 99))
    with sync_playwright() as p:
        errors: list[str] = []
        browser, page = ready_page(p, chromium_path, url, errors)
        page.locator("#pool-box").get_by_text("start from unlabeled recordings").click()

        page.locator("#pool-files input[type=file]").set_input_files([str(f) for f in files])
        expect(page.locator("#pool-files")).to_contain_text("top_3")  # all 12 uploaded
        page.locator("#pool-build").click()
        expect(page.locator("#pool-summary")).to_contain_text(
            re.compile(r"Pool: \d+ windows"), timeout=180_000
        )

        page.locator("#pool-query input[type=file]").set_input_files(str(query))
        page.locator("#pool-search").click()
        hits = page.locator("#pool-hits")
        expect(hits).to_contain_text("high_", timeout=60_000)
        expect(hits.locator("tbody tr").first).to_contain_text("high_")  # the query's class first

        page.locator("#pool-map-box").get_by_text("embedding map").click()
        page.locator("#pool-map-btn").click()
        picture = page.locator("#pool-map img")
        expect(picture).to_be_visible(timeout=90_000)
        picture.click(position={"x": 160, "y": 160})
        expect(page.locator("#pool-map-note")).to_contain_text(re.compile(r"Window #\d+"), timeout=60_000)
        assert page.locator("#pool-window input").input_value() != ""  # the clicked window is the next query

        page.locator("#pool-classes textarea").fill(", ".join(CLASSES))
        page.locator("#pool-next").click()  # round 1: nothing labelled yet, proposals spread over the pool
        expect(page.locator("#pool-round-stats")).to_contain_text("Round 1", timeout=60_000)
        _answer_proposals(page, expect, 10, whole_round=True)
        page.locator("#pool-next").click()  # round 2: a head on the 10 labels, its cross-validated accuracy
        stats = page.locator("#pool-round-stats")
        expect(stats).to_contain_text("Round 2", timeout=60_000)
        expect(stats).to_contain_text("10 labels used")
        expect(stats).to_contain_text(
            re.compile(r"cross-validated accuracy (\d\.\d{3} over \d folds|not yet)")
        )
        _answer_proposals(page, expect, 2, whole_round=False)

        page.locator("#pool-use").click()
        summary = page.locator("#data-summary")
        expect(summary).to_contain_text("Your labelled pool", timeout=60_000)
        expect(summary).to_contain_text("Ready to train")

        page.get_by_role("tab", name=re.compile("Train")).click()
        epochs = page.get_by_label("Epochs").first  # the Train form's (the distill panel has one too)
        epochs.fill("1")
        epochs.press("Tab")
        page.locator("#start-btn").click()
        expect(page.locator("#train-status")).to_contain_text("Finished", timeout=300_000)
        assert not errors, errors
        browser.close()

    logs = list(root.glob("workspaces/*/pool/labels.jsonl"))
    assert len(logs) == 1
    acts = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert len(acts) == 12 and all(
        a["key"].startswith(a["label"] + "_") for a in acts
    )  # each key gave its class
