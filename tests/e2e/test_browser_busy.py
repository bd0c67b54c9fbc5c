"""Issue 24 item 1 in a real browser: with other tabs of the app open (one streaming Listen live from
Chromium's fake microphone, one more following the same run) and the CPU busy, the Train tab keeps
updating and Stop answers at once.

The app runs as deployed (`python app.py`, its own process) and the page times itself: every change of the
status or progress it shows and the Stop click's input time (a MutationObserver and the event's timeStamp).
An earlier version ran the app inside this test's process and timed the page by polling it through
Playwright: the polls and the click then waited on the server's GIL, held by the training thread, and that
wait was counted as the page's (a 5.2 s "gap" on a quiet machine). What held a real page up, measured with
this scenario: every poll re-sent the three line plots (now at most every 5 s, `astapp.ui.train_curves`),
and training shared the server's process (now a child process at nice 10, `astapp.jobs.child`). On a
loaded machine the message says where the time went: each tab's main-thread work (Chrome's metrics) and
each process's CPU. Skipped without /usr/bin/chromium, except under CI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser_helpers import (
    fill_and_keep,
    launch_with_microphone,
    open_app,
    tone_dataset,
    tone_microphone,
    upload_dataset,
)

# Opt-in (ASTAPP_BUSY_BROWSER=1): its limits are wall-clock times, and timed tests do not belong in the suite
# (these machines are noisy and differ). On a quiet 2-core machine with only its own load (the hog, training,
# Listen live, Chromium) it passed 14 of 16 with training in its own process (9 of 9 in a row on a fresh
# machine; longest gap 2.97 s), and 1 of 2 on the worker thread (docs/BENCHMARKS.md section 30); at load 10
# from other work it misses by a second either way.
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("ASTAPP_BUSY_BROWSER") != "1",
                                 reason="opt-in: ASTAPP_BUSY_BROWSER=1 (timing thresholds under a CPU hog)")]
GAP_S, STOP_S, WATCH_S = 3.0, 2.0, 15.0
FOLLOWERS = 1  # with Listen live and the Train tab: 3 tabs of one browser (4 not measured since the fix)


def _train(page, epochs: str) -> None:
    """Start a run of `epochs` (typed again if the page's restore of the saved form overwrote it)."""
    page.get_by_role("tab", name=re.compile("Train")).click()
    fill_and_keep(page, page.get_by_label("Epochs"), epochs)
    page.locator("#start-btn").click()


# What the user sees, timed in the page itself (not by this test's polling, which waits on Playwright and on
# this process): every change of the status or progress text, the Stop click's input time (event.timeStamp: when
# the input reached the page, so a busy main thread's delay counts), the page's long tasks (over 50 ms).
MAIN_THREAD = """window.__busy = {tasks: [], clicks: [], changes: []};
try { new PerformanceObserver(l => l.getEntries().forEach(e => window.__busy.tasks.push(
  [e.startTime + performance.timeOrigin, e.duration]))).observe({type: 'longtask', buffered: true}); } catch (e) {}
document.addEventListener('click', e => window.__busy.clicks.push(
  [e.timeStamp + performance.timeOrigin, e.target.closest('#stop-btn') ? 'stop' : '']), true);
window.__watch = () => {
  const parts = ['#train-status', '#train-progress'].map(q => document.querySelector(q));
  const text = () => parts.map(el => el ? el.innerText : '').join(' | ');
  let seen = text();
  new MutationObserver(() => { const now = text();
    if (now !== seen) { seen = now; window.__busy.changes.push([Date.now(), now.slice(0, 120)]); } })
    .observe(document.body, {subtree: true, childList: true, characterData: true});
};"""


def _busy(page, since: float) -> str:
    """The page's main thread since `since` (epoch s): its long tasks' share and when a click reached it."""
    m = page.evaluate("() => window.__busy")
    tasks = [d for t, d in m["tasks"] if t >= since * 1000]
    span = max(1e-3, time.time() - since)
    click = [round(c / 1000 - since, 2) for c, _ in m["clicks"] if c >= since * 1000]
    return (f"main thread in long tasks {sum(tasks) / 10 / span:.0f} % of {span:.1f} s (longest "
            f"{max(tasks or [0]) / 1000:.1f} s); the click reached the page after {click} s; load {os.getloadavg()}")


WORK = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


def _work(cdps: dict, before: dict | None = None) -> dict:
    """Each tab's main-thread work (Chrome's Performance metrics: seconds its tasks ran, of which script, layout
    and style), or with `before`, its share of the wall time since then: work done, not time spent waiting for a
    CPU, which is what tells a page that is busy from one that is starved."""
    now = {}
    for name, cdp in cdps.items():
        now[name] = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        now[name]["at"] = time.time()
    if before is None:
        return now
    shares = {}
    for name in cdps:
        span = max(1e-3, now[name]["at"] - before[name]["at"])
        shares[name] = " ".join(f"{k.removesuffix('Duration').lower()} {100 * (now[name][k] - before[name][k]) / span:.0f} %"
                                for k in WORK)
    return shares


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the app's process and each Chromium process, by its type (renderer, gpu-process...)."""
    out: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmd = (stat.parent / "cmdline").read_bytes().split(b"\0")
            if b"chrom" in cmd[0]:  # Chromium rewrites its command line into one string
                kind = re.search(rb"--type=([\w-]+)", b" ".join(cmd))
                kind = kind.group(1).decode() if kind else "browser"
            elif any(c.endswith(b"app.py") for c in cmd):
                kind = "app.py"
            elif any(b"multiprocessing.forkserver" in c for c in cmd):
                kind = "training"  # the app's fork server and the run it forked (same command line)
            else:
                continue
            ticks = stat.read_text().rsplit(")", 1)[1].split()
            key = f"{kind}:{stat.parent.name}"
            out[key] = (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return out


def _cpu_share(before: dict[str, float], span: float) -> str:
    """Each of those processes' share of one core since `before` (the busiest first)."""
    now = _cpu_seconds()
    shares = sorted(((k, (v - before.get(k, 0.0)) / span) for k, v in now.items()), key=lambda kv: -kv[1])
    return ", ".join(f"{k.split(':')[0]} {100 * v:.0f} %" for k, v in shares if v >= 0.01)


def _gaps(page, since: float, until: float) -> list[float]:
    """Seconds between the status/progress changes the page painted in [since, until] (its edges included)."""
    times = [t / 1000 for t, _ in page.evaluate("() => window.__busy.changes") if since * 1000 <= t <= until * 1000]
    edges = [since, *times, until]
    return [round(b - a, 2) for a, b in zip(edges, edges[1:], strict=False)]


def _stop_latency(page) -> float | None:
    """Seconds from the Stop click's input to the page's first status text with "Stopping" in it."""
    m = page.evaluate("() => window.__busy")
    clicks = [t for t, what in m["clicks"] if what == "stop"]
    shown = [t for t, text in m["changes"] if clicks and t >= clicks[-1] and "Stopping" in text]
    return (shown[0] - clicks[-1]) / 1000 if shown else None


def _evals_after(root, run_id: str, since: float) -> list[float]:
    """The epochs the run evaluated after `since` (epoch s; the same clock as the page's on this machine)."""
    hist = next(root.glob(f"runs/*/{run_id}/history.jsonl"), None)
    events = [json.loads(line) for line in hist.read_text().splitlines() if line.strip()] if hist else []
    return [e["epoch"] for e in events if e.get("type") == "eval" and e.get("time", 0) >= since]


def _stop_clicked(page) -> float:
    """When the Stop click's input reached the page (epoch s)."""
    return max(t for t, what in page.evaluate("() => window.__busy")["clicks"] if what == "stop") / 1000


def test_train_tab_updates_and_stop_answers_with_listen_live_open_and_a_busy_cpu(app_process, chromium_path, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, root = app_process
    zip_path = tone_dataset(tmp_path / "tones")
    mic = tone_microphone(tmp_path / "mic.wav")
    hogs: list[subprocess.Popen] = []
    with sync_playwright() as p:
        browser, context = launch_with_microphone(p, chromium_path, mic)
        context.add_init_script(MAIN_THREAD)
        errors: list[str] = []
        train = open_app(context, url, errors)
        upload_dataset(train, zip_path)
        _train(train, "1")  # a model for Listen live
        expect(train.locator("#train-status")).to_contain_text("Finished", timeout=180_000)

        listen = train  # this tab now streams Listen live (as in test_browser_listen)...
        listen.get_by_role("tab", name=re.compile("Predict")).click()
        expect(listen.locator("#predict-run input")).not_to_have_value("", timeout=60_000)
        listen.get_by_text("Listen live (microphone)").click()
        listen.locator("#listen-mic .record-button").click()
        expect(listen.locator("#listen-info")).to_contain_text(re.compile("Listening|heard"), timeout=120_000)
        train = open_app(context, url, errors)  # ...and a second tab of the same browser trains
        expect(train.locator("#data-summary")).to_contain_text("tones.zip", timeout=60_000)

        try:
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])]  # a CPU hog, beside the training
            train.bring_to_front()
            _train(train, "200")  # a long run: it ends on the Stop request
            status = train.locator("#train-status")
            expect(status).to_contain_text("Running", timeout=60_000)
            for _ in range(FOLLOWERS):  # more tabs of the app, following the same run
                follower = open_app(context, url, errors)
                expect(follower.locator("#data-summary")).to_contain_text("tones.zip", timeout=60_000)
                follower.get_by_role("tab", name=re.compile("Train")).click()
                expect(follower.locator("#train-status")).to_contain_text("Running", timeout=60_000)
            train.bring_to_front()

            cdps = {"train": context.new_cdp_session(train), "listen": context.new_cdp_session(listen)}
            for cdp in cdps.values():
                cdp.send("Performance.enable")
            train.evaluate("() => window.__watch()")
            watched, work, cpu = time.time(), _work(cdps), _cpu_seconds()
            train.wait_for_timeout(WATCH_S * 1000)
            gaps = _gaps(train, watched, time.time())
            print(f"status gaps {gaps}; {_busy(train, watched)}; tabs' main-thread work: {_work(cdps, work)}; "
                  f"CPU: {_cpu_share(cpu, time.time() - watched)}")
            assert max(gaps) <= GAP_S, f"the status stood still for {max(gaps):.1f} s: {gaps}; {_busy(train, watched)}"
            assert "Running" in status.inner_text(), status.inner_text()

            run_id = re.search(r"run (\d{8}-\d{6}-\w+)", status.inner_text()).group(1)
            clicked = time.time()
            train.locator("#stop-btn").click()
            expect(status).to_contain_text("Stopping", timeout=30_000)
            answered = _stop_latency(train)
            print(f"Stop answered after {answered} s; {_busy(train, clicked)}")
            assert answered is not None and answered <= STOP_S, f"Stop answered after {answered} s; {_busy(train, clicked)}"
            expect(status).to_contain_text("Stopped", timeout=120_000)
            # the epoch under way may end with its evaluation; no other starts (the count goes from the click the
            # page received: Playwright takes seconds to deliver one on a busy machine, and epochs go on meanwhile)
            late = _evals_after(root, run_id, _stop_clicked(train))
            assert len(late) <= 1, f"the stop was not honoured before the next epoch: evaluated {late} after it"
        finally:
            for hog in hogs:
                hog.kill()
        assert not errors, errors
        browser.close()
