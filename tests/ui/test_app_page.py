"""What the launched page is given besides its tabs: the frontend strings Gradio lacks."""

from __future__ import annotations

import json
import urllib.request

from app_helpers import launched


def test_the_page_has_words_for_the_status_trackers_complete_key(tmp_path):
    """The screen-reader live region reads i18n("common.complete") after each event; Gradio 6.31 ships no
    such key outside its chatbot strings, so without ours it read the key itself."""
    from astapp.jobs.manager import JobManager

    manager = JobManager(tmp_path, start=False)
    with launched(manager) as url, urllib.request.urlopen(url + "config", timeout=30) as r:
        config = json.load(r)
    assert config["i18n_translations"]["en"]["common.complete"] == "Done"


def test_narrow_window_layout_classes_are_used_and_styled(tmp_path):
    """At 800 px the Augment players wrap (under the figure), and the Data clips sit in one grid; both are
    classes the app's CSS styles (checked by eye in a headless Chromium at 800 px)."""
    from astapp.jobs.manager import JobManager
    from astapp.ui.app import CSS, build_app

    demo = build_app(JobManager(tmp_path, start=False), hub_online=False)
    classes = [c.get("props", {}).get("elem_classes") or [] for c in demo.config["components"]]
    for name in ("astapp-players", "astapp-clip-grid"):
        assert any(name in cs for cs in classes), name
        assert f".{name}" in CSS, name
    grid = next(c for c in demo.config["components"] if "astapp-clip-grid" in (c["props"].get("elem_classes") or []))
    players = [c for c in demo.config["components"] if str(c["props"].get("label", "")).startswith("clip ")]
    assert len(players) >= 8 and grid["type"] == "row"
    assert "#val-split" in CSS
