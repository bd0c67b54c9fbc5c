"""Find good settings and compare runs in a real browser (headless Debian Chromium): a search of a few trials on
the tiny local model from the Train tab, its live trials table and score plot, the best shown; "Train the best";
then the Evaluate tab's Runs table sorted by macro F1 and the two runs compared (only the settings that differ,
their curves overlaid). Skipped without /usr/bin/chromium, except under CI."""

from __future__ import annotations

import re

import pytest
from browser_helpers import ARGS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def _patient_startup_check():
    """Gradio's launch gives the page 3 s to answer; on a shared 2-core machine under load the first render of
    the whole app takes longer (as in test_browser_review), so give it 60 s."""
    import httpx
    from gradio import networking

    def url_ok(url: str) -> bool:
        try:
            return httpx.head(url, timeout=60, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308)
        except httpx.HTTPError:
            return False

    patch = pytest.MonkeyPatch()
    patch.setattr(networking, "url_ok", url_ok)
    yield
    patch.undo()


CELLS = """(id) => Array.from(document.querySelectorAll('#' + id + ' tbody tr')).map(tr =>
    Array.from(tr.querySelectorAll('td')).map(td => {
        const field = td.querySelector('input, textarea');
        return ((td.textContent || '').trim() || (field ? field.value : '')).trim(); }))"""


def _table(page, elem_id: str, rows: int = 1) -> list[list[str]]:
    """The rows of a Gradio Dataframe (cell texts), once it shows `rows` filled rows."""
    page.wait_for_function(f"(id) => {{ const rows = ({CELLS})(id).filter(r => r.some(c => c !== ''));"
                           f" return rows.length >= {rows}; }}", arg=elem_id, timeout=60_000)
    return [r for r in page.evaluate(CELLS, elem_id) if any(r)]


def _score(text: str) -> float:
    return float(text.split("±")[0]) if re.match(r"^\d", text or "") else -1.0


def test_find_settings_then_sort_and_compare_runs(app, chromium_path):
    from playwright.sync_api import expect, sync_playwright

    url, _root = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        page = browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.locator("#data-summary").get_by_text("Ready to train").wait_for(timeout=120_000)

        # Train tab: mode frozen (each trial a head fit on one cached pass), a search of 4 trials
        page.get_by_role("tab", name=re.compile("Train")).click()
        page.locator("#mode-choice").get_by_label("frozen").check()
        box = page.locator("#tune-box")
        box.get_by_text("Find good settings (search").click()  # open the accordion
        trials = box.get_by_label("Trials")
        trials.fill("4")
        trials.press("Tab")
        page.locator("#tune-start").click()
        status = page.locator("#tune-status")
        expect(status).to_contain_text(re.compile(r"trial \d/4"), timeout=60_000)  # live: trials counted
        expect(status).to_contain_text("finished", timeout=300_000)
        expect(status).to_contain_text(re.compile(r"best so far: trial \d, macro F1 \d\.\d{3}"))
        expect(status).to_contain_text("Held-back test")
        rows = _table(page, "tune-trials", 4)
        assert [r[0] for r in rows] == ["0", "1", "2", "3"], rows
        assert all(r[2] in ("complete", "pruned") and "lr=" in r[3] for r in rows), rows
        expect(page.locator("#tune-plot img")).to_be_visible(timeout=30_000)

        page.locator("#tune-train-best").click()
        expect(status).to_contain_text("Training the best settings as run", timeout=30_000)
        expect(page.locator("#train-status")).to_contain_text("Finished", timeout=300_000)

        # Evaluate tab: the Runs table lists the search and the run of its best settings
        page.get_by_role("tab", name=re.compile("Evaluate")).click()
        runs = page.locator("#runs-view")
        runs.get_by_text("Runs: compare, rename").click()
        page.locator("#runs-view").get_by_role("button", name="Refresh").click()
        expect(page.locator("#runs-table")).to_contain_text("best found settings", timeout=60_000)
        sort = runs.get_by_label("Sort by")
        sort.click()
        page.get_by_role("option", name="macro F1").click()
        header = page.evaluate("() => Array.from(document.querySelectorAll('#runs-table thead th'))"
                               ".map(th => th.innerText.trim())")
        col = next(i for i, h in enumerate(header) if h.startswith("macro F1"))
        page.wait_for_timeout(1500)  # the sorted table replaces the old one
        f1 = [_score(r[col]) for r in _table(page, "runs-table", 2)]
        assert len(f1) >= 2 and f1 == sorted(f1, reverse=True), f1

        boxes = page.locator("#runs-chosen").get_by_role("checkbox")
        expect(boxes).to_have_count(2, timeout=30_000)
        boxes.nth(0).check()
        boxes.nth(1).check()
        expect(page.locator("#runs-note")).to_contain_text("setting(s) differ", timeout=60_000)
        diff = [r[0] for r in _table(page, "runs-diff", 1)]
        assert "task" in diff and "output" not in diff, diff  # a search vs a training; where they live is no setting
        assert not errors, errors
        browser.close()
