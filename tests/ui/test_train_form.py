"""The Train form is built from the settings table: its fields, their controls and the API's parameters."""

from __future__ import annotations

import gradio as gr

from astapp.core.config import FORM_FIELDS, SETTINGS, setting
from astapp.ui.train_form import SLIDER_STEPS, control, restored


def test_every_form_field_is_a_labelled_setting_listed_once():
    paths = {s.path for s in SETTINGS}
    assert len(set(FORM_FIELDS)) == len(FORM_FIELDS) and set(FORM_FIELDS) <= paths
    assert all(setting(name).label for name in FORM_FIELDS)


def test_a_control_follows_its_settings_kind_range_label_and_hint():
    with gr.Blocks():
        share = control("val_split", 0.2)  # a form range of few steps: a slider
        epochs = control("epochs", 5.0)  # a wide range: a number box
        rank = control("lora_rank", 8)
        weighted = control("class_weighted", False)
        metric = control("metric", "accuracy")  # fixed choices: a dropdown of exactly those
        fold = control("val_fold", "auto", choices=[("auto", "auto")])  # choices found at run time
        length = control("max_length", "auto")
        mode = control("mode", "full")
    lo, hi, step = setting("val_split").form
    assert isinstance(share, gr.Slider) and (share.minimum, share.maximum, share.step) == (lo, hi, step)
    assert (hi - lo) / step <= SLIDER_STEPS
    assert isinstance(epochs, gr.Number) and epochs.precision is None and epochs.label == "Epochs"
    assert isinstance(rank, gr.Number) and rank.precision == 0 and (rank.minimum, rank.maximum) == (1, 256)
    assert rank.info == setting("lora_rank").info and rank.elem_id == "lora-rank"
    assert isinstance(weighted, gr.Checkbox) and weighted.label == setting("class_weighted").label
    assert isinstance(metric, gr.Dropdown) and [v for _, v in metric.choices] == list(setting("metric").choices)
    assert not metric.allow_custom_value
    assert isinstance(fold, gr.Dropdown) and fold.allow_custom_value and fold.elem_id == "val-fold"
    assert isinstance(length, gr.Textbox) and length.value == "auto" and length.elem_id == "max-length"
    assert isinstance(mode, gr.Radio) and "lora" in [v for _, v in mode.choices]


def test_restored_fills_every_field_in_form_order():
    saved = {name: f"v-{name}" for name in FORM_FIELDS}
    updates = restored(saved, {"folds": ["1", "2"], "auto_fold": "2"})
    expected = {**saved, "val_fold": "auto"}  # a fold the dataset lacks falls back to auto
    assert [u["value"] for u in updates] == [expected[name] for name in FORM_FIELDS]
    assert updates[FORM_FIELDS.index("val_fold")]["visible"] is True


def test_the_apps_training_endpoints_take_the_form_fields_by_name(built_app):
    api = built_app.get_api_info()["named_endpoints"]
    names = {n: [p["parameter_name"] for p in api[n]["parameters"]] for n in
             ("/start_training", "/training_command", "/start_cv")}
    assert names["/start_training"] == names["/training_command"] == list(FORM_FIELDS)
    assert names["/start_cv"] == ["folds", "final", *FORM_FIELDS]


def test_the_mode_hint_warns_that_augmentation_costs_a_fast_mode_its_cache():
    from astapp.core.config import DEFAULT_MODEL
    from astapp.ui.train_form import mode_hint

    for mode in ("frozen", "last-2"):
        plain, augmented = mode_hint(DEFAULT_MODEL, mode, "cpu"), mode_hint(DEFAULT_MODEL, mode, "cpu", True)
        assert "one-off cache" not in plain
        assert "one-off cache" in augmented and "about 4 min instead of seconds" in augmented
        assert "**Augment**" in augmented  # where to turn it off
    for mode in ("full", "lora"):  # nothing is cached there: nothing is lost
        assert mode_hint(DEFAULT_MODEL, mode, "cpu", True) == mode_hint(DEFAULT_MODEL, mode, "cpu")


def test_the_train_tabs_hint_follows_the_sessions_saved_augmentation(tmp_path):
    from astapp.core.config import DEFAULT_MODEL, AugmentConfig
    from astapp.jobs.manager import JobManager
    from astapp.service import Service
    from astapp.ui import train_tab
    from astapp.ui.common import new_token

    svc = Service(JobManager(tmp_path, start=False), hub_online=False)
    with gr.Blocks() as demo:
        tab = train_tab.build(svc, gr.State(None))
    tok = new_token()
    assert "one-off cache" not in tab.hint_fn(tok, DEFAULT_MODEL, "frozen", None)[1]
    svc.augmenting.save(svc.open(tok), AugmentConfig(preset="classic"))
    assert "one-off cache" in tab.hint_fn(tok, DEFAULT_MODEL, "frozen", None)[1]
    # Augmentation is set in another tab: opening the Train tab refreshes the hint.
    hint_id = next(c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "mode-hint")
    triggers = [d["targets"] for d in demo.config["dependencies"] if hint_id in d["outputs"]]
    assert any([tab.tab._id, "select"] in [list(t) for t in ts] for ts in triggers)


def test_stop_with_nothing_running_clears_the_last_runs_bar_and_curves(tmp_path):
    from astapp.jobs.manager import JobManager
    from astapp.service import Service
    from astapp.ui import train_tab

    progress, loss, lr, metric, log = train_tab.after_stop(train_tab.NOTHING_TRAINING)
    assert "width:0%" in progress and (loss, lr, metric, log) == (None, None, None, "")
    kept = train_tab.after_stop(f"{train_tab.STOPPING_BADGE}\n\n{train_tab.STOPPING_TEXT}")
    assert all(u == gr.update() for u in kept)  # a real stop keeps the curves: the run is still ending
    svc = Service(JobManager(tmp_path, start=False), hub_online=False)
    with gr.Blocks() as demo:
        train_tab.build(svc, gr.State(None))
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in demo.config["components"]}
    stop = next(d for d in demo.config["dependencies"] if d.get("api_name") == "stop_training")
    after = [d for d in demo.config["dependencies"] if d.get("trigger_after") == stop["id"]]
    assert any(ids["train-progress"] in d["outputs"] and ids["loss-plot"] in d["outputs"] for d in after)


def test_the_cli_command_box_wraps_long_lines(tmp_path):
    from astapp.jobs.manager import JobManager
    from astapp.service import Service
    from astapp.ui import train_tab

    svc = Service(JobManager(tmp_path, start=False), hub_online=False)
    with gr.Blocks() as demo:
        train_tab.build(svc, gr.State(None))
    cli = next(c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "train-cli")
    assert cli["props"]["wrap_lines"] is True
