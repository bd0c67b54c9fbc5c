"""What the launched page is given besides its tabs: the frontend strings Gradio lacks."""

from __future__ import annotations

import json
import urllib.request

import pytest
from app_helpers import free_port


@pytest.fixture(scope="module")
def demo(built_app):
    """These tests read what the page is given; building it is what they cost, so they share the session's."""
    return built_app


def test_the_page_has_words_for_the_status_trackers_complete_key(demo):
    """The screen-reader live region reads i18n("common.complete") after each event; Gradio 6.31 ships no
    such key outside its chatbot strings, so without ours it read the key itself."""
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as r:
            config = json.load(r)
    finally:
        demo.close()
    assert config["i18n_translations"]["en"]["common.complete"] == "Done"


def test_narrow_window_layout_classes_are_used_and_styled(demo):
    """At 800 px the Augment players wrap (under the figure), and the Data clips sit in one grid; both are
    classes the app's CSS styles (checked by eye in a headless Chromium at 800 px)."""
    from astapp.ui.app import CSS

    classes = [c.get("props", {}).get("elem_classes") or [] for c in demo.config["components"]]
    for name in ("astapp-players", "astapp-clip-grid"):
        assert any(name in cs for cs in classes), name
        assert f".{name}" in CSS, name
    grid = next(c for c in demo.config["components"] if "astapp-clip-grid" in (c["props"].get("elem_classes") or []))
    players = [c for c in demo.config["components"] if str(c["props"].get("label", "")).startswith("clip ")]
    assert len(players) >= 8 and grid["type"] == "row"
    assert "#val-split" in CSS


def _deps(demo):
    from astapp.ui.common import HEAVY_ID

    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in demo.config["components"]}
    labels = {}  # the first control of each label: the Train form's (panels below it may reuse a label)
    for c in demo.config["components"]:
        labels.setdefault(c.get("props", {}).get("label"), c["id"])
    deps = demo.config["dependencies"]
    for d in deps:  # the config leaves the concurrency group out: take it from the event itself
        d["heavy"] = demo.fns[d["id"]].concurrency_id == HEAVY_ID
    return deps, ids, labels


def test_every_saved_control_change_is_sent_on_its_own_and_queue_free(demo):
    """Issue 31: with trigger_mode "always_last" the page holds a change back while a save is in flight and
    sends it only if that save ends normally, so a change could be lost (mixup 0.5 never arrived). Each
    change of the Augment settings or the Train form now sends its own stamped save (the server keeps the
    newest), as a plain request that waits neither for the queue nor for the page's event stream."""
    from astapp.ui.common import STAMP_JS

    deps, ids, labels = _deps(demo)
    saves = [d for d in deps if d.get("js") == STAMP_JS and not d["outputs"]]
    watched = {t[0] for d in saves for t in d["targets"]}
    for control in (ids["mixup"], ids["augment-seed"], ids["augment-preset"], labels["Epochs"]):
        assert control in watched, control
    assert len(saves) == 2 and all(d["trigger_mode"] == "multiple" and d["queue"] is False for d in saves)


def test_the_cheap_restores_run_at_load_beside_the_dataset_restore(demo):
    """Issue 31: the Augment and Train restores read only state.json; they follow the load event directly,
    beside the CPU-heavy dataset restore, instead of after it (where a slow dataset held them back seconds,
    and a restore arriving after the user's first edit put the older values back). The split controls and
    the clip list, which need the dataset, follow the dataset restore."""
    deps, ids, labels = _deps(demo)
    load = next(d["id"] for d in deps if any(t[1] == "load" for t in d["targets"]))
    after_load = [d for d in deps if d.get("trigger_after") == load]
    restores = {frozenset(d["outputs"]): d for d in after_load}
    assert any(ids["mixup"] in o and ids["augment-preset"] in o for o in restores), "augment restore at load"
    assert any(labels["Epochs"] in o and ids["val-fold"] not in o for o in restores), "train form at load"
    heavy = [d for d in after_load if d["heavy"]]
    assert len(heavy) == 1 and ids["data-summary"] in heavy[0]["outputs"], "the dataset restore, heavy, beside"
    chain, tail = [heavy[0]], heavy[0]
    while nxt := [d for d in deps if d.get("trigger_after") == tail["id"]]:
        tail = nxt[0]
        chain.append(tail)
    outputs = {o for d in chain for o in d["outputs"]}
    assert {ids["val-fold"], ids["augment-clip"]} <= outputs
