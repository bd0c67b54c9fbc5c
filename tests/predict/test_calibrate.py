"""`calibrate` (issue 25): a finished run's unknown score recalibrated on its validation clips and the user's
"other" sounds, refitted for a run from before unknown scores, saved where prediction reads it; bad input gets
one sentence."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from train_helpers import one_thread, tone_run  # noqa: F401 - the fixture

from astapp.cli import main
from astapp.evaluation import unknown
from astapp.predict.predictor import Predictor


@pytest.fixture(scope="module")
def tones(tmp_path_factory, tiny_ast):
    return tone_run(tmp_path_factory.mktemp("calibrate"), tiny_ast, unknown_keep=0.9)


@pytest.mark.slow
def test_calibrate_with_other_sounds_sets_the_separating_threshold(tones, tmp_path, capsys):
    run, data, other = tones
    model = run / "model"
    trained = unknown.load(model)
    assert trained is not None and trained.calibration["known"] and trained.calibration["source"] == "validation"

    assert main(["calibrate", "--run", str(run), "--other", str(other)]) == 0
    out = capsys.readouterr().out
    assert "AUROC" in out and "6 other sounds" in out and "Saved in" in out, out
    stats = unknown.load(model)
    cal = stats.calibration
    assert cal["source"] == "validation+other" and len(cal["known"]) == 8 and len(cal["other"]) == 6
    k, o = np.array(cal["known"]), np.array(cal["other"])
    assert cal["auroc"] == pytest.approx(unknown.auroc(k, o))
    # the chosen threshold separates at least as well as any other cut, and what is saved says what it does
    best = (k <= stats.threshold).mean() + (o > stats.threshold).mean()
    assert all(best >= (k <= t).mean() + (o > t).mean() for t in np.r_[k, o])
    assert stats.keep == pytest.approx((k <= stats.threshold).mean())
    assert cal["other_rejected"] == pytest.approx((o > stats.threshold).mean())
    assert stats.arrays.keys() == trained.arrays.keys()  # recalibrated, not refitted
    rows = Predictor(run).predict_many(sorted(other.rglob("*.wav")))  # prediction uses the new threshold
    assert all(r["unknown_threshold"] == pytest.approx(stats.threshold) for r in rows)
    assert [r["label"] == "unknown" for r in rows] == [s > stats.threshold for s in o]

    assert main(["calibrate", "--run", str(run), "--keep", "0.5", "--json"]) == 0  # a share kept, no others
    doc = json.loads(capsys.readouterr().out)
    assert doc["keep"] == 0.5 and doc["other"] == 0 and doc["auroc"] is None and not doc["refit"]
    assert doc["threshold"] == pytest.approx(unknown.calibrate(k, 0.5))


@pytest.mark.slow
def test_a_run_from_before_unknown_scores_is_refitted(tones, tmp_path, capsys):
    run, data, other = tones
    old = tmp_path / "old"
    shutil.copytree(run, old)
    cfg = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**cfg, "output": str(old)}))
    for name in (unknown.STATS_JSON, unknown.STATS_NPZ):
        (old / "model" / name).unlink()
    assert Predictor(old).unknown is None
    assert main(["calibrate", "--run", str(old), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["refit"] and doc["method"] == unknown.DEFAULT_METHOD and doc["known"] == 8
    assert doc["keep"] == 0.9  # the run's own unknown_keep
    pred = Predictor(old)
    assert pred.unknown is not None and pred.unknown.threshold == pytest.approx(doc["threshold"])
    known = pred.predict_many([data / p["path"] for p in json.loads((old / "metrics.json").read_text())["predictions"]])
    odd = pred.predict_many(sorted(other.rglob("*.wav")))
    assert np.mean([r["unknown"] for r in odd]) > np.mean([r["unknown"] for r in known])


@pytest.mark.slow
def test_bad_calibrate_input_gets_one_sentence(tones, tmp_path, capsys):
    run, data, _ = tones
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [(["--other", str(empty)], "hold no audio files"),
             (["--other", str(next((data / "low").glob("*.wav")))], "clips of the run's own dataset"),
             ]
    before = (run / "model" / unknown.STATS_JSON).read_text()
    for args, words in cases:
        assert main(["calibrate", "--run", str(run), *args]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    assert (run / "model" / unknown.STATS_JSON).read_text() == before  # a refusal writes nothing
    with pytest.raises(SystemExit) as stop:  # argparse's own one line
        main(["calibrate", "--run", str(run), "--keep", "1.5"])
    assert stop.value.code == 2 and "share above 0" in capsys.readouterr().err
    assert main(["calibrate", "--run", str(tmp_path)]) == 2
    assert "has no trained model" in capsys.readouterr().err
    gone = tmp_path / "gone"  # the dataset moved away: no known clips to calibrate on
    shutil.copytree(run, gone)
    cfg = json.loads((gone / "config.json").read_text())
    (gone / "config.json").write_text(json.dumps({**cfg, "data": str(tmp_path / "moved")}))
    assert main(["calibrate", "--run", str(gone)]) == 2
    assert "validation clips are not on disk" in capsys.readouterr().err


def test_the_separating_threshold_and_the_shares_by_hand(tmp_path):
    known, other = np.array([0.1, 0.2, 0.3, 0.9]), np.array([0.8, 1.0, 1.2])
    t = unknown.best_threshold(known, other)
    assert 0.3 < t < 0.8  # one known clip lost, every other sound rejected: the best balance here
    assert unknown.balanced(known, other, t) == 0.875
    # other sounds scoring LOWER than the known clips: no cut beats chance; of the ties, the one keeping all known
    assert unknown.best_threshold(np.array([0.8, 0.9, 1.0]), np.array([0.1, 0.2])) == 1.0
    stats = unknown.set_threshold(unknown.UnknownStats(method="energy"), known, 0.95, other, threshold=t)
    assert stats.keep == 0.75 and stats.calibration["other_rejected"] == 1.0
    assert stats.calibration["auroc"] == pytest.approx(unknown.auroc(known, other))
    unknown.save(stats, tmp_path)
    assert unknown.shares(unknown.load(tmp_path), 0.95) == (1.0, pytest.approx(2 / 3))
    saved = unknown.save_threshold(tmp_path, 0.95)  # an edit: keep follows the threshold
    assert unknown.load(tmp_path).threshold == 0.95 and saved.keep == 1.0
    with pytest.raises(Exception, match="finite number"):
        unknown.save_threshold(tmp_path, float("nan"))
    with pytest.raises(Exception, match="no unknown score"):
        unknown.save_threshold(tmp_path / "nothing", 0.5)
