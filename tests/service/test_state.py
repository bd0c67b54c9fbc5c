"""Session state under out-of-order events (issue 31): a page's events can finish in another order than
the page sent them (a preview asked for before a change, still computing when the change is saved), so
a write from an older event must never put older values over a newer edit of the same page."""

from __future__ import annotations

import threading

import pytest
from fake_train import make_fake_train
from jobs.test_sessions import make_run

from astapp.core.config import AugmentConfig
from astapp.jobs.manager import JobManager
from astapp.service import Service

PAGE = "page-1"


@pytest.fixture
def svc(tmp_path):
    hold = threading.Event()
    manager = JobManager(tmp_path / "data", train_fn=make_fake_train(steps=4, hold=hold))
    yield Service(manager, hub_online=False)
    hold.set()
    manager.shutdown(timeout=5)


def test_two_augment_edits_applied_in_the_wrong_order_keep_the_newer_one(svc):
    s = svc.open("tok")
    newer = AugmentConfig(preset="classic", mixup=0.5)
    svc.augmenting.save(s, newer, seed=7, stamp=(PAGE, 2_000.0))  # the change the user made last, saved first
    # ...then the preview the page asked for before that change ends, carrying the values of its time
    svc.augmenting.save(s, AugmentConfig(), clip="tone/0.wav", seed=0, stamp=(PAGE, 1_000.0))
    assert svc.augmenting.settings(s) == newer
    assert svc.state(s).preview == {"clip": "tone/0.wav", "seed": 7}  # the clip nobody changed later is kept

    svc.augmenting.save(s, AugmentConfig(preset="light"), seed=3, stamp=(PAGE, 3_000.0))  # in order: applied
    assert svc.augmenting.settings(s).preset == "light" and svc.state(s).preview["seed"] == 3


def test_form_edits_merge_field_by_field_and_the_newer_wins(svc):
    s = svc.open("tok")
    svc.training.save_form(s, {"epochs": 3, "lr": 0.002}, stamp=(PAGE, 2_000.0))
    svc.training.save_form(s, {"epochs": 1, "lr": 0.001, "batch_size": 8}, stamp=(PAGE, 1_000.0))
    form = svc.training.form(s)
    assert (form["epochs"], form["lr"], form["batch_size"]) == (3, 0.002, 8)


def test_other_pages_and_unstamped_calls_are_never_dropped(svc):
    """Stamps are one page's clock: another tab (or device, whose clock may be off) and API or CLI calls
    always count as the newest, as before."""
    s = svc.open("tok")
    svc.training.save_form(s, {"epochs": 3}, stamp=(PAGE, 9e12))
    svc.training.save_form(s, {"epochs": 4}, stamp=("page-2", 1.0))
    assert svc.training.form(s)["epochs"] == 4
    svc.training.save_form(s, {"epochs": 5})
    assert svc.training.form(s)["epochs"] == 5
    svc.augmenting.save(s, AugmentConfig(preset="classic"), stamp=(PAGE, 9e12))
    svc.augmenting.save(s, AugmentConfig(preset="light"))
    assert svc.augmenting.settings(s).preset == "light"


def test_concurrent_stamped_edits_end_with_the_newest(svc):
    """Many writers racing the read-modify-write: whatever order the lock lets them in, the newest
    stamp's value is what stays."""
    s = svc.open("tok")
    order = list(range(40))
    order.reverse()  # the newest first: every later one is older and must lose
    threads = [threading.Thread(target=svc.training.save_form, args=(s, {"epochs": i + 1}), kwargs={"stamp": (PAGE, float(i))})
               for i in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert svc.training.form(s)["epochs"] == 40


def _run(svc, session, run_id: str, created: float, accuracy: float = 0.412) -> None:
    make_run(svc.root, session.owner, run_id, created=created, metrics={"accuracy": accuracy, "f1_macro": 0.3})


def test_pickers_follow_the_newest_run_unless_the_user_picked_one_since(svc):
    """Issue 24 item 3: Evaluate and Predict show a run that just finished (after a reload too), unless
    the user picked another after it; a pick counts when it is made, not when Predict is pressed."""
    s = svc.open("tok")
    _run(svc, s, "20240101-000000-aaaaaa", created=1_000)
    assert svc.picker(s, "evaluate")[1] == "20240101-000000-aaaaaa"
    _run(svc, s, "20240101-000000-bbbbbb", created=2_000)
    assert svc.picker(s, "evaluate")[1] == "20240101-000000-bbbbbb"  # no pick: the newest

    svc.pick_run(s, "evaluate", "20240101-000000-aaaaaa")
    for again in (svc, Service(svc.manager, hub_online=False)):  # the same page, and after a restart
        runs, shown = again.picker(s, "evaluate")
        assert shown == "20240101-000000-aaaaaa" and [r.id for r in runs][0] == "20240101-000000-bbbbbb"
    assert svc.picker(s, "predict")[1] == "20240101-000000-bbbbbb"  # each tab has its own pick

    _run(svc, s, "20240101-000000-cccccc", created=3_000)  # a new run finishes after the pick
    assert svc.picker(s, "evaluate")[1] == "20240101-000000-cccccc"


def test_run_labels_tell_two_runs_of_one_dataset_and_model_apart(svc):
    s = svc.open("tok")
    _run(svc, s, "20240101-000000-aaaaaa", created=1_000)
    _run(svc, s, "20240101-000000-bbbbbb", created=2_000)
    labels = [r.label() for r in svc.runs(s, need_metrics=True)]
    assert len(set(labels)) == 2, labels
    assert all("finished" in text and "acc 0.412" in text and "epoch" in text for text in labels), labels
