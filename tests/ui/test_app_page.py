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
